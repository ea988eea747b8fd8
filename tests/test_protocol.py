"""Protocol checks through real runs of the tiny world student: evaluation prompts must not hide among the
training prompts, and a lower-is-better selection metric is read the same way by selection and the search."""

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


class _GoldNLL:
    """A lower-is-better judge: the world teacher's negative log-probability per token of the greedy answer."""

    name = "gold-nll"

    def judge(self, items):
        from gadbench.worlds.gold import GoldJudge

        return [_NLLJudgment(-g.teacher_logprob) for g in GoldJudge().judge(items)]


class _NLLJudgment:
    def __init__(self, nll: float):
        self.nll = nll

    def to_json(self) -> dict:
        return {"nll": self.nll, "valid": True}


NLL_SUITE = """extends: smoke
name: nll
methods:
  seqkd: {kind: seqkd, search: {lr_sft: [0.0003, 0.003]}}
  gad: null
  gad-no-gwarmup: null
  gad-no-dwarmup: null
  gad-ce: null
  gad-d-small: null
  grpo-rouge: null
  gad-offpolicy: null
data: {eval: {world-ood: null}, validation_size: 16}
train: {steps: 6, checkpoint_every: 2}
eval: {every: 2, samples: 0, judges: [gold-nll, gold], selection_metric: gold-nll/nll, bootstrap: 100}
"""


def test_a_lower_is_better_selection_metric_drives_the_checkpoint_and_the_search_the_same_way(tmp_path, monkeypatch):
    """A real run of a two-point search whose selection metric is declared lower-is-better: each run selects the
    checkpoint with the lowest validation value, and the report's search keeps the point whose selected
    checkpoint has the lowest; the highest would choose otherwise, so a direction read the wrong way fails."""
    from gadbench.judge.records import JUDGES, JudgeRecord, Metric
    from gadbench.report.load import load_results
    from gadbench.report.search import chosen_points
    from gadbench.runner import run_suite
    from gadbench.suite import get_suite

    monkeypatch.setitem(JUDGES, "gold-nll", JudgeRecord(
        "gold-nll", "the world teacher's negative log-prob per token", lambda spec, cache: _GoldNLL(),
        {"nll": Metric(False, "nats per token")}, world_only=True))  # what the suite, selection and report read
    (tmp_path / "nll.yaml").write_text(NLL_SUITE)
    suite_dir = run_suite(get_suite(str(tmp_path / "nll.yaml")), tmp_path / "out", progress=False)

    def validation(run_dir, step):
        return read_json(run_dir / "eval" / f"step-{step}" / "metrics.json")["validation"]["gold-nll/nll"]["mean"]

    at_selected, argmax_differs = {}, False
    for run_dir in sorted(p.parent for p in suite_dir.glob("*/config.yaml")):
        steps = [2, 4, 6]
        values = {k: validation(run_dir, k) for k in steps}
        summary = read_json(run_dir / "summary.json")
        lowest = min(steps, key=lambda k: (values[k], k))
        argmax_differs |= max(steps, key=lambda k: (values[k], -k)) != lowest
        assert summary["selection"]["checkpoint"] == lowest, (run_dir.name, values, summary["selection"])
        at_selected["".join(f" {k}={v:g}" for k, v in summary["search_point"].items())] = values[lowest]
    assert len(at_selected) == 2 and argmax_differs, at_selected
    (chosen,) = chosen_points(load_results(suite_dir)).values()
    assert chosen == min(at_selected, key=at_selected.get) != max(at_selected, key=at_selected.get), (chosen, at_selected)


def test_the_plan_costs_the_papers_judge_calls_by_hand():
    """`paper`: 5 students x (SeqKD, GAD), one seed; 1832 items (LMSYS 500 + Dolly 500 + SelfInst 252 + Vicuna 80
    + validation 500). Each run evaluates step 0 and, from eval.start = 800 (the paper's scan of checkpoints
    800-2400), every 50 steps: 34 points, step 0 shared by a student's two methods, so 67 per student; the
    judge's reference answers once per item for the suite: 5 x 67 x 1832 + 1832 = 615,552 calls (the old plan
    said 934,320: 50 points and a reference per prompt for each of the 10 runs)."""
    from gadbench.runner import plan
    from gadbench.suite import get_suite

    p = plan(get_suite("paper"))
    assert p["eval_items"] == 500 + 500 + 252 + 80 + 500 == 1832
    assert all(r["eval_steps"] == [0, *range(800, 2401, 50)] for r in p["runs"]) and p["eval_points_per_run"] == 34
    assert p["judge_item_calls"] == 5 * (34 + 33) * 1832 and p["judge_reference_calls"] == 1832
    assert p["judge_calls"] == 615_552
    everything = plan(get_suite("paper", ["eval.start=0"]))
    assert everything["eval_points_per_run"] == 49  # 0, 50, ..., 2400: warmup (0-800) judged every 50 steps too


