"""Running a suite: the plan (runs, stages, matched budgets, judge cost), each run, and the suite record.

results/<suite>/suite.json   resolved suite, run ids, budget check
results/<suite>/<run_id>/    config.yaml, metrics.jsonl, budget.json, eval/, summary.json (docs/results-format.md)

A process owns each run it writes (gadbench.rundir): it takes the run's lock before the run's first write
and holds it until the suite ends, because the suite's closing budget check writes into the runs' summaries.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

from gadbench import GadbenchError, dist
from gadbench.budget import check_matched, estimate_params
from gadbench.config import ConfigError, LogConfig, RunSpec, SuiteConfig, to_dict, to_yaml
from gadbench.data import SOURCES
from gadbench.data.files import check_file
from gadbench.io import (
    DamagedFileError,
    atomic_write_json,
    atomic_write_text,
    kill_point,
    read_json,
    read_jsonl,
)
from gadbench.judge.records import JUDGES, metric_info
from gadbench.llm.pricing import cost_usd, resolve_price
from gadbench.methods import estimate_run, eval_steps, identity_of, stage_plan, uses_discriminator
from gadbench.methods.rewards import make_reward
from gadbench.progress import duration
from gadbench.rundir import RunDir, RunLock, RunLockError
from gadbench.suite import runs_of, selection_metric
from gadbench.tracking import missing_tracker

log = logging.getLogger("gadbench")

ASSUMED_JUDGE_TOKENS = (900, 300)  # prompt, completion tokens per judge call (estimate)


class MissingRequirement(GadbenchError, RuntimeError):
    """The suite needs something this machine lacks; the message names it."""


class OutDirError(GadbenchError, OSError):
    """`--out` is not a folder this process can write in; the message says why."""


class ResultsExist(GadbenchError):
    """A fresh start over runs that are complete or started; --resume continues them, --force starts again."""


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
                     "stages": " + ".join(f"{s.name} {s.steps}" for s in stages), "params": p, "d_params": dp,
                     "eval_steps": eval_steps(r, stages), **est})
    return {"suite": suite.name, "runs": rows, **judge_cost(suite, rows)}


def judge_cost(suite: SuiteConfig, rows: list[dict]) -> dict:
    """LLM judge calls of a suite, from the judge records. Items = the eval sets' sizes + the validation split,
    judged at every evaluation step of every run, except that step 0 (the student before distillation, the same
    greedy answers for every method of a student and seed) is asked once per student and seed; the judge's own
    reference answers (`calls_per_prompt`) once per item for the whole suite. Both are what the judge cache
    (<out>/cache/judge.sqlite, shared by the suite's runs) leaves to send; re-asks are not counted."""
    llm_judges = [j for j in suite.eval.judges if JUDGES[j].llm]
    items = sum(d.limit or SOURCES[d.source].size or 0 for d in suite.data.eval.values()) + suite.data.validation_size
    per_item = sum(JUDGES[j].calls_per_item for j in llm_judges)
    before = {(r["student"], r["seed"]) for r in rows}
    points = sum(len(r["eval_steps"]) for r in rows) - (len(rows) - len(before))  # step 0 once per student and seed
    item_calls = per_item * items * points
    reference_calls = sum(JUDGES[j].calls_per_prompt for j in llm_judges) * items if rows else 0
    calls = item_calls + reference_calls
    price = resolve_price(suite.judge.model, suite.judge.price_per_mtok)
    cost = None if price is None else round(calls * cost_usd(*ASSUMED_JUDGE_TOKENS, price), 2)
    return {"judge_calls": calls, "judge_item_calls": item_calls, "judge_reference_calls": reference_calls,
            "judge_cost_usd": cost, "eval_points_per_run": max((len(r["eval_steps"]) for r in rows), default=0),
            "eval_items": items, "llm_judges": llm_judges, "eval_start": suite.eval.start, "eval_every": suite.eval.every}


def check_requirements(suite: SuiteConfig) -> None:
    """Stop at once, naming everything missing, before any model is loaded."""
    missing = []
    if suite.requires.gpu:
        import torch

        if not torch.cuda.is_available():
            missing.append("a CUDA GPU (none is visible)")
    if suite.rollout.engine == "vllm" and importlib.util.find_spec("vllm") is None:
        missing.append("vLLM for rollout.engine=vllm (pip install 'gadbench[vllm]', docs/scale.md; or "
                       "--set rollout.engine=hf)")
    if suite.requires.judge_endpoint and not (os.environ.get(suite.judge.api_key_env) or suite.judge.base_url):
        missing.append(f"a judge endpoint (set ${suite.judge.api_key_env}, or judge.base_url for a local server)")
    if suite.requires.online_data:
        for name, d in {"train": suite.data.train, **suite.data.eval}.items():
            if d.source != "world" and not d.path and not os.environ.get("GADBENCH_DATA_DIR") and os.environ.get("HF_HUB_OFFLINE"):
                missing.append(f"the `{name}` data ({d.source}): set its path or $GADBENCH_DATA_DIR, or allow hub access")
    if problem := missing_tracker(suite.log):
        missing.append(problem)
    if missing:
        raise MissingRequirement(
            f"suite `{suite.name}` needs {'; '.join(missing)}. Use `gadbench run --suite {suite.name} --dry-run` "
            "to see its plan anywhere."
        )


# --------------------------------------------------------------------------------------------------- run


RUN_IN_USE_FIX = ("wait for it to end and rerun with --resume, or use another --out (--skip-locked runs the "
                  "suite's other runs)")


def run_suite(suite: SuiteConfig, out_root: Path, resume: bool = False, progress: bool = True,
              skip_locked: bool = False, force: bool = False, memory_check: bool = True) -> Path:
    """Train, evaluate and summarize every run of `suite` under `out_root/<suite>/`. A run that another process
    owns stops the suite before anything is written, or with `skip_locked` is skipped with a warning. Without
    `resume` or `force`, runs that are complete or started stop the suite before anything is written
    (`ResultsExist`); `force` trains them again from scratch. With `memory_check`, a run predicted not to fit
    this launch's memory stops the suite first (gadbench.capacity)."""
    if suite.toy is None and not (suite.students and suite.methods):
        raise ConfigError(f"suite `{suite.name}` has no runs ({len(suite.students)} students x {len(suite.methods)} "
                          "methods); give it at least one student and one method.")
    check_requirements(suite)
    for d in (suite.data.train, *suite.data.eval.values()):
        if d.path:
            check_file(d.path)  # a data file that is not there stops the suite before anything is written
    if memory_check:
        from gadbench import capacity

        capacity.check(suite, capacity.launch_of(suite.train.device))
    for r in runs_of(suite):
        make_reward(r)  # an unimportable reward stops the suite before any model loads
    check_out(Path(out_root))
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
        if not resume and not force:
            refuse_existing(suite_dir, runs)
        log.info("suite %s: %d runs, results in %s", suite.name, len(runs), suite_dir)
        suite_dir.mkdir(parents=True, exist_ok=True)
        if dist.is_main():
            atomic_write_json(suite_dir / "suite.json", {"suite": suite.name, "config": to_dict(suite),
                                                         "runs": [r.run_id for r in runs],
                                                         "paper_baseline": suite.paper_baseline, "steps": steps})
        skipped = []
        clock = SuiteClock(runs, steps)
        for i, r in enumerate(runs):
            if problem := own(held, suite_dir, r.run_id):
                log.warning("%s; skipped (--skip-locked)", problem)
                skipped.append(r.run_id)
                clock.skip(r.run_id)
                continue
            if resume and complete_summary(r, RunDir(suite_dir / r.run_id)) is not None:
                log.info("run %d/%d: %s: already complete, skipped", i + 1, len(runs), r.run_id)
                clock.skip(r.run_id)
                continue
            log.info("run %d/%d: %s, %d steps; %s", i + 1, len(runs), r.run_id, steps[r.run_id], clock.left())
            start = time.monotonic()
            summary = run_one(r, suite_dir / r.run_id, steps[r.run_id], resume=resume, progress=progress,
                              log_cfg=suite.log)
            clock.done(r.run_id, time.monotonic() - start)
            if dist.is_main():
                log.info("run %d/%d done in %s: %s", i + 1, len(runs), duration(time.monotonic() - start),
                         finished_line(summary))
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


def check_out(out_root: Path) -> None:
    """`out_root` is a folder this process can write in (created when missing), else one line saying why."""
    try:
        out_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_root):
            pass
    except FileExistsError:
        raise OutDirError(f"--out {out_root} is a file, not a folder; pass a folder (it is created when "
                          "missing).") from None
    except NotADirectoryError:
        raise OutDirError(f"--out {out_root} lies under a file, not a folder; pass a path whose parents are "
                          "folders.") from None
    except OSError as e:
        raise OutDirError(f"cannot write in --out {out_root} ({e.strerror or e}); pass a folder you can write to, "
                          "or fix its permissions.") from None


