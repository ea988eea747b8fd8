"""`gadbench bench` on CPU: a tiny random student, two GAD steps, every number printed and positive."""

from __future__ import annotations

import json
import re

import pytest
import torch

from gadbench.cli import main
from gadbench.commands import bench

KEYS = ("step_time_s", "rollout_tokens_per_s", "train_tokens_per_s", "achieved_tflops", "mfu", "peak_memory_mb")


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_bench_cpu_tiny_prints_consistent_numbers(capsys, tmp_path, restore_threads):
    # One thread: on a shared 2-core machine, two OpenMP threads under contention are many times slower.
    rc = main(["bench", "--device", "cpu", "--model-shape", "tiny", "--steps", "2", "--threads", "1",
                     "--json", str(tmp_path / "bench.json")])
    out = capsys.readouterr().out
    assert rc == 0
    printed = {}
    for key in KEYS:
        m = re.search(rf"^{key}: ([0-9.eE+-]+)", out, re.MULTILINE)
        assert m, f"{key} missing from:\n{out}"
        printed[key] = float(m.group(1))
        assert printed[key] > 0, f"{key} is not positive:\n{out}"
    assert "median of steps 2..2" in out
    stored = json.loads((tmp_path / "bench.json").read_text())
    (row,) = [r for r in stored["steps"] if r["step"] == 2]
    # each derived number follows from the measured ones of its step
    assert row["rollout_tokens_per_s"] == pytest.approx(row["generated_tokens"] / row["rollout_s"], rel=1e-9)
    assert row["train_tokens_per_s"] == pytest.approx(row["trained_tokens"] / (row["step_time_s"] - row["rollout_s"]),
                                                      rel=1e-9)
    assert row["achieved_tflops"] == pytest.approx(row["flops"] / row["step_time_s"] / 1e12, rel=1e-9)
    assert 0 < row["rollout_s"] < row["step_time_s"]
    assert printed["step_time_s"] == pytest.approx(row["step_time_s"], rel=1e-3)


def test_bench_is_a_gadbench_subcommand():
    from gadbench.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["bench", "--device", "cpu", "--model-shape", "tiny", "--steps", "2"])
    assert args.func is bench.run and args.steps == 2 and args.model_shape == "tiny"


def test_padded_tokenizer_round_trips_every_sampled_id():
    tok = bench.build_padded_tokenizer(4096)
    assert len(tok) == 4096
    ids = [4095, 17, 2000, 150, 3000]
    text = tok.decode(ids, skip_special_tokens=True)
    assert tok(text, add_special_tokens=False)["input_ids"] == ids


def test_peak_tflops_table():
    value, source = bench.peak_tflops(torch.device("cpu"), 2)
    assert value == pytest.approx(0.16) and "nominal" in source