def _judge_reply(body: dict) -> str:
    return "REF answer" if len(body["messages"]) == 1 else "8 7\nBoth answer the question."


def test_a_real_run_sends_what_the_plan_counts_and_evaluates_from_eval_start(tmp_path, monkeypatch):
    """SeqKD and GAD, 4 steps (GAD's warmup 2), eval.every 2 and eval.start 3, judged by gad-paper through a
    judge on 127.0.0.1: both runs evaluate steps 0 and 4 only; the judge is asked one reference per item for
    the suite and one judgment per distinct answer, step 0 once, which the plan counts."""
    from loopback import LoopbackServer

    from gadbench.runner import plan, run_suite
    from gadbench.suite import get_suite

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    smoke = get_suite("smoke")
    drop = [f"methods.{m}=null" for m in smoke.methods if m not in ("seqkd", "gad")]
    with LoopbackServer(reply=_judge_reply) as server:
        suite = get_suite("smoke", [*drop, "train.steps=4", "train.warmup_steps=2", "train.d_only_steps=1",
                                    "train.batch_size=4", "train.group_size=2", "train.max_response_tokens=8",
                                    "data.train.limit=16", "data.validation_size=3", "data.eval.world-id.limit=5",
                                    "data.eval.world-ood=null", "eval.samples=0", "eval.every=2", "eval.start=3",
                                    "eval.judges=[gold, gad-paper]", "eval.bootstrap=100",
                                    f"judge.base_url={server.url}", "judge.model=fake"])
        p = plan(suite)
        out = run_suite(suite, tmp_path / "results", progress=False)
        sent = list(server.received)
    runs = sorted(d for d in out.iterdir() if (d / "config.yaml").exists())
    assert [sorted(int(s.name[5:]) for s in (r / "eval").iterdir()) for r in runs] == [[0, 4], [0, 4]]
    assert [r["eval_steps"] for r in p["runs"]] == [[0, 4], [0, 4]]
    references = [b for b in sent if len(b["messages"]) == 1]
    assert len(references) == p["judge_reference_calls"] == 8  # 5 test + 3 validation prompts
    answers = {(row["prompt"], row["answer"]) for r in runs for step in (0, 4) for name in ("world-id", "validation")
               for row in map(json.loads, (r / "eval" / f"step-{step}" / f"{name}.jsonl").read_text().splitlines())}
    assert len(sent) - len(references) == len(answers) <= p["judge_item_calls"] == 8 * 3, (len(sent), p)
    assert p["judge_calls"] == 8 + 24


def test_rollouts_and_teacher_responses_cut_at_every_step_warn_in_the_log_summary_and_report(tmp_path):
    """max_response_tokens = 3: every teacher answer of the world and every rollout is cut; each step is flagged,
    the log warns, the summary's warnings say by how much, and the report shows it."""
    keep = ("seqkd", "gad")
    drop = [f"--set=methods.{m}=null" for m in ("gad-no-gwarmup", "gad-no-dwarmup", "gad-ce", "gad-d-small",
                                                  "grpo-rouge", "gad-offpolicy")]
    proc = _gadbench("run", "--suite", "smoke", "--out", str(tmp_path), *drop, "--set=train.steps=2",
                     "--set=train.warmup_steps=1", "--set=train.d_only_steps=0", "--set=train.batch_size=4",
                     "--set=train.group_size=2", "--set=train.max_response_tokens=3", "--set=eval.every=100",
                     "--set=data.validation_size=4", "--set=data.eval.world-id.limit=4", "--set=data.eval.world-ood=null",
                     "--set=eval.samples=0", "--set=eval.judges=[gold]", "--set=eval.bootstrap=100")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "step 1: rollouts 100%, teacher responses 100% cut at train.max_response_tokens = 3" in proc.stderr
    md = (tmp_path / "smoke" / "REPORT.md").read_text()
    for method in keep:
        (run,) = (tmp_path / "smoke").glob(f"tiny--{method}--s0--*")
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert all(r["truncation_warning"] and r["teacher_truncated_frac"] == 1.0 for r in rows), rows
        (warning,) = [w for w in read_json(run / "summary.json")["warnings"] if "were cut" in w]
        rollouts = "n/a" if method == "seqkd" else "100%"
        assert warning == ("more than 50% of the rollouts or teacher responses were cut at train.max_response_tokens "
                           f"= 3 at 2 of 2 steps (first: step 1; cut on average: rollouts {rollouts}, teacher "
                           "responses 100%): raise train.max_response_tokens"), warning
        assert warning in md


