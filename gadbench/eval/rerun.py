"""Evaluating a stored run's checkpoint again (`gadbench eval`, gadbench.commands.eval): its spec, the
checkpoint to read, the model context, and the summaries the new statistics update."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from pathlib import Path

import yaml

from gadbench import GadbenchError, one_line
from gadbench.config import RunSpec, apply_override, run_spec_from_dict
from gadbench.io import atomic_write_json, read_json
from gadbench.rundir import RunDir, RunLock, verify

log = logging.getLogger("gadbench")


class EvalError(GadbenchError, ValueError):
    """A run directory or checkpoint that cannot be evaluated; the message says why and what to do."""


def load_spec(run_dir: Path, judges: list[str] | None = None, overrides: list[str] = ()) -> RunSpec:
    """The run's spec from its config.yaml, with `overrides` (`--set KEY=VALUE`, e.g. judge.base_url) applied
    and `judges` replacing eval.judges."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise EvalError(f"{run_dir} is not a run directory (no config.yaml); pass a results/<suite>/<run_id> folder.")
    try:
        raw = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        what = "not UTF-8 text" if isinstance(e, UnicodeDecodeError) else "not valid YAML"
        raise EvalError(f"{path} is {what} ({one_line(str(e))}); the run directory is damaged.") from None
    if not isinstance(raw, dict):
        raise EvalError(f"{path} holds no mapping of settings; the run directory is damaged.")
    dropped = _drop_unknown(RunSpec, raw, "")
    if dropped:  # a run written by another gadbench version: settings this version no longer has
        log.warning("%s: ignoring settings this gadbench version does not know: %s", path, ", ".join(dropped))
    for item in overrides:  # after the drop: an unknown key given here is a mistake, named by the type check
        apply_override(raw, item)
    spec = run_spec_from_dict(raw, str(path))
    if judges:
        spec = replace(spec, eval=replace(spec.eval, judges=tuple(judges)))
    return spec


def _drop_unknown(cls, raw, where: str) -> list[str]:
    """Remove (in place) keys of `raw` that dataclass `cls` and its nested dataclasses lack; return their paths."""
    import dataclasses
    import typing

    if not isinstance(raw, dict) or not dataclasses.is_dataclass(cls):
        return []
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    dropped = []
    for key in list(raw):
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            dropped.append(path)
            del raw[key]
            continue
        tp = hints[key]
        if typing.get_origin(tp) is dict and isinstance(raw[key], dict):
            for name, value in raw[key].items():
                dropped += _drop_unknown(typing.get_args(tp)[1], value, f"{path}.{name}")
        else:
            for arg in (tp, *typing.get_args(tp)):
                if dataclasses.is_dataclass(arg):
                    dropped += _drop_unknown(arg, raw[key], path)
                    break
    return dropped


def choose_checkpoint(run_dir: Path, requested: int | None) -> int:
    """The requested step (0 = the initial student), else the summary's selection if kept or answered, else the
    latest checkpoint. A step is usable when its checkpoint is kept or its answers are stored."""
    run = RunDir(run_dir)
    have = run.checkpoint_steps()
    usable = {0, *have, *run.eval_steps()}
    if requested is not None:
        if requested in usable:
            return requested
        kept = ", ".join(map(str, have)) or "none"
        answered = ", ".join(map(str, run.eval_steps())) or "none"
        raise EvalError(f"{run_dir} has no checkpoint or stored answers of step {requested} (checkpoints: {kept}; "
                        f"answers: {answered}; 0 = the initial student).")
    summary = run_dir / "summary.json"
    if summary.exists():
        chosen = (read_json(summary).get("selection") or {}).get("checkpoint")
        if isinstance(chosen, int) and chosen in usable:
            return chosen
    if not have:
        if run.earlier_format_steps():
            raise EvalError(f"the checkpoints of {run_dir} were written by an earlier gadbench version (state.pt), "
                            "which this one does not read; evaluate them with that version.")
        raise EvalError(f"{run_dir} has no checkpoint (checkpoints/step-K/complete.json); pass --checkpoint 0 to "
                        "evaluate the initial student.")
    return have[-1]


