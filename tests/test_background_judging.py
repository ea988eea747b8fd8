"""Judging off the critical path (eval.judge_in_background): a GAD run whose LLM judge (mtbench-single) answers
from a loopback server with latency. Training steps go on while an evaluation is being judged; the stored
evaluations equal those of synchronous judging; a process killed while judging resumes and judges the stored
answers, asking the endpoint nothing it had answered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gadbench.io import read_json
from tests.loopback import LoopbackServer

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "tests/fixtures/reliability/llmjudge.yaml"
KEY = "sk-gadbench-background-0c4b1f"
ENV = {**os.environ, "GADBENCH_EXPERIMENTS": str(ROOT / "experiments"), "HF_HUB_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
       "GADBENCH_TEST_KEY": KEY, "PYTHONPATH": str(ROOT)}
# 4 steps (1 warmup), evaluated and checkpointed at every step, every checkpoint kept; GAD alone.
SETS = ("--set", "train.steps=4", "--set", "train.warmup_steps=1", "--set", "eval.every=1",
        "--set", "train.checkpoint_every=1", "--set", "train.keep_checkpoints=10")


def rating(body: dict) -> str:
    return f"Explanation.\nRating: [[{len(body['messages'][-1]['content']) % 9 + 1}]]"


def run(out: Path, url: str, *extra: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**ENV, **({"GADBENCH_KILL_AT": kill_at} if kill_at else {})}
    argv = [sys.executable, "-m", "gadbench.cli", "-q", "run", "--suite", str(SUITE), "--out", str(out), *SETS,
            "--set", f"judge.base_url={url}", *extra]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def gad_run(out: Path) -> Path:
    return next(p for p in (out / "llmjudge").iterdir() if "--gad--" in p.name and (p / "config.yaml").exists())


def evaluations(run_dir: Path) -> dict:
    """Every stored evaluation: per step, each set's rows and metrics.json (usage.json aside: what was paid)."""
    return {p.name: {f.name: f.read_text() for f in sorted(p.iterdir()) if f.name != "usage.json"}
            for p in sorted((run_dir / "eval").iterdir())}


@pytest.mark.slow
def test_training_goes_on_while_judging_and_the_results_equal_synchronous_judging(tmp_path):
    with LoopbackServer(latency=1.5, reply=rating) as srv:
        background = run(tmp_path / "bg", srv.url)
        assert background.returncode == 0, background.stderr[-3000:]
        sync = run(tmp_path / "sync", srv.url, "--set", "eval.judge_in_background=false")
        assert sync.returncode == 0, sync.stderr[-3000:]

    def overlapped(run_dir: Path) -> list[int]:
        """Steps K whose judging ended after step K+1 had trained and been checkpointed."""
        done = {int(p.parent.name.split("-")[1]): p.stat().st_mtime
                for p in (run_dir / "eval").glob("step-*/metrics.json")}
        saved = {int(p.parent.name.split("-")[1]): p.stat().st_mtime
                 for p in (run_dir / "checkpoints").glob("step-*/complete.json")}
        return [k for k in sorted(done) if k + 1 in saved and done[k] > saved[k + 1]]

    bg, sy = gad_run(tmp_path / "bg"), gad_run(tmp_path / "sync")
    assert overlapped(bg), (overlapped(bg), sorted(os.listdir(bg / "checkpoints")))
    assert overlapped(sy) == [], overlapped(sy)  # synchronous: each step's judging ends before the next step
    got, want = evaluations(bg), evaluations(sy)
    assert list(got) == [f"step-{k}" for k in range(5)] and list(got) == list(want), (list(got), list(want))
    for step in want:
        assert got[step] == want[step], step
    assert read_json(bg / "summary.json")["selection"] == read_json(sy / "summary.json")["selection"]


@pytest.mark.slow
def test_a_kill_while_judging_resumes_and_judges_the_stored_answers(tmp_path):
    with LoopbackServer(latency=1.0, reply=rating) as srv:
        killed = run(tmp_path / "k", srv.url, kill_at="mid-eval:2")  # after a set's judgments are stored
        assert killed.returncode != 0, killed.stderr[-2000:]
        run_dir = gad_run(tmp_path / "k")
        # training went past step 2 (its checkpoint is written) while step 2 was being judged: resuming from it
        # never evaluates step 2 again, so the run must judge its stored answers
        assert (run_dir / "checkpoints/step-2/complete.json").exists(), sorted(os.listdir(run_dir / "checkpoints"))
        assert not (run_dir / "eval/step-2/metrics.json").exists() and (run_dir / "eval/step-2/pending.json").exists()
        asked = {json.dumps(b, sort_keys=True) for b in srv.received}
        first = len(srv.received)
        resumed = run(tmp_path / "k", srv.url, "--resume")
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        again = [json.dumps(b, sort_keys=True) for b in srv.received[first:]]
        assert not asked & set(again), "a judgment answered before the kill was asked again"
        sync = run(tmp_path / "sync", srv.url, "--set", "eval.judge_in_background=false")
        assert sync.returncode == 0, sync.stderr[-3000:]
    got, want = evaluations(run_dir), evaluations(gad_run(tmp_path / "sync"))
    assert list(got) == list(want), (list(got), list(want))
    for step in want:
        assert got[step] == want[step], step
