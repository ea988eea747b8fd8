"""Evaluation answers from every process's engine (gadbench/rollout/fanout.py), on 2 real processes (gloo).

Process 0's FanOutEngine over the `hf` engine must return exactly what one engine returns for the whole
request, greedy and sampled (seeds drawn from process 0's RNG as one engine draws them), with the prompts
split between the processes (3 and 2 of 5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import torch
from loopback import free_port
from tinymodels import build_tiny_model

from gadbench.rollout.hf import HFRolloutEngine
from gadbench.worlds import student

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "fixtures" / "fanout" / "worker.py"


def test_fan_out_equals_one_engine(tmp_path):
    model, _ = build_tiny_model(tmp_path / "model", tokenizer=student.build_tokenizer(), heads=2)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           str(free_port()), str(WORKER), str(tmp_path / "model"), str(tmp_path / "out.json")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads((tmp_path / "out.json").read_text())
    prompts = got["prompts"]

    engine = HFRolloutEngine(student.build_tokenizer())
    torch.manual_seed(got["seed"])
    expected = [asdict(engine.generate(model, prompts, 2, 0.0, 12)), asdict(engine.generate(model, prompts, 3, 1.0, 12))]
    assert got["rollouts"] == expected
    assert got["prompts_per_process"] == [2 * 3, 2 * 2]  # each call: process 0 answered 3 prompts, process 1 two
    sampled = expected[1]["response_ids"]
    assert len({tuple(r) for r in sampled}) > len(prompts)  # sampled, not greedy
