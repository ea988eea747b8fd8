"""Data parallelism: a 2-process `accelerate launch` (gloo) GAD run keeps G and D identical across ranks
(the trainer checks replica checksums at every checkpoint and stops if they differ) and ends where a
1-process run with the same global batch ends.

Stated tolerance: bitwise. Rollouts use counter-based seeds per global prompt position, and gradients are
summed across ranks before one identical optimizer step; on CPU the 2-process run reproduces the
1-process one exactly (asserted with torch.equal).
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "tests" / "fixtures" / "suites" / "dp.yaml"


def _run(cmd: list[str], out: Path) -> None:
    env = {**os.environ, "GADBENCH_EXPERIMENTS": str(REPO / "experiments"), "PYTHONWARNINGS": "ignore",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*cmd, "-q", "run", "--suite", str(SUITE), "--out", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _final(out: Path) -> tuple[dict, list[dict], dict]:
    run = Path(glob.glob(str(out / "dp" / "tiny--gad--*"))[0])
    state = torch.load(run / "checkpoints" / "step-6" / "state.pt", weights_only=False)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return state, rows, json.loads((run / "budget.json").read_text())["totals"]


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    _run([sys.executable, "-m", "gadbench.cli"], tmp_path / "one")
    _run([sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--cpu", "-m", "gadbench.cli"],
         tmp_path / "two")
    one, rows1, budget1 = _final(tmp_path / "one")
    two, rows2, budget2 = _final(tmp_path / "two")
    for model in ("g", "d"):
        assert one[model].keys() == two[model].keys()
        for name in one[model]:
            assert torch.equal(one[model][name], two[model][name]), f"{model}.{name} differs"
    drop = {"step_time"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows1] == \
           [{k: v for k, v in r.items() if k not in drop} for r in rows2]
    assert len(rows2) == 6 and rows2[-1]["stage"] == "adversarial"
    for key in ("prompts", "rollouts", "generated_tokens", "g_trained_tokens", "d_trained_tokens", "steps"):
        assert budget1[key] == budget2[key], key
    assert budget2["rollouts"] == 6 * 8 * 4  # every step samples 4 responses for each of 8 prompts