def incomplete_runs(suite: SuiteConfig, suite_dir: Path) -> list[str]:
    """The runs of `suite` without a summary under `suite_dir` (others are still training them, or were killed)."""
    return [r.run_id for r in runs_of(suite) if not (suite_dir / r.run_id / "summary.json").exists()]
def refuse_existing(suite_dir: Path, runs: list[RunSpec]) -> None:
    """Stop a fresh start that would overwrite runs that are complete (summary.json) or started (a step log or
    a checkpoint), naming how many and the two ways on."""
    complete = started = 0
    for r in runs:
        run = RunDir(suite_dir / r.run_id)
        if run.summary.exists():
            complete += 1
        elif run.metrics.exists() or run.checkpoint_steps():
            started += 1
    if not complete and not started:
        return
    parts = ([f"{complete} run{'s are' if complete > 1 else ' is'} complete"] if complete else []) + (
        [f"{started} run{'s have' if started > 1 else ' has'} started"] if started else [])
    raise ResultsExist(f"{' and '.join(parts)} in {suite_dir}; add --resume to continue or --force to start "
                       "again.")


class SuiteClock:
    """The time a suite has left, estimated from the runs this process has trained: their seconds per training
    step (every stage's steps) times the steps of the runs still to come. (Estimated FLOPs made a worse guide:
    on small models evaluation, not training FLOPs, takes most of a run's time.)"""

    def __init__(self, runs: list[RunSpec], steps: dict[str, int]):
        self.todo = {r.run_id: sum(s.steps for s in stage_plan(r, steps[r.run_id])) for r in runs}
        self.spent_s = self.spent_steps = 0.0

    def skip(self, run_id: str) -> None:
        self.todo.pop(run_id, None)

    def done(self, run_id: str, seconds: float) -> None:
        self.spent_s += seconds
        self.spent_steps += self.todo.pop(run_id, 0)

    def left(self) -> str:
        if not self.spent_steps:
            return "time left estimated after the first run"
        return f"about {duration(self.spent_s / self.spent_steps * sum(self.todo.values()))} left (estimate)"


