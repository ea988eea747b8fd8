"""vLLM against transformers sampling on one tiny model and batch (the vLLM tier's venv only).

The model is the vLLM tier's world-shaped student (tests/test_vllm_engine.build_student); 24 prompts x 4
samples x 24 new tokens, like a GAD step of the tiny suites. Stores both medians and their ratio in
extra_info; vLLM is not expected to win at this size (docs/scale.md). Run in the tier's venv:

    .venv-vllm/bin/python -m pytest benchmarks/test_bench_vllm.py --benchmark-enable \
        --benchmark-json=benchmarks/results/vllm-cpu.json
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
pytest.importorskip("vllm", reason="vLLM tier only: scripts/vllm_tier.sh")

from test_vllm_engine import MAX_LEN, build_student  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

from gadbench.config import RolloutConfig  # noqa: E402
from gadbench.models import prompt_ids  # noqa: E402
from gadbench.rollout.hf import HFRolloutEngine  # noqa: E402
from gadbench.rollout.vllm import VLLMRolloutEngine  # noqa: E402
from gadbench.worlds import student, synthetic  # noqa: E402

ROUNDS = 5


def test_vllm_vs_hf_sampling(benchmark, tmp_path):
    path = build_student(tmp_path / "student")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tok = student.build_tokenizer()
    engine = VLLMRolloutEngine(tok, RolloutConfig(engine="vllm", enforce_eager=True), MAX_LEN, seed=0)
    hf = HFRolloutEngine(tok)
    prompts = [prompt_ids(tok, p.prompt, "chat") for p in synthetic.sample_problems(24, "id", seed=7)]
    seeds = list(range(len(prompts)))
    engine.generate(model, prompts[:1], 1, 0.0, 2)  # start the engine outside the timings
    times: dict[str, list[float]] = {"vllm": [], "hf": []}
    try:
        for _ in range(ROUNDS):  # interleaved, so load on the machine affects both alike
            for name, eng in (("vllm", engine), ("hf", hf)):
                start = time.perf_counter()
                roll = eng.generate(model, prompts, 4, 1.0, 24, seeds=seeds)
                times[name].append(time.perf_counter() - start)
                assert roll.generated_tokens > 0
        engine.update_weights(model)
        push_ms = engine.stats["last_push_s"] * 1000
    finally:
        engine.close()
    medians = {k: statistics.median(v) for k, v in times.items()}
    benchmark.extra_info.update(median_s=medians, vllm_over_hf=medians["vllm"] / medians["hf"], push_ms=push_ms,
                                start_s=engine.stats["start_s"])
    benchmark.pedantic(lambda: None, rounds=1)
