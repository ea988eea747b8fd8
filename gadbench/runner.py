"""Running a suite: the plan (runs, stages, matched budgets, judge cost), each run, and the suite record.

results/<suite>/suite.json   resolved suite, run ids, budget check
results/<suite>/<run_id>/    config.yaml, metrics.jsonl, budget.json, eval/, summary.json (docs/results-format.md)

A process owns each run it writes (gadbench.rundir): it takes the run's lock before the run's first write
and holds it until the suite ends, because the suite's closing budget check writes into the runs' summaries.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from dataclasses import asdict, replace
from pathlib import Path

from gadbench import GadbenchError, dist
from gadbench.budget import check_matched, estimate_params
from gadbench.config import RunSpec, SuiteConfig, runs_of, to_dict, to_yaml
from gadbench.io import atomic_write_json, atomic_write_text, read_json, read_jsonl
from gadbench.llm.pricing import cost_usd, resolve_price
from gadbench.methods import estimate_run, stage_plan, uses_discriminator
from gadbench.methods.rewards import make_reward
from gadbench.rundir import RunDir, RunLock, RunLockError

log = logging.getLogger("gadbench")

JUDGE_CALLS_PER_ITEM = {"gad-paper": 2, "mtbench-single": 1, "pairwise": 2}
# Sizes of the standard eval sets, for the dry-run's judge-cost estimate when a set has no `limit`.
KNOWN_EVAL_SIZES = {"lmsys-gad": 500, "dolly": 500, "selfinst": 252, "vicuna": 80, "mtbench": 80}
ASSUMED_JUDGE_TOKENS = (900, 300)  # prompt, completion tokens per judge call (estimate)


class MissingRequirement(GadbenchError, RuntimeError):
    """The suite needs something this machine lacks; the message names it."""


# -------------------------------------------------------------------------------------------------- plan


def steps_for(suite: SuiteConfig) -> dict[str, int]:
    """Steps per run id. `steps` matching: train.steps for all. `flops` matching: each run gets the number
    of steps whose estimated FLOPs come closest to the most expensive method's at train.steps."""
    runs = runs_of(suite)
    if suite.budget.match == "steps":
        return {r.run_id: r.train.steps for r in runs}
    cost = {}
    for r in runs:
        p, dp = _params(r)
        cost[r.run_id] = estimate_run(r, stage_plan(r), p, dp)["flops"] / r.train.steps
    target = max(c * suite.train.steps for c in cost.values())
    return {rid: max(1, round(target / c)) if c else suite.train.steps for rid, c in cost.items()}


def _params(spec: RunSpec) -> tuple[int, int]:
    p = estimate_params(spec.student)
    if not uses_discriminator(spec):
        return p, 0
    return p, estimate_params(replace(spec.student, path=spec.method.d_model)) if spec.method.d_model else p