def load_context(spec: RunSpec, run_dir: Path, step: int, with_d: bool = False):
    """The run's context (`build_context`) with the weights of checkpoint `step` (the initial ones for step
    0), reading only G's (and D's) part; D only when `with_d` and the run has one. Without D, a bf16 run's G is
    held in bf16: the weights its answers were generated from during training (the rollout engine's bf16 copy
    of fp32 G, or the bf16 copy gathered from the shards), without an fp32 copy beside them. Models are in
    eval mode."""
    from gadbench.methods.context import build_context
    from gadbench.models import load_causal_lm
    from gadbench.runtime import setup
    from gadbench.state import checkpoint

    device = setup(spec.train, spec.seed)
    student = spec.student
    if spec.train.precision == "bf16" and not with_d:  # D is built from G's weights: then G stays as trained
        student = replace(student, dtype="bfloat16")
    cache = RunDir(run_dir).cache
    ctx = build_context(spec, device, g=load_causal_lm(student, cache=cache), with_d=with_d, cache=cache)
    if step:
        models = {"g": ctx.g.model, **({"d": ctx.d.model} if ctx.d is not None else {})}
        checkpoint.load(RunDir(run_dir), step, models)
    for m in (ctx.g, ctx.d):
        if m is not None:
            m.model.eval()
    return ctx


EVAL_IN_USE_FIX = "the run is incomplete and its files are changing; run `gadbench eval` again when it has ended"


def evaluate_checkpoint(run_dir: str | Path, checkpoint: int | None = None, judges: list[str] | None = None,
                        overrides: list[str] = (), sets: bool = True, lm_eval_tasks: list[str] | None = None,
                        lm_eval_include: str | Path | None = None, limit: int | float | None = None,
                        lm_eval_batch_size: int = 4) -> dict:
    """Evaluate one checkpoint; returns {"step", "metrics" (per set, or None), "lm_eval" (or None)}. The run
    must not be in use by another process (gadbench.rundir.RunLock)."""
    from gadbench.suite import check_run  # here: it loads the method records, and torch with them

    run_dir = Path(run_dir).resolve()
    spec = load_spec(run_dir, judges, overrides)
    check_run(spec, str(run_dir / "config.yaml"))
    with RunLock(run_dir, EVAL_IN_USE_FIX):  # it writes into the run: not while another process does
        return _evaluate(spec, run_dir, checkpoint, sets, lm_eval_tasks, lm_eval_include, limit, lm_eval_batch_size)


def _evaluate(spec: RunSpec, run_dir: Path, checkpoint: int | None, sets: bool, lm_eval_tasks: list[str] | None,
              lm_eval_include: str | Path | None, limit: int | float | None, lm_eval_batch_size: int) -> dict:
    import torch

    from gadbench.eval.evaluator import Evaluator, eval_seed, stored_metrics
    from gadbench.methods import uses_discriminator
    from gadbench.methods.updates import d_diagnostics
    from gadbench.rundata import load_run_data, run_teacher

    run = RunDir(run_dir)
    step = choose_checkpoint(run.path, checkpoint)
    out_dir = run.eval_dir(step)
    weights = step == 0 or step in run.checkpoint_steps()
    if weights and step and (problem := verify(run.checkpoint(step))):
        raise EvalError(f"checkpoint step-{step} of {run.path} is damaged ({problem}); pass another --checkpoint, "
                        "or restore it from a copy.")
    if lm_eval_tasks and not weights:
        raise EvalError(f"step {step} of {run.path} has no checkpoint, and lm_eval tasks need the model; pass a "
                        "kept --checkpoint (or 0 for the initial student).")
    data = None
    if sets:
        # The program teacher is cheap and samples from one stream: it answers the training prompts first,
        # as during training, so the eval sets get the same teacher responses. Other teachers skip them.
        data = load_run_data(spec, run_teacher(spec, run.cache), fill_train=spec.teacher.spec.startswith("program"))
        evaluator = Evaluator(spec, data, run.path, run.cache)
        missing = [name for name, examples in evaluator.sets().items()
                   if Evaluator.cached_rows(out_dir, name, examples) is None]
        if missing and not weights:
            raise EvalError(f"step {step} of {run.path} has no checkpoint and no stored answers for "
                            f"{', '.join(missing)}; pass a kept --checkpoint (or 0 for the initial student).")
    stored = (stored_metrics(out_dir) or {}) if sets else {}  # damaged: evaluated again, D's diagnostics too
    # D is loaded only to compute its validation diagnostics when this step's are not stored
    fresh = bool(sets and data.validation) and uses_discriminator(spec) and "d" not in stored.get("validation", {})
    ctx = load_context(spec, run.path, step, with_d=fresh) if weights else None  # None: stored answers only
    result: dict = {"step": step, "metrics": None, "lm_eval": None}
    try:
        if sets:
            fresh = ctx is not None and ctx.d is not None
            extra = {"d": d_diagnostics(ctx, data.validation, step)} if fresh else None  # else the stored ones
            with torch.random.fork_rng(devices=[]):  # the seed the trainer's evaluation of this step used
                torch.manual_seed(eval_seed(spec, step))
                result["metrics"] = evaluator.evaluate(step, ctx, reuse=True, extra=extra)
            result["usage"] = evaluator.usage
            _update_summary(run, spec, step, result["metrics"], evaluator.usage)
    finally:
        if ctx is not None:
            ctx.engine.close()
    if lm_eval_tasks:
        from gadbench.eval.lmeval import run_lm_eval

        include = Path(lm_eval_include).resolve() if lm_eval_include else None
        with contextlib.chdir(include) if include else contextlib.nullcontext():
            out = run_lm_eval(ctx.g.model, ctx.g.tokenizer, lm_eval_tasks, include_path=include, limit=limit,
                              batch_size=lm_eval_batch_size, builtin_tasks=include is None)
        atomic_write_json(out_dir / "lm_eval.json", {"step": step, "tasks": list(lm_eval_tasks), "limit": limit, **out})
        result["lm_eval"] = out
    return result