def test_a_group_of_one_and_overlapping_world_pools_are_refused_in_one_line(tmp_path):
    """GRPO's advantage needs two samples per group (one has a NaN std): refused by the suite (`--set`, a method's
    search), by `gadbench bench` and by the loss itself; world pools that would reach the next pool's problems
    are refused when the suite loads."""
    import pytest
    import torch

    from gadbench.config import ConfigError
    from gadbench.losses.grpo import group_advantages
    from gadbench.suite import get_suite, runs_of

    cli = {
        ("run", "--suite", "smoke", "--dry-run", "--set", "train.group_size=1"):
            "`train.group_size` = 1 is out of range [2, inf]; pick a value inside it.",
        ("bench", "--group-size", "1", "--steps", "1"):
            "gadbench: --group-size must be 0 (the default) or at least 2 (GRPO compares samples within a group).",
    }
    for argv, expected in cli.items():
        proc = _gadbench(*argv)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].endswith(expected), (argv, proc.stderr[-2000:])
    suite = {
        "methods.gad.search={group_size: [1, 4]}":
            "methods.gad.search: `train.group_size` = 1 is out of range [2, inf]; pick a value inside it.",
        "data.train.limit=5001":
            "`data.train.limit` = 5001 reaches the synthetic world's validation problems (numbers 5000 on), so they "
            "would overlap; use at most 5000.",
        "data.validation_size=1001":
            "`data.validation_size` = 1001 reaches the synthetic world's test problems (numbers 6000 on), so they "
            "would overlap; use at most 1000.",
    }
    for override, expected in suite.items():
        with pytest.raises(ConfigError) as found:
            runs_of(get_suite("smoke", [override]))  # a search point is checked as the suite's runs are made
        assert str(found.value).endswith(expected) and "\n" not in str(found.value), (override, str(found.value))
    assert get_suite("smoke", ["data.train.limit=5000"]).data.train.limit == 5000
    with pytest.raises(ValueError, match="groups of 2 or more samples, not 1"):
        group_advantages(torch.tensor([1.0, 2.0]), 1)


def test_runs_of_a_student_and_seed_share_step_0_rows_equal_to_their_own_evaluation(tmp_path, caplog):
    """SeqKD and GAD, seeds 0 and 1, judged by gold and gold-sampled (which samples the student): with
    eval.share_step0 the second run of each seed takes the first's step-0 rows, and they are the rows each run
    computes for itself without sharing; another seed's rows differ."""
    from gadbench.eval.evaluator import step0_fingerprint
    from gadbench.runner import run_suite, runs_of
    from gadbench.suite import get_suite

    smoke = get_suite("smoke")
    drop = [f"methods.{m}=null" for m in smoke.methods if m not in ("seqkd", "gad")]
    base = [*drop, "seeds=[0, 1]", "train.steps=2", "train.warmup_steps=1", "train.d_only_steps=1",
            "train.batch_size=4", "train.group_size=2", "train.max_response_tokens=8", "data.train.limit=16",
            "data.validation_size=3", "data.eval.world-id.limit=5", "data.eval.world-ood=null", "eval.samples=2",
            "eval.judges=[gold, gold-sampled]", "eval.bootstrap=100"]

    def step0(out: Path) -> dict[str, str]:
        return {r.name.split("--")[1] + r.name.split("--")[2]: "".join(
            (r / "eval" / "step-0" / f"{name}.jsonl").read_text() for name in ("validation", "world-id"))
            for r in sorted(out.iterdir()) if (r / "config.yaml").exists()}

    shared_suite = get_suite("smoke", base)
    with caplog.at_level("INFO", logger="gadbench"):
        shared = step0(run_suite(shared_suite, tmp_path / "shared", progress=False))
    took = [m for m in caplog.messages if "step 0 takes the rows" in m]
    assert len(took) == 2 and all("--gad--" in m for m in took), took  # SeqKD ran first, GAD took its rows
    alone = step0(run_suite(get_suite("smoke", [*base, "eval.share_step0=false"]), tmp_path / "alone", progress=False))
    assert shared.keys() == alone.keys() == {"seqkds0", "seqkds1", "gads0", "gads1"}, shared.keys()
    assert shared == alone  # sharing moves no number
    assert shared["seqkds0"] == shared["gads0"] and shared["seqkds1"] == shared["gads1"]
    assert shared["gads0"] != shared["gads1"]  # another seed samples other answers
    kept = {p.parent.name for p in (tmp_path / "shared" / "cache" / "step-0").glob("*/world-id.jsonl")}
    assert kept == {step0_fingerprint(r) for r in runs_of(shared_suite)} and len(kept) == 2, kept
    assert not (tmp_path / "alone" / "cache" / "step-0").exists()