def plan(suite: SuiteConfig) -> dict:
    """What `run` would do, computed without loading any model."""
    if suite.toy is not None:
        return {"suite": suite.name, "runs": [], "judge_calls": 0, "judge_cost_usd": 0.0, "eval_points_per_run": 0,
                "eval_items": 0, "llm_judges": [], "toy": to_dict(suite.toy)}
    steps = steps_for(suite)
    rows = []
    for r in runs_of(suite):
        p, dp = _params(r)
        stages = stage_plan(r, steps[r.run_id])
        est = estimate_run(r, stages, p, dp)
        rows.append({"run_id": r.run_id, "student": r.student_name, "method": r.method_name, "seed": r.seed,
                     "stages": " + ".join(f"{s.name} {s.steps}" for s in stages), "params": p, "d_params": dp, **est})
    llm_judges = [j for j in suite.eval.judges if j in JUDGE_CALLS_PER_ITEM]
    n_points = max(1, suite.train.steps // suite.eval.every) + 2
    items = sum(d.limit or KNOWN_EVAL_SIZES.get(d.source, 0) for d in suite.data.eval.values()) + suite.data.validation_size
    calls = sum(JUDGE_CALLS_PER_ITEM[j] for j in llm_judges) * items * n_points * len(rows)
    price = resolve_price(suite.judge.model, suite.judge.price_per_mtok)
    cost = None if price is None else round(calls * cost_usd(*ASSUMED_JUDGE_TOKENS, price), 2)
    return {"suite": suite.name, "runs": rows, "judge_calls": calls, "judge_cost_usd": cost,
            "eval_points_per_run": n_points, "eval_items": items, "llm_judges": llm_judges}


def check_requirements(suite: SuiteConfig) -> None:
    """Stop at once, naming everything missing, before any model is loaded."""
    missing = []
    if suite.requires.gpu:
        import torch

        if not torch.cuda.is_available():
            missing.append("a CUDA GPU (none is visible)")
    if suite.requires.judge_endpoint and not (os.environ.get(suite.judge.api_key_env) or suite.judge.base_url):
        missing.append(f"a judge endpoint (set ${suite.judge.api_key_env}, or judge.base_url for a local server)")
    if suite.requires.online_data:
        for name, d in {"train": suite.data.train, **suite.data.eval}.items():
            if d.source != "world" and not d.path and not os.environ.get("GADBENCH_DATA_DIR") and os.environ.get("HF_HUB_OFFLINE"):
                missing.append(f"the `{name}` data ({d.source}): set its path or $GADBENCH_DATA_DIR, or allow hub access")
    if missing:
        raise MissingRequirement(
            f"suite `{suite.name}` needs {'; '.join(missing)}. Use `gadbench run --suite {suite.name} --dry-run` "
            "to see its plan anywhere."
        )


# --------------------------------------------------------------------------------------------------- run


RUN_IN_USE_FIX = ("wait for it to end and rerun with --resume, or use another --out (--skip-locked runs the "
                  "suite's other runs)")


def run_suite(suite: SuiteConfig, out_root: Path, resume: bool = False, progress: bool = True,
              skip_locked: bool = False, memory_check: bool = True) -> Path:
    """Train, evaluate and summarize every run of `suite` under `out_root/<suite>/`. A run that another process
    owns stops the suite before anything is written, or with `skip_locked` is skipped with a warning. With
    `memory_check`, a run predicted not to fit this launch's memory stops the suite first (gadbench.memory)."""
    check_requirements(suite)
    if memory_check:
        from gadbench import memory

        memory.check(suite, memory.launch_of(suite.train.device))
    for r in runs_of(suite):
        make_reward(r)  # an unimportable reward stops the suite before any model loads
    if suite.toy is not None:
        from gadbench.worlds.toy import write_toy_run

        return write_toy_run(suite, Path(out_root))
    suite_dir = Path(out_root) / suite.name
    steps = steps_for(suite)
    runs = runs_of(suite)
    with owning() as held:
        if not skip_locked:  # all or nothing, before the first write: a second process stops at once
            for r in runs:
                if problem := own(held, suite_dir, r.run_id):
                    raise RunLockError(problem)
        suite_dir.mkdir(parents=True, exist_ok=True)
        if dist.is_main():
            atomic_write_json(suite_dir / "suite.json", {"suite": suite.name, "config": to_dict(suite),
                                                         "runs": [r.run_id for r in runs],
                                                         "paper_baseline": suite.paper_baseline, "steps": steps})
        skipped = []
        for r in runs:
            if problem := own(held, suite_dir, r.run_id):
                log.warning("%s; skipped (--skip-locked)", problem)
                skipped.append(r.run_id)
                continue
            run_one(r, suite_dir / r.run_id, steps[r.run_id], resume=resume, progress=progress)
        for r in runs:  # the runs others have finished meanwhile get their budget check too
            own(held, suite_dir, r.run_id)
        if dist.is_main():
            write_before_rows(suite, suite_dir, runs)
            record_budget_check(suite, suite_dir, [r for r in runs if r.run_id in held])
        dist.barrier()
    if skipped:
        log.warning("%d run(s) skipped, in use by other processes: %s; when they end, rerun with --resume to "
                    "complete the suite", len(skipped), ", ".join(skipped))
    return suite_dir


@contextlib.contextmanager
def owning():
    """run_id -> RunLock of the runs this process owns (process 0's locks); all given up when the block ends."""
    held: dict[str, RunLock] = {}
    try:
        yield held
    finally:
        for lock in held.values():
            lock.release()


def own(held: dict[str, RunLock], suite_dir: Path, run_id: str) -> str | None:
    """Own run `run_id` unless this process does already: None when it does, else why not (another process
    holds it). Process 0 takes the lock for all processes of a launch and every process gets its answer."""

    def take() -> str | None:
        if run_id not in held:
            lock = RunLock(suite_dir / run_id, RUN_IN_USE_FIX)
            try:
                lock.acquire()
            except RunLockError as e:
                return str(e)
            held[run_id] = lock
        return None

    return dist.from_main(take)


def run_one(spec: RunSpec, run_dir: Path, steps: int, resume: bool, progress: bool) -> dict:
    """Train, evaluate and summarize one run; the caller owns the run (see `own`)."""
    from gadbench.eval.evaluator import Evaluator
    from gadbench.llm.client import Usage
    from gadbench.rundata import load_run_data, run_teacher
    from gadbench.trainer import Trainer

    run = RunDir(run_dir)
    if resume and run.summary.exists():
        log.info("%s: already complete, skipped", spec.run_id)
        return read_json(run.summary)
    if dist.is_main():
        if not resume and run.path.exists():
            shutil.rmtree(run.path)
        run.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run.config, to_yaml(spec))
    dist.barrier()
    log.info("%s: %d steps", spec.run_id, steps)
    # Process 0 alone builds and asks the teacher (an hf teacher is a whole model); the others get the data.
    data = dist.from_main(lambda: load_run_data(spec, run_teacher(spec, run.cache)))
    for report in data.reports:  # nothing is dropped silently (docs/data.md)
        log.info("%s: data %s", spec.run_id, report.summary())
    if data.teacher_usage:
        log.info("%s: teacher %s", spec.run_id, Usage(**data.teacher_usage).summary())
    evaluator = Evaluator(spec, data, run.path, run.cache)
    trainer = Trainer(spec, run.path, data, reward_fn=make_reward(spec), on_eval=evaluator, steps=steps,
                      progress=progress)
    try:
        meter = trainer.train(resume=resume)
    finally:
        trainer.ctx.engine.close()  # a vLLM engine frees its GPU memory before the next run starts one
    if not dist.is_main():
        return {}
    atomic_write_json(run.budget, meter.state())
    summary = summarize_run(spec, run, meter.state()["totals"], data, evaluator)
    atomic_write_json(run.summary, summary)
    return summary


