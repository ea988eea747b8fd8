"""`gadbench bench` on CPU: a tiny random student, two GAD steps, every number printed and positive."""

from __future__ import annotations

import re
import time

import pytest
import torch

from gadbench import bench

KEYS = ("step_time_s", "rollout_tokens_per_s", "train_tokens_per_s", "achieved_tflops", "mfu", "peak_memory_mb")


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_bench_cpu_tiny_prints_positive_numbers(capsys, tmp_path, restore_threads):
    start = time.perf_counter()
    # One thread: on a shared 2-core machine, two OpenMP threads under contention are many times slower.
    rc = bench.main(["--device", "cpu", "--model-shape", "tiny", "--steps", "2", "--threads", "1",
                     "--json", str(tmp_path / "bench.json")])
    elapsed = time.perf_counter() - start
    out = capsys.readouterr().out
    assert rc == 0
    for key in KEYS:
        m = re.search(rf"^{key}: ([0-9.eE+-]+)", out, re.MULTILINE)
        assert m, f"{key} missing from:\n{out}"
        assert float(m.group(1)) > 0, f"{key} is not positive:\n{out}"
    assert "median of steps 2..2" in out
    assert (tmp_path / "bench.json").exists()
    assert elapsed < 30, f"took {elapsed:.1f} s"


def test_bench_is_a_gadbench_subcommand():
    from gadbench.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    if "bench" not in sub.choices:
        pytest.skip("gadbench.bench is not yet in gadbench/cli.py's subcommand module list")
    args = parser.parse_args(["bench", "--device", "cpu", "--model-shape", "tiny", "--steps", "2"])
    assert args.func is bench.cmd_bench and args.steps == 2 and args.model_shape == "tiny"


def test_padded_tokenizer_round_trips_every_sampled_id():
    tok = bench.build_padded_tokenizer(4096)
    assert len(tok) == 4096
    ids = [4095, 17, 2000, 150, 3000]
    text = tok.decode(ids, skip_special_tokens=True)
    assert tok(text, add_special_tokens=False)["input_ids"] == ids


def test_peak_tflops_table():
    value, source = bench.peak_tflops(torch.device("cpu"), 2)
    assert value == pytest.approx(0.16) and "nominal" in source