def finished_line(summary: dict) -> str:
    """`<run_id>: selected step K (rule); <metric> <set> <mean>, ...` from a run's summary.json."""
    sel = summary.get("selection") or {}
    metric = sel.get("metric")
    scores = []
    for name, stats in [("validation", summary.get("validation") or {}), *(summary.get("eval") or {}).items()]:
        mean = ((stats or {}).get(metric) or {}).get("mean")
        if mean is not None:
            scores.append(f"{name} {mean:.4g}")
    score = f"; {metric}: {', '.join(scores[:3])}" if metric and scores else ""
    return f"{summary.get('run_id')}: selected step {sel.get('checkpoint')} ({sel.get('rule')}){score}"


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


def run_one(spec: RunSpec, run_dir: Path, steps: int, resume: bool, progress: bool,
            log_cfg: LogConfig | None = None) -> dict:
    """Train, evaluate and summarize one run; the caller owns the run (see `own`) and has passed over complete
    ones (`complete_summary`). `log_cfg` names the live tracker (gadbench.tracking), opened on process 0."""
    from gadbench.eval.evaluator import Evaluator
    from gadbench.llm.client import Usage
    from gadbench.rundata import load_run_data, run_teacher
    from gadbench.tracking import open_tracker
    from gadbench.trainer import Trainer

    run = RunDir(run_dir)
    if dist.is_main():
        if not resume and run.path.exists():
            shutil.rmtree(run.path)
        run.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run.config, to_yaml(spec))
    dist.barrier()
    log.info("%s: loading the data and the teacher's responses (teacher %s)", spec.run_id, spec.teacher.spec)
    # Process 0 alone builds and asks the teacher (an hf teacher is a whole model); the others get the data.
    data = dist.from_main(lambda: load_run_data(spec, run_teacher(spec, run.cache)))
    for report in data.reports:  # nothing is dropped silently (docs/data.md)
        log.info("%s: data %s", spec.run_id, report.summary())
    for name, o in data.overlap.items():
        if o["overlap"]:  # allowed (data.allow_overlap), else loading stopped
            log.warning("%s: eval set %s: %d of %d prompts are also training prompts (data.allow_overlap)",
                        spec.run_id, name, o["overlap"], o["n"])
    if data.teacher_usage:
        log.info("%s: teacher %s", spec.run_id, Usage(**data.teacher_usage).summary())
    evaluator = Evaluator(spec, data, run.path, run.cache)
    # budget.json is written once training has ended: a resumed run that has it is summarized (again) only
    trained = dist.from_main(lambda: _readable(run.budget, "training from the last checkpoint") if resume else None)
    if trained is None:
        tracker = open_tracker(log_cfg, spec, run.path) if log_cfg is not None and dist.is_main() else None
        try:
            trainer = Trainer(spec, run.path, data, on_eval=evaluator, steps=steps, progress=progress,
                              tracker=tracker)
            try:
                trained = trainer.train(resume=resume).state()
            finally:
                trainer.ctx.engine.close()  # a vLLM engine frees its GPU memory before the next run starts one
            if dist.is_main():  # judgments still in flight, and any a kill left undone, before training counts as ended
                evaluator.wait(trainer.ctx)
        finally:
            if tracker is not None:
                tracker.close()
        if dist.is_main():
            atomic_write_json(run.budget, trained)
    if not dist.is_main():
        return {}
    if resume:
        evaluator.reask()  # judgments whose call failed (a judge outage) are asked again
    kill_point("before-summary")
    summary = summarize_run(spec, run, trained["totals"], data)
    atomic_write_json(run.summary, summary)
    kill_point("after-summary")
    if not spec.train.checkpoints_after_run:
        shutil.rmtree(run.checkpoints, ignore_errors=True)
    return summary


