"""The throughput model (gadbench/capacity/throughput.py): its arithmetic on hand-computed cases with made-up rates (not the
cited ones), and the dry run's printout and bad launches."""

from __future__ import annotations

import re

import pytest

from gadbench.capacity.throughput import (
    GpuRates,
    Rate,
    ThroughputPlanError,
    calibration,
    judge_seconds_per_call,
    run_hours,
)
from gadbench.cli import main
from gadbench.config import read_suite_file
from gadbench.suite import experiments_dir, runs_of, suite_path

# A made-up GPU: 100 TFLOP/s peak, MFU 0.5 (5e13 FLOP/s achieved), 1,000 tokens/s at 1e9 parameters.
FAKE = GpuRates("fake", Rate(100.0, "TFLOP/s", "test"), Rate(0.5, "MFU", "test"), Rate(1000.0, "tok/s", "test"), 1e9)


def paper_spec(*sets: str):
    suite = read_suite_file(suite_path("paper"), list(sets), search_dir=experiments_dir())
    return next(r for r in runs_of(suite) if r.method_name == "gad")


@pytest.mark.parametrize("background", [True, False])
def test_one_run_by_hand(background):
    # The paper suite's budget assumes 100 prompt + 350 response tokens: seq 450; eval answers stop at
    # min(350, 1536) = 350 tokens; judge.concurrency 16.
    spec = paper_spec(f"eval.judge_in_background={str(background).lower()}")
    row = {"params": 2e9, "generated_tokens": 7_000, "flops": 1.0e15, "steps": 10, "eval_answers": 40,
           "eval_points": 2}
    got = run_hours(spec, row, FAKE, gpus=2, overhead=1.5, judge_calls=32, judge_completion_tokens=300)
    # vLLM at 2e9 parameters: 1000 x 1e9 / 2e9 = 500 tokens/s per GPU, 1000 on 2 GPUs.
    rollout = 7_000 / 1000  # 7 s
    # rollout FLOPs: 2 x 2e9 x (7,000 x 450 / 350 = 9,000 tokens) = 3.6e13; the rest at 2 x 5e13 FLOP/s.
    compute = (1.0e15 - 3.6e13) / 1.0e14  # 9.64 s
    eval_gen = 40 * 350 / 1000  # 14 s
    judge = 32 * (0.39 + 300 / 81) / 16  # 8.19 s
    # in the background the GPUs wait for the last of the 2 points' judging (8.19 / 2 s): 45.96 s of GPU work
    # hide the rest; synchronous, for all of it
    wait = judge / 2 if background else judge
    want = {"rollout_s": rollout * 1.5, "compute_s": compute * 1.5, "eval_gen_s": eval_gen * 1.5, "judge_s": judge,
            "judge_wait_s": wait}
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-12), (key, got[key], value)
    total = (rollout + compute + eval_gen) * 1.5 + wait
    assert got["hours"] == pytest.approx(total / 3600, rel=1e-12), (got["hours"], total / 3600)
    assert got["gpu_hours"] == pytest.approx(2 * total / 3600, rel=1e-12)
    assert got["step_s"] == pytest.approx((rollout + compute) * 1.5 / 10, rel=1e-12), got["step_s"]


def test_background_judging_that_cannot_keep_up_holds_the_gpus_for_the_rest():
    spec = paper_spec()
    row = {"params": 1e9, "generated_tokens": 0, "flops": 0.0, "steps": 1, "eval_answers": 0, "eval_points": 4}
    # no GPU work at all: 160 calls x (0.39 + 81 / 81 s) / 16 = 13.9 s of judging, all of it waited for
    got = run_hours(spec, row, FAKE, gpus=1, overhead=1.0, judge_calls=160, judge_completion_tokens=81)
    assert got["judge_wait_s"] == pytest.approx(160 * 1.39 / 16, rel=1e-12), got


def test_the_calibration_is_the_published_step_over_the_formulas_time():
    step = {"gpu": "fake", "gpus": 4, "params": 1e9, "samples": 10, "tokens": 100, "step_s": 3.0, "passes": 2}
    # 1,000 tokens: generated at 4 x 1000 tokens/s = 0.25 s; (6 + 4) x 1e9 x 1000 = 1e13 FLOPs at 4 x 5e13 = 0.05 s.
    assert calibration(step, FAKE) == pytest.approx(3.0 / 0.30, rel=1e-12), calibration(step, FAKE)


def test_judge_call_time_is_first_token_plus_tokens_over_speed():
    assert judge_seconds_per_call(81) == pytest.approx(0.39 + 1.0), judge_seconds_per_call(81)


def test_no_process_is_refused():
    with pytest.raises(ThroughputPlanError, match="--gpus 0"):
        run_hours(paper_spec(), {"params": 1e9, "generated_tokens": 1, "flops": 1.0, "steps": 1,
                                 "eval_answers": 0, "eval_points": 1}, FAKE, 0, 1.0, 0, 300)


def test_the_dry_run_prints_hours_per_run_and_for_the_suite_marked_as_estimates(capsys):
    assert main(["run", "--suite", "paper", "--dry-run", "--gpu", "h100", "--gpus", "8"]) == 0
    out = capsys.readouterr().out
    assert "ESTIMATED time on 8 x h100 (estimates, not measurements" in out
    estimate = out.split("ESTIMATED time")[1]
    rows = [ln for ln in estimate.splitlines() if ln.startswith("| Qwen2.5-7B-Instruct--gad")]
    assert len(rows) == 1, out
    hours = float(rows[0].split("|")[8])
    gpu_hours = float(rows[0].split("|")[9])
    assert gpu_hours == pytest.approx(8 * hours, abs=5), rows  # printed rounded
    suite = re.search(r"suite paper: ESTIMATED ([\d.]+) h, (\d+) GPU-hours", out)
    assert suite and float(suite[1]) > hours, out
    for source in ("datasheet", "fms-fsdp", "morphllm", "NeMo-RL", "Artificial Analysis"):
        assert source in out, source


@pytest.mark.parametrize("args, says", [
    (["--gpu", "h100"], "--gpu h100 needs the launch's process count: add --gpus N (e.g. --gpus 8)."),
    (["--gpu", "v100", "--gpus", "8"], "--gpu 'v100' has no rates; give one of h100, h200, a100."),
])
def test_bad_launches_end_in_one_line(capsys, args, says):
    assert main(["run", "--suite", "paper", "--dry-run", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"gadbench: {says}", err
