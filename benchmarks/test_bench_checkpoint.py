"""Checkpoint write and read, one process on CPU: gadbench.state.checkpoint (torch.distributed.checkpoint)
against its peer, the format it replaced (one torch.save file of the same state, read back memory-mapped).

The state is a GAD adversarial-stage checkpoint of a random Qwen2 (hidden 256, 4 layers, vocabulary 32000,
tied embeddings: 11.6 M parameters): G, D (its body and a scalar head), the reference and both AdamW states
after one step, about 28 bytes per parameter. Write: `checkpoint.save` (DCP shards, RNG file, complete.json,
the rename) against torch.save of the dict plus fsync. Read: `checkpoint.load` of every part into the models
and optimizers against torch.load(mmap=True) and load_state_dict. `test_interleaved` alternates the four for
ROUNDS rounds and stores the medians and the ratios (ours / peer) in extra_info. Run:

    python -m pytest benchmarks/test_bench_checkpoint.py --benchmark-enable \\
        --benchmark-json=benchmarks/results/checkpoint-cpu.json
"""

from __future__ import annotations

import copy
import os
import shutil
import statistics
import time

import torch

from gadbench.models import Discriminator
from gadbench.rundir import RunDir
from gadbench.state import checkpoint

ROUNDS = int(os.environ.get("GADBENCH_BENCH_ROUNDS", "5"))


def _models():
    from transformers import AutoModelForCausalLM, Qwen2Config

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=32000, hidden_size=256, num_hidden_layers=4, intermediate_size=688,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    g = AutoModelForCausalLM.from_config(config)
    d = Discriminator(copy.deepcopy(g.model), 256)
    opts = {}
    for name, m in (("g_opt", g), ("d_opt", d)):
        opts[name] = torch.optim.AdamW(m.parameters(), lr=1e-6, foreach=False)
        for p in m.parameters():
            p.grad = torch.randn_like(p)
        opts[name].step()
    return {"g": g, "d": d, "ref": copy.deepcopy(g).eval()}, {"g_opt": (g, opts["g_opt"]), "d_opt": (d, opts["d_opt"])}


def test_interleaved(benchmark, tmp_path):
    torch.set_num_threads(1)
    models, optimizers = _models()
    run = RunDir(tmp_path / "run")
    params = sum(p.numel() for p in models["g"].parameters())
    single = lambda step: tmp_path / f"state-{step}.pt"  # noqa: E731  (a new file per step, as that format wrote:
    # optimizer states loaded from a memory-mapped file keep pointing into it)

    def ours_write(step):
        checkpoint.save(run, step, models, optimizers, {"meter": {}}, keep_stage_end=False, keep_newest=1)

    def peer_write(step):
        state = {k: m.state_dict() for k, m in models.items()}
        state.update({k: opt.state_dict() for k, (_, opt) in optimizers.items()})
        with open(single(step), "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())

    def ours_read(step):
        checkpoint.load(run, step, models, optimizers)

    def peer_read(step):
        state = torch.load(single(step), mmap=True, weights_only=False)
        for k, m in models.items():
            m.load_state_dict(state[k])
        for k, (_, opt) in optimizers.items():
            opt.load_state_dict(state[k])

    times = {name: [] for name in ("ours_write", "peer_write", "ours_read", "peer_read")}
    fns = {"ours_write": ours_write, "peer_write": peer_write, "ours_read": ours_read, "peer_read": peer_read}

    def rounds():
        for step in range(1, ROUNDS + 1):
            for name in (("ours_write", "peer_write") if step % 2 else ("peer_write", "ours_write")):
                start = time.perf_counter()
                fns[name](step)
                times[name].append(time.perf_counter() - start)
            for name in (("ours_read", "peer_read") if step % 2 else ("peer_read", "ours_read")):
                start = time.perf_counter()
                fns[name](step)
                times[name].append(time.perf_counter() - start)

    benchmark.pedantic(rounds, rounds=1, iterations=1)
    med = {k: statistics.median(v) for k, v in times.items()}
    ours_bytes = sum(p.stat().st_size for p in run.checkpoint(ROUNDS).iterdir())
    benchmark.extra_info.update({
        "params_g": params, "bytes_ours": ours_bytes, "bytes_peer": single(ROUNDS).stat().st_size,
        **{f"median_s_{k}": round(v, 4) for k, v in med.items()},
        "write_ratio_ours_over_peer": round(med["ours_write"] / med["peer_write"], 3),
        "read_ratio_ours_over_peer": round(med["ours_read"] / med["peer_read"], 3),
    })
    shutil.rmtree(run.path)
    print(benchmark.extra_info)