def complete_summary(spec: RunSpec, run: RunDir) -> dict | None:
    """The run's summary when it is complete: readable, with no failed judgment to ask again (else None)."""
    from gadbench.eval.evaluator import failed_steps

    summary = _readable(run.summary, "summarizing the run again")
    return summary if summary is not None and not failed_steps(run.path, spec.eval.judges) else None


def _readable(path: Path, instead: str) -> dict | None:
    """The JSON object in `path`, or None when it is missing or damaged (with a warning naming it and `instead`,
    what the caller does in its place)."""
    if not path.exists():
        return None
    try:
        value = read_json(path)
    except DamagedFileError as e:
        log.warning("%s; %s", e.problem, instead)
        return None
    if not isinstance(value, dict):
        log.warning("%s holds no JSON object; %s", path, instead)
        return None
    return value


def judge_departures(spec: RunSpec) -> list[str]:
    """How the run's LLM judging departs from the paper's (GPT-4o, free replies); none without an LLM judge."""
    if not any(JUDGES[j].llm for j in spec.eval.judges):
        return []
    out = [f"judge model {spec.judge.model} instead of GPT-4o"] if spec.judge.model != "gpt-4o" else []
    if spec.judge.guided:
        out.append("judge verdicts constrained to the protocol's verdict lines (judge.guided)")
    return out


class NoEvaluationError(GadbenchError, RuntimeError):
    """A run has no readable evaluation to report."""


def truncation_warning(spec: RunSpec, rows: list[dict]) -> str | None:
    """The summary's warning when steps cut more than `train.truncation_warning` of their rollouts or teacher
    responses at max_response_tokens (metrics.jsonl `truncation_warning`), with the mean shares cut."""
    flagged = [r for r in rows if r.get("truncation_warning")]
    if not flagged:
        return None

    def mean_of(key: str) -> str:
        values = [r[key] for r in rows if isinstance(r.get(key), int | float)]
        return f"{sum(values) / len(values):.0%}" if values else "n/a"

    return (f"more than {spec.train.truncation_warning:.0%} of the rollouts or teacher responses were cut at "
            f"train.max_response_tokens = {spec.train.max_response_tokens} at {len(flagged)} of {len(rows)} steps "
            f"(first: step {flagged[0]['step']}; cut on average: rollouts {mean_of('truncated_frac')}, teacher "
            f"responses {mean_of('teacher_truncated_frac')}): raise train.max_response_tokens")