def selection_metric(spec: RunSpec) -> str:
    if spec.eval.selection_metric:
        return spec.eval.selection_metric
    j = spec.eval.judges[0]
    return "gold/teacher_logprob" if j == "gold" else f"{j}/score"


def judge_departures(spec: RunSpec) -> list[str]:
    """How the run's LLM judging departs from the paper's (GPT-4o, free replies); none without an LLM judge."""
    if not any(j in JUDGE_CALLS_PER_ITEM for j in spec.eval.judges):
        return []
    out = [f"judge model {spec.judge.model} instead of GPT-4o"] if spec.judge.model != "gpt-4o" else []
    if spec.judge.guided:
        out.append("judge verdicts constrained to the protocol's verdict lines (judge.guided)")
    return out


def summarize_run(spec: RunSpec, run: RunDir, totals: dict, data, evaluator) -> dict:
    from gadbench.eval.selection import CheckpointScores, select_checkpoint

    points = {k: read_json(run.eval_dir(k) / "metrics.json") for k in run.eval_steps() if k > 0}
    metric = selection_metric(spec)
    rule = spec.eval.selection if data.validation or spec.eval.selection != "validation" else "last"

    def score(m: dict, name: str):
        return (m.get(name, {}).get(metric) or {}).get("mean")

    cands = [CheckpointScores(step=k, validation=score(m, "validation"),
                              test={d: score(m, d) for d in m if d != "validation" and score(m, d) is not None},
                              length={d: m[d]["length"]["mean"] for d in m if d != "validation"})
             for k, m in sorted(points.items())]
    teacher_len = {d: s["teacher_length"] for d, s in points[max(points)].items() if "teacher_length" in s}
    sel = select_checkpoint(cands, rule=rule, teacher_length=teacher_len)
    chosen = points[sel.step]
    departures = []
    if sel.on_test_sets:
        departures.append("checkpoint chosen on the test sets (paper protocol)")
    elif rule == "validation":
        departures.append(f"checkpoint chosen on a validation split of {len(data.validation)} training prompts, "
                          "not on the test sets as in the paper")
    if rule == "last" and spec.eval.selection == "validation":
        departures.append("no validation split: the last checkpoint is reported")
    departures += judge_departures(spec)
    warnings = []
    lengths = [r for r in read_jsonl(run.metrics) if r.get("length_warning")]
    if lengths:
        warnings.append(f"response length exceeded {spec.train.length_warning_ratio}x the teacher's at "
                        f"{len(lengths)} steps (first: step {lengths[0]['step']}): possible reward hacking")
    return {
        "run_id": spec.run_id, "suite": spec.suite, "student": spec.student_name, "method": spec.method_name,
        "seed": spec.seed, "selection": {**sel.to_json(), "metric": metric},
        "eval": {d: s for d, s in chosen.items() if d != "validation"},
        "validation": chosen.get("validation"),
        "budget": totals, "judge_usage": evaluator.usage, "teacher_usage": data.teacher_usage, "warnings": warnings,
        "departures": departures, "data": [asdict(r) for r in data.reports],
    }


