"""The device check (scripts/gpu_check.sh, gadbench/commands/devicecheck.py): its CPU path end to end on 1 and 2 processes
(the same script, prepare, run and report as on the GPUs, with the tiny shape and short lengths), and the
report's arithmetic on a hand-made run."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gadbench.commands.devicecheck import measured, report

REPO = Path(__file__).resolve().parents[1]


def test_measured_by_hand():
    rows = [{"step": 1, "step_time": 9.0, "time/rollout": 5.0},  # the first step is left out
            {"step": 2, "step_time": 4.0, "time/rollout": 1.0, "mem/rollout": 1.5, "mem/g": 2.0},
            {"step": 3, "step_time": 6.0, "time/rollout": 3.0, "mem/rollout": 1.0, "mem/g": 2.5},
            {"step": 4, "step_time": 5.0, "time/rollout": 2.0, "mem/rollout": 1.25},
            {"step": 4, "eval": True}]
    totals = {"steps": 4, "generated_tokens": 800, "g_trained_tokens": 1200, "d_trained_tokens": 1200,
              "flops": 4e13}
    got = measured(rows, totals, peak_tflops=10.0)
    # medians of steps 2-4: step 5 s, rollout 2 s; per step 200 generated, 600 trained tokens, 1e13 FLOPs
    want = {"step_time_s": 5.0, "rollout_s": 2.0, "rollout_tokens_per_s": 100.0, "train_tokens_per_s": 200.0,
            "achieved_tflops": 2.0, "mfu": 0.2, "measured_steps": 3}
    for key, value in want.items():
        assert got[key] == pytest.approx(value), (key, got[key], value)
    assert got["memory_gib"] == {"g": 2.5, "rollout": 1.5}, got["memory_gib"]


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_the_cpu_path_runs_end_to_end(tmp_path, processes):
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path), "PYTHONWARNINGS": "ignore",
           "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        ["bash", str(REPO / "scripts/gpu_check.sh"), "--device", "cpu", "--processes", str(processes),
         "--shape", "tiny", "--prompt-tokens", "48", "--response-tokens", "16", "--prompts-per-process", "2",
         "--steps", "2", "--engine", "hf"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert f"engine hf; {processes} process(es); median of 1 step(s) after the first" in out, out[-2000:]
    assert "the plan for the same run" in out and "adversarial 2" in out, out[-2000:]
    m = json.loads((tmp_path / "gpu-check/measured.json").read_text())
    chosen = json.loads((tmp_path / "gpu-check/chosen.json").read_text())
    assert chosen["batch"] == 2 * processes and chosen["processes"] == processes, chosen
    suite = (tmp_path / "gpu-check/check.yaml").read_text()
    assert "sharding: fsdp" in suite, suite
    # every rollout runs to its limit (random weights): 2 x processes prompts x 8 samples x 16 tokens per step
    budget = json.loads(next((tmp_path / "gpu-check/results").glob("*/*/budget.json")).read_text())
    assert budget["totals"]["generated_tokens"] == 2 * (2 * processes * 8 * 16), budget["totals"]
    assert m["rollout_tokens_per_s"] > 0 and m["train_tokens_per_s"] > 0 and m["step_time_s"] > m["rollout_s"], m
    # the report's GPU lines, on this run's files as if an H100 had measured them
    shown = io.StringIO()
    again = report(tmp_path / "gpu-check", "cuda", shown, gpu=(989.0, "NVIDIA H100 80GB HBM3"))
    text = shown.getvalue()
    assert again["mfu"] == pytest.approx(again["achieved_tflops"] / (989.0 * processes)), again
    assert "of 989 TFLOP/s dense bf16 per GPU" in text and "PREDICTED by the throughput model" in text, text
    assert f"{processes} x h100" in text and "this run used hf" in text, text


def test_the_gpu_suite_it_writes_loads_and_is_planned(tmp_path, capsys):
    """What the device would run (cuda, 8 processes, vLLM, the paper's lengths) is a valid suite: its dry run
    plans 3 adversarial steps of 64 prompts x 8 samples x 1,536 tokens, and the report's prediction reads it."""
    from gadbench.cli import main
    from gadbench.commands.devicecheck import predicted, prepare

    chosen = prepare(tmp_path, "tiny", "cuda", 8, 8, 3, 2048, 1536, 2, "vllm")
    assert chosen["engine"] == "vllm" and chosen["batch"] == 64, chosen
    suite = (tmp_path / "check.yaml").read_text()
    for line in ("precision: bf16", "gradient_checkpointing: true", "sharding: fsdp", "engine: vllm",
                 "max_prompt_tokens: 2048", "max_response_tokens: 1536", "group_size: 8"):
        assert line in suite, (line, suite)
    assert main(["run", "--suite", str(tmp_path / "check.yaml"), "--dry-run", "--gpu", "h100", "--gpus", "8"]) == 0
    out = capsys.readouterr().out
    assert "adversarial 3" in out and "| 2.4M " in out, out  # 3 x 64 x 8 x 1,536 = 2,359,296 generated tokens
    p = predicted(tmp_path, "h100", 8)
    assert p["step_s"] == pytest.approx((p["rollout_s"] + p["compute_s"]), rel=1e-9) and p["rollout_s"] > 0, p