def _update_summary(run: RunDir, spec: RunSpec, step: int, metrics: dict, usage: dict) -> None:
    """The summaries whose eval block shows `step` take the new statistics (the report's tables read them): the
    run's own when `step` is its reported checkpoint, and for step 0 the suite's `before` row of the run's
    student and seed (every run of a student and seed starts from the same weights and answers). They also
    take the judges' departures from the paper, and the judge usage is added to the one they hold."""
    from gadbench.judge.usage import add_usage
    from gadbench.runner import judge_departures

    paths = [run.path / "summary.json"]
    if step == 0:
        paths.append(run.path.parent / f"{spec.student_name}--before--s{spec.seed}" / "summary.json")
    for path in paths:
        if not path.exists():
            continue
        summary = read_json(path)
        if (summary.get("selection") or {}).get("checkpoint") != step:
            continue
        summary["eval"] = {**(summary.get("eval") or {}), **{d: s for d, s in metrics.items() if d != "validation"}}
        departures = summary.get("departures") or []
        summary["departures"] = departures + [d for d in judge_departures(spec) if d not in departures]
        summary["judge_usage"] = add_usage(summary.get("judge_usage") or {}, usage)
        atomic_write_json(path, summary)


# ------------------------------------------------------------------------------------------------ output


def _fmt(stat: dict) -> str:
    if stat.get("mean") is None:
        return f"n/a (0/{stat.get('n_total', 0)} valid)"
    ci = ""
    if stat.get("ci_low") is not None:
        ci = f" [{stat['ci_low']:.2f}, {stat['ci_high']:.2f}]"
    return f"{stat['mean']:.2f}{ci} n={stat['n_valid']}/{stat['n_total']}"


def metrics_table(metrics: dict) -> str:
    from tabulate import tabulate

    rows = []
    for name, stats in metrics.items():
        for key, stat in stats.items():
            if isinstance(stat, dict):
                text = _fmt(stat)
            elif isinstance(stat, list):  # ngram_f1: one value per n
                text = " ".join("n/a" if v is None else f"{v:.3f}" for v in stat)
            else:
                text = f"{stat:.2f}"
            rows.append([name, key, text])
    return tabulate(rows, headers=["set", "metric", "mean [95% CI] n valid/total"], tablefmt="github")


def lm_eval_table(out: dict) -> str:
    from tabulate import tabulate

    rows = []
    for task, res in out["results"].items():
        for key, value in res.items():
            if key == "alias" or ",stderr" in key or not isinstance(value, int | float):
                continue
            err = res.get(key.replace(",", "_stderr,", 1))
            rows.append([task, key, f"{value:.4f}" + (f" ± {err:.4f}" if isinstance(err, int | float) else "")])
    return tabulate(rows, headers=["task", "metric", "value"], tablefmt="github")
