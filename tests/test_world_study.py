"""A 2-minute slice of `experiments/world-study.yaml` (docs/world.md's findings) through the CLI, as a
researcher runs it: the suite's own methods and search, 2 seeds, 8 steps (4 warmup), an evaluation every 2
steps, then `gadbench report`. It checks the study's protocol end to end: every search setting runs for
every seed, the kept setting is the one with the best mean validation score, the budget curve pairs GAD
with SeqKD at every evaluation step with seed x prompt intervals, and the off-policy D's extra D-fit steps
do not break the steps-matched budget."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from gadbench.io import read_json

ROOT = Path(__file__).resolve().parents[1]
SLICE = [
    "seeds=[0, 1]", "methods.gad-d-small=null",
    "methods.seqkd.search.lr_sft=[1.0e-3, 3.0e-3]",
    "methods.gad.search={lr_generator: [3.0e-5, 1.0e-4]}",
    "methods.gad-offpolicy.search={lr_generator: [3.0e-5, 1.0e-4]}",
    "train.steps=8", "train.warmup_steps=4", "train.d_only_steps=1", "train.offpolicy_d_steps=4",
    "train.batch_size=8", "train.checkpoint_every=4", "eval.every=2", "eval.samples=2", "eval.bootstrap=200",
    "data.train.limit=64", "data.validation_size=8", "data.eval.world-id.limit=8", "data.eval.world-ood.limit=8",
]


def _csv(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("study")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    argv = [sys.executable, "-m", "gadbench.cli", "-q", "run", "--suite", "world-study", "--out", str(out)]
    run = subprocess.run(argv + [a for s in SLICE for a in ("--set", s)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return out / "world-study"


def test_every_search_setting_runs_for_every_seed_within_the_matched_budget(study):
    runs = [read_json(p) for p in study.glob("tiny--*/summary.json") if "--before--" not in str(p)]
    grid = sorted((s["method"], s["seed"]) for s in runs)  # method: the base method + its search setting
    assert len(set(grid)) == len(grid) == 3 * 2 * 2, grid  # 3 methods x 2 settings x 2 seeds
    for s in runs:
        check = s["budget_check"]
        assert check["within"] and check["ratio"] == 1.0, (s["run_id"], check)
        offpolicy = s["method"].startswith("gad-offpolicy+")
        assert check.get("extra_d_fit_steps") == (4 if offpolicy else None), (s["run_id"], check)


def test_the_kept_setting_has_the_best_mean_validation_score(study):
    rows = _csv(study / "tables" / "search.csv")
    metric = "validation gold/teacher_logprob"
    by_method = defaultdict(list)
    for r in rows:
        by_method[r["Method"]].append(r)
    assert sorted(by_method) == ["gad", "gad-offpolicy", "seqkd"], rows
    for method, settings in by_method.items():
        assert len(settings) == 2 and all(r["seeds"] == "2" for r in settings), settings
        (kept,) = [r for r in settings if r[""] == "kept"]
        assert float(kept[metric]) == max(float(r[metric]) for r in settings), (method, settings)


def test_the_budget_curve_pairs_gad_with_seqkd_at_every_evaluation_step(study):
    rows = _csv(study / "tables" / "budget-curve.csv")
    steps = {m: sorted(int(r["steps"]) for r in rows if r["Method"] == m) for m in ("gad", "gad-offpolicy")}
    assert steps == {"gad": [2, 4, 6, 8], "gad-offpolicy": [2, 4, 6, 8]}, rows
    for r in rows:
        for ds in ("world-id", "world-ood"):
            lo, mid, hi = float(r[f"{ds} lo"]), float(r[ds]), float(r[f"{ds} hi"])
            assert lo <= mid <= hi and r[f"{ds} seeds"] == "2" and r[f"{ds} n"] == "16", r
    report = (study / "REPORT.md").read_text()
    assert "2 x 8 prompts" in report and (study / "figures" / "budget.png").exists()
