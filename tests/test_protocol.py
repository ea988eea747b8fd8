"""Protocol checks through real runs (`gadbench run` in a subprocess on the tiny world student): evaluation prompts
must not hide among the training prompts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gadbench.io import read_json

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "GADBENCH_EXPERIMENTS": str(ROOT / "experiments"), "HF_HUB_OFFLINE": "1",
       "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
SUITE = """extends: smoke
name: overlap
methods: {gad: null, gad-no-gwarmup: null, gad-no-dwarmup: null, gad-ce: null, gad-d-small: null,
          grpo-rouge: null, gad-offpolicy: null}
teacher: {spec: dataset}
data:
  train: {source: jsonl, path: TRAIN}
  eval: {world-id: null, world-ood: null, held-out: {source: jsonl, path: EVAL}}
  validation_size: 2
train: {steps: 2, batch_size: 2, checkpoint_every: 2, max_prompt_tokens: 16}
eval: {every: 100, samples: 0, judges: [rouge-l], bootstrap: 100}
"""


def _gadbench(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gadbench.cli", "-q", *argv], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=600)


def test_eval_prompts_in_the_training_pool_stop_the_run_unless_allowed_and_are_reported(tmp_path):
    """6 eval prompts, all in the 12-row training pool (one with other case and spacing): the run stops before
    training with one line naming the set, the count and the setting; allowed, it runs and its summary and the
    report's data section carry the overlap."""
    rows = [{"id": f"r{i}", "prompt": f"What is {i} plus {i}?", "response": str(2 * i)} for i in range(12)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    held = [{"id": f"e{i}", "prompt": r["prompt"], "response": r["response"]} for i, r in enumerate(rows[:6])]
    held[0]["prompt"] = "  WHAT is 0   plus 0?"
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in held))
    suite = tmp_path / "overlap.yaml"
    suite.write_text(SUITE.replace("TRAIN", str(tmp_path / "train.jsonl")).replace("EVAL", str(tmp_path / "eval.jsonl")))

    stopped = _gadbench("run", "--suite", str(suite), "--out", str(tmp_path / "out"))
    lines = [ln for ln in stopped.stderr.splitlines() if ln.strip()]
    assert stopped.returncode == 2 and "Traceback" not in stopped.stderr, stopped.stderr[-3000:]
    assert lines[-1] == ("gadbench: eval set `held-out`: 6 of its 6 prompts are also training prompts (ids e0, e1, "
                         "e2, e3, e4); make the data disjoint, or set data.allow_overlap: true to run anyway (the "
                         "overlap is then reported)."), lines[-1]
    assert not list((tmp_path / "out").glob("overlap/*/checkpoints"))  # nothing trained

    allowed = _gadbench("run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--set", "data.allow_overlap=true")
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    assert "eval set held-out: 6 of 6 prompts are also training prompts" in allowed.stderr
    (run,) = (p.parent for p in (tmp_path / "out" / "overlap").glob("tiny--seqkd--*/summary.json"))
    assert read_json(run / "summary.json")["data_overlap"] == {
        "held-out": {"n": 6, "overlap": 6, "ids": ["e0", "e1", "e2", "e3", "e4"]}}
    report = _gadbench("report", str(tmp_path / "out" / "overlap"))
    assert report.returncode == 0, report.stderr[-3000:]
    md = (tmp_path / "out" / "overlap" / "REPORT.md").read_text()
    assert ("eval set `held-out`: 6 of 6 prompts are also training prompts (e.g. ids e0, e1, e2, e3, e4), allowed "
            "by data.allow_overlap") in md, md