def write_before_rows(suite: SuiteConfig, suite_dir: Path, runs: list[RunSpec]) -> None:
    """A `before` pseudo-run per student and seed: the step-0 evaluation (the student before distillation)."""
    done = set()
    for r in runs:
        key = (r.student_name, r.seed)
        step0 = suite_dir / r.run_id / "eval" / "step-0" / "metrics.json"
        if key in done or not step0.exists():
            continue
        done.add(key)
        m = read_json(step0)
        before_dir = suite_dir / f"{r.student_name}--before--s{r.seed}"
        summary = {"run_id": before_dir.name, "suite": suite.name, "student": r.student_name, "method": "before",
                   "seed": r.seed, "selection": {"rule": "initial", "checkpoint": 0, "note": "student before distillation"},
                   "eval": {d: s for d, s in m.items() if d != "validation"}, "validation": m.get("validation"),
                   "budget": {}, "judge_usage": {}, "warnings": [], "departures": []}
        atomic_write_json(before_dir / "summary.json", summary)


def record_budget_check(suite: SuiteConfig, suite_dir: Path, runs: list[RunSpec]) -> None:
    """Compare what each complete run of `runs` (runs this process owns) spent within each (student, seed)
    group; flag runs outside the tolerance. Checking again replaces the previous check and its warning."""
    groups: dict[tuple, dict[str, dict]] = {}
    for r in runs:
        run_dir = suite_dir / r.run_id
        if (run_dir / "summary.json").exists():  # written after budget.json: the run is complete
            groups.setdefault((r.student_name, r.seed), {})[r.run_id] = read_json(run_dir / "budget.json")
    checks = {}
    for budgets in groups.values():
        checks.update(check_matched(budgets, suite.budget.match, suite.budget.tolerance))
    for run_id, check in checks.items():
        path = suite_dir / run_id / "summary.json"
        summary = read_json(path)
        summary["budget_check"] = check
        summary["warnings"] = [w for w in summary["warnings"] if not w.startswith("budget outside the ")]
        if not check["within"]:
            summary["warnings"].append(f"budget outside the {suite.budget.match} tolerance (ratio {check['ratio']})")
        atomic_write_json(path, summary)
    record = read_json(suite_dir / "suite.json")
    record["budget_check"] = checks
    atomic_write_json(suite_dir / "suite.json", record)