def summarize_run(spec: RunSpec, run: RunDir, totals: dict, data) -> dict:
    """summary.json of a trained run: the checkpoint `eval.selection` picks among the evaluation points with a
    score to pick on (a point without one, e.g. every judgment failed in a judge outage, or a damaged
    metrics.json, is left out with a warning naming it), its statistics, and the judge usage of every
    evaluation (eval/step-K/usage.json)."""
    from gadbench.eval.evaluator import stored_metrics, stored_usage
    from gadbench.eval.selection import CheckpointScores, select_checkpoint

    warnings = []
    points = {}
    for k in (k for k in run.eval_steps() if k > 0):
        rebuild = f"`gadbench eval {run.path} --checkpoint {k}` rebuilds it"
        m = stored_metrics(run.eval_dir(k), damaged=f"step {k} is left out of checkpoint selection; {rebuild}")
        if m is None:
            warnings.append(f"eval/step-{k}/metrics.json is damaged: step {k} was left out of checkpoint "
                            f"selection; {rebuild}")
        else:
            points[k] = m
    if not points:
        raise NoEvaluationError(f"{run.path} has no readable evaluation after step 0 (eval/step-K/metrics.json); "
                                "rerun without --resume to train it again.")
    metric = selection_metric(spec)
    rule = spec.eval.selection if data.validation or spec.eval.selection != "validation" else "last"

    def score(m: dict, name: str):
        return (m.get(name, {}).get(metric) or {}).get("mean")

    cands = [CheckpointScores(step=k, validation=score(m, "validation"),
                              test={d: score(m, d) for d in m if d != "validation" and score(m, d) is not None},
                              length={d: m[d]["length"]["mean"] for d in m if d != "validation"})
             for k, m in sorted(points.items())]
    teacher_len = {d: s["teacher_length"] for d, s in points[max(points)].items() if "teacher_length" in s}
    sel = select_checkpoint(cands, rule=rule, teacher_length=teacher_len,
                            higher_is_better=metric_info(metric).higher_is_better is not False)
    where = "the validation split" if rule == "validation" else "any test set"
    for k in sel.skipped:
        warnings.append(f"evaluation at step {k} has no valid {metric} score on {where} (every judgment failed, "
                        "e.g. a judge outage): it was left out of checkpoint selection; `gadbench run --resume` "
                        "asks the failed judgments again")
        log.warning("%s: %s", spec.run_id, warnings[-1])
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
    rows = list(read_jsonl(run.metrics))
    lengths = [r for r in rows if r.get("length_warning")]
    if lengths:
        warnings.append(f"response length exceeded {spec.train.length_warning_ratio}x the teacher's at "
                        f"{len(lengths)} steps (first: step {lengths[0]['step']}): possible reward hacking")
    if cut := truncation_warning(spec, rows):
        warnings.append(cut)
    return {
        "run_id": spec.run_id, "suite": spec.suite, "student": spec.student_name, "method": spec.method_name,
        "seed": spec.seed, "identity": identity_of(spec).to_json(spec.method.description),
        "search_point": spec.search_point, "selection": {**sel.to_json(), "metric": metric},
        "eval": {d: s for d, s in chosen.items() if d != "validation"},
        "validation": chosen.get("validation"),
        "budget": totals, "judge_usage": stored_usage(run.path), "teacher_usage": data.teacher_usage,
        "warnings": warnings, "departures": departures, "data": [asdict(r) for r in data.reports],
        "data_overlap": data.overlap,
    }


BEFORE = {"key": "before", "family": "before", "label": "Before distill.", "group": None,
          "description": "the student before distillation (its step-0 evaluation)"}


def write_before_rows(suite: SuiteConfig, suite_dir: Path, runs: list[RunSpec]) -> None:
    """A `before` pseudo-run per student and seed: the step-0 evaluation (the student before distillation)."""
    from gadbench.eval.evaluator import stored_metrics

    done = set()
    for r in runs:
        key = (r.student_name, r.seed)
        if key in done:
            continue
        m = stored_metrics(suite_dir / r.run_id / "eval" / "step-0", damaged="the before row is taken from another run")
        if m is None:
            continue
        done.add(key)
        before_dir = suite_dir / f"{r.student_name}--before--s{r.seed}"
        summary = {"run_id": before_dir.name, "suite": suite.name, "student": r.student_name, "method": "before",
                   "seed": r.seed, "identity": BEFORE,
                   "selection": {"rule": "initial", "checkpoint": 0, "note": "student before distillation"},
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
