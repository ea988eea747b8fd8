"""Measured against predicted memory: a GAD run of a random-init causal LM of a chosen shape, on data whose
every prompt and teacher response is longer than the run's limits (so every sequence has the lengths the
prediction assumes), trained through `gadbench run` (`accelerate launch` for several processes) with
train.log_memory; each phase's measured peak per process is compared with gadbench.capacity.predict.

The measured value of a phase is its peak resident memory above the process's resident memory before it
loaded any model (the `load` phase's start): the prediction counts what the run allocates, not Python,
torch and the data. glibc returns freed blocks to the OS only above its mmap threshold, so the runs set
MALLOC_MMAP_THRESHOLD_=65536 (gadbench/capacity/probe.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GiB = 2**30


@dataclass
class Case:
    """One measured run: a model (a shape of random weights, or a model path), processes and settings."""

    name: str
    config: dict | None = None  # a transformers config for a random-init model (None: `path`)
    path: str | None = None
    processes: int = 1
    settings: list[str] = field(default_factory=list)
    prompt: int = 48  # every prompt's tokens (left-truncated to this)
    response: int = 48  # every rollout's and teacher response's tokens
    steps: int = 4  # half of them GAD's warmup, half adversarial: at least 2 each, or a stage's second step, the
    # first with the AdamW states of both models resident, never runs


WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau upsilon "
         "phi chi psi omega").split()


def write_data(path: Path, rows: int) -> Path:
    """Prompts and responses of 400 words each: far beyond any limit below, so all are cut to the limits."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(rows):
            words = [WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(400)]
            f.write(json.dumps({"prompt": " ".join(words), "response": " ".join(reversed(words))}) + "\n")
    return path


def build_model(folder: Path, config: dict) -> Path:
    """A random-init causal LM of `config`, with the tests' byte-level BPE tokenizer, saved to `folder`."""
    import torch
    from tinymodels import build_tokenizer
    from transformers import AutoConfig, AutoModelForCausalLM

    if (folder / "config.json").exists():
        return folder
    tok = build_tokenizer(vocab_size=2048)
    cfg = AutoConfig.for_model(**config, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                               bos_token_id=None, max_position_embeddings=4096)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def suite_file(case: Case, model: str, data: Path, out: Path) -> Path:
    """A GAD suite: `case.steps` steps of 4 prompts x 4 samples, half warmup and half adversarial, evaluated at
    the start and the end (8 validation prompts for D's diagnostics, 8 test prompts answered greedily),
    checkpointed at the end."""
    suite = {
        "name": f"mem-{case.name}", "seeds": [0], "students": {"m": {"path": model, "template": "plain"}},
        "teacher": {"spec": "dataset"}, "methods": {"gad": {"kind": "gad"}},
        "data": {"train": {"source": "jsonl", "path": str(data), "prompt_field": "prompt", "response_field": "response"},
                 "eval": {"test": {"source": "jsonl", "path": str(data), "prompt_field": "prompt",
                                   "response_field": "response", "limit": 8}},
                 "validation_size": 8, "allow_overlap": True},  # the test prompts come from the training file
        "train": {"steps": case.steps, "warmup_steps": case.steps // 2, "d_only_steps": 0, "batch_size": 4, "group_size": 4,
                  "max_prompt_tokens": case.prompt, "max_response_tokens": case.response, "checkpoint_every": 100,
                  "device": "cpu", "cpu_threads": 1, "log_memory": True, "lr_generator": 1e-6, "kl_beta": 0.001},
        "eval": {"every": 100, "max_new_tokens": case.response, "judges": ["rouge-l"], "bootstrap": 100},
        "budget": {"assumed_prompt_tokens": case.prompt, "assumed_response_tokens": case.response},
    }
    path = out / f"{case.name}.yaml"
    import yaml

    path.write_text(yaml.safe_dump(suite))
    return path


def run_case(case: Case, work: Path) -> dict:
    """Train `case` and return {"spec": RunSpec, "measured": [per process {phase: [start, peak]}], "wall_s"}."""
    import time

    work.mkdir(parents=True, exist_ok=True)
    model = str(build_model(work / "models" / case.name, case.config)) if case.config else case.path
    data = write_data(work / "data.jsonl", 64)
    suite = suite_file(case, model, data, work)
    cmd = [sys.executable, "-m", "gadbench.cli"]
    if case.processes > 1:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
               str(case.processes), "-m", "gadbench.cli"]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    out = work / "results" / case.name
    start = time.perf_counter()
    proc = subprocess.run([*cmd, "-q", "run", "--suite", str(suite), "--out", str(out), *sum(
        (["--set", s] for s in case.settings), [])], cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    memory = json.loads(next(out.glob("*/*/memory.json")).read_text())
    return {"spec": case_spec(case, work), "measured": memory["processes"], "wall_s": time.perf_counter() - start}


def case_spec(case: Case, work: Path):
    """The RunSpec `run_case` trained (its suite file is kept in `work`)."""
    from gadbench.suite import load_suite, runs_of

    (spec,) = runs_of(load_suite(work / f"{case.name}.yaml", list(case.settings)))
    return spec


def compare(case: Case, result: dict) -> list[dict]:
    """Per process and phase: measured (peak above the process's memory before loading) and predicted bytes."""
    from gadbench.capacity import Launch, Lengths, predict

    spec = result["spec"]
    launch = Launch(case.processes, 1, "cpu")
    lengths = Lengths(case.prompt, case.prompt, case.response, case.response)
    rows = []
    for rank, phases in enumerate(result["measured"]):
        base = phases["load"]["host"][0]
        for p in predict(spec, launch, lengths, main=rank == 0).phases:
            if p.name not in phases:
                continue
            start, peak = phases[p.name]["host"]
            rows.append({"case": case.name, "rank": rank, "phase": p.name, "measured": peak - base,
                         "predicted": p.device, "ratio": (peak - base) / p.device,
                         "measured_own": peak - start, "predicted_own": p.device - p.resident})
    return rows


def scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="gadbench-mem-"))
