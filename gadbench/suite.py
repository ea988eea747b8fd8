"""Suites: the registry of experiments/*.yaml, a suite loaded and checked against the records every part of
gadbench reads (methods, judges, teachers, data sources, metrics), and its runs.

`get_suite(NAME or PATH, overrides)` reads the file (gadbench.config: types, ranges, `extends:`, `--set`) and then
checks what the records decide: each method's kind and switches, each judge's name and what it needs, the
teacher backend, the data sources, the selection metric. A problem stops the suite with one line naming the
setting, the file and the fix, before anything is written or loaded.
"""

from __future__ import annotations

import difflib
import itertools
import os
import typing
from pathlib import Path

from gadbench.config import (
    ConfigError,
    MethodConfig,
    RunSpec,
    SuiteConfig,
    TrainConfig,
    build,
    read_suite_file,
    to_dict,
)
from gadbench.data import SOURCES
from gadbench.data.world import DEFAULT_SIZE
from gadbench.judge.records import JUDGES, metric_info, unknown_judge
from gadbench.rundata import WORLD_OFFSETS
from gadbench.teachers import unknown_teacher

# ---------------------------------------------------------------------------------------------- registry


def experiments_dir() -> Path:
    """`$GADBENCH_EXPERIMENTS`, else the `experiments/` folder of the checkout this package runs from."""
    env = os.environ.get("GADBENCH_EXPERIMENTS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "experiments"


def suite_names() -> list[str]:
    """The suites: one per `experiments/*.yaml` file, named after it."""
    return sorted(p.stem for p in experiments_dir().glob("*.yaml"))


def suite_path(name: str) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    path = experiments_dir() / f"{name}.yaml"
    if not path.exists():
        close = difflib.get_close_matches(name, suite_names(), n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"available: {', '.join(suite_names())}."
        raise ConfigError(f"no suite named `{name}` in {experiments_dir()}; {hint}")
    return path


def get_suite(name: str, overrides: list[str] = ()) -> SuiteConfig:
    """A suite by name (or YAML path), with `--set` overrides, checked against the records; `extends:` by name
    resolves within experiments/."""
    return load_suite(suite_path(name), overrides, search_dir=experiments_dir())


def load_suite(path: str | Path, overrides: list[str] = (), search_dir: Path | None = None) -> SuiteConfig:
    """A suite file read (gadbench.config.read_suite_file) and checked against the records."""
    suite = read_suite_file(path, overrides, search_dir)
    check_suite(suite, str(path))
    return suite


# ------------------------------------------------------------------------------------------------ checks


def _method_problem(name: str, m: MethodConfig) -> str | None:
    from gadbench.methods import METHODS  # here: the records import torch, after pin_portable_cpu_numerics

    if m.kind not in METHODS:
        close = difflib.get_close_matches(m.kind, list(METHODS), n=1)
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        return f"`methods.{name}`: kind `{m.kind}` is not a method{hint}; use one of {', '.join(METHODS)}"
    problem = METHODS[m.kind].check(m)
    return f"`methods.{name}`: {problem}" if problem else None


def _judge_problems(judges: tuple[str, ...], world: bool, samples: int, teacher: str) -> str | None:
    for j in judges:
        if problem := unknown_judge(j):
            return f"`eval.judges`: {problem}"
        if JUDGES[j].world_only and not world:
            return (f"`eval.judges`: judge `{j}` scores the synthetic world's problems only; use it with world data "
                    "(data.train and every data.eval set of source world), or pick another judge")
        if JUDGES[j].samples and samples < 1:
            return (f"`eval.judges`: judge `{j}` scores sampled answers; set eval.samples to 1 or more, or drop "
                    f"{j} from eval.judges")
        if JUDGES[j].teacher and teacher.partition(":")[0] != JUDGES[j].teacher:
            return (f"`eval.judges`: judge `{j}` reads a `{JUDGES[j].teacher}` teacher and teacher.spec is "
                    f"`{teacher}`; use a {JUDGES[j].teacher}:... teacher, or drop {j} from eval.judges")
    return None


def _metric_problem(metric: str, judges: tuple[str, ...]) -> str | None:
    if not metric:
        return None
    info = metric_info(metric)
    owner = metric.partition("/")[0]
    if info is None or owner not in judges:
        named = [JUDGES[j].primary for j in judges]
        return (f"`eval.selection_metric`: `{metric}` is no metric of this suite's judges; use one of "
                f"{', '.join(named)}, or leave it empty")
    if info.higher_is_better is None:
        return f"`eval.selection_metric`: `{metric}` has no better direction ({info.unit}); pick a score"
    return None


def _world_pools_problem(data) -> str | None:
    """The world's training, validation and test problems are disjoint only while each pool stays below the next
    one's offset (gadbench.rundata.WORLD_OFFSETS)."""
    if data.train.source != "world":
        return None
    room = {"data.train.limit": WORLD_OFFSETS["validation"] - WORLD_OFFSETS["train"],
            "data.validation_size": WORLD_OFFSETS["test"] - WORLD_OFFSETS["validation"]}
    used = {"data.train.limit": data.train.limit or DEFAULT_SIZE, "data.validation_size": data.validation_size}
    for key, n in used.items():
        if n > room[key]:
            nxt = "validation" if key == "data.train.limit" else "test"
            return (f"`{key}` = {n} reaches the synthetic world's {nxt} problems (numbers {WORLD_OFFSETS[nxt]} on), "
                    f"so they would overlap; use at most {room[key]}")
    return None


def check_run_settings(s: SuiteConfig | RunSpec, methods: dict[str, MethodConfig]) -> str | None:
    """What the records find wrong with a suite's (or a run's) settings, or None."""
    for name, m in methods.items():
        if problem := _method_problem(name, m):
            return problem
    for where, d in {"data.train": s.data.train, **{f"data.eval.{k}": v for k, v in s.data.eval.items()}}.items():
        if d.source not in SOURCES:
            close = difflib.get_close_matches(d.source, list(SOURCES), n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            return f"`{where}.source`: `{d.source}` is not a data source{hint}; use one of {', '.join(SOURCES)}"
    if problem := _world_pools_problem(s.data):
        return problem
    world = all(d.source == "world" for d in (s.data.train, *s.data.eval.values()))
    if problem := _judge_problems(s.eval.judges, world, s.eval.samples, s.teacher.spec):
        return problem
    if problem := unknown_teacher(s.teacher.spec):
        return f"`teacher.spec`: {problem}"
    return _metric_problem(s.eval.selection_metric, s.eval.judges)


def check_suite(suite: SuiteConfig, source: str) -> None:
    if suite.toy is not None:
        return
    if problem := check_run_settings(suite, suite.methods):
        raise ConfigError(f"{source}: {problem}.")


def check_run(spec: RunSpec, source: str) -> None:
    """The checks of `check_suite` for one run rebuilt from its config.yaml (e.g. by `gadbench eval`)."""
    if problem := check_run_settings(spec, {spec.method_name: spec.method}):
        raise ConfigError(f"{source}: {problem}.")


def selection_metric(spec: RunSpec) -> str:
    """The metric checkpoint selection uses: `eval.selection_metric`, else the first judge's primary metric."""
    return spec.eval.selection_metric or JUDGES[spec.eval.judges[0]].primary


# -------------------------------------------------------------------------------------------------- runs


def runs_of(suite: SuiteConfig) -> list[RunSpec]:
    """Every (student x method x search point x seed) run of a suite, in a fixed order."""
    shared = {k: getattr(suite, k) for k in ("teacher", "data", "rollout", "eval", "judge", "budget")}
    return [
        RunSpec(suite=suite.name, student_name=s, student=sc, method_name=name, method=mc, seed=seed,
                train=train, search_point=point, **shared)
        for s, sc in suite.students.items()
        for m, mc in suite.methods.items()
        for name, point, train in search_points(suite.train, m, mc)
        for seed in suite.seeds
    ]


def search_points(train: TrainConfig, name: str, method: MethodConfig) -> list[tuple[str, dict, TrainConfig]]:
    """(run name, overrides, train settings) of each combination of `method.search` (one point, the method
    itself, without a search); every point's settings are validated like the suite's."""
    keys, hints = list(method.search), typing.get_type_hints(TrainConfig)
    whole = lambda k, v: int(v) if hints[k] is int and float(v).is_integer() else v  # noqa: E731  (20.0 -> 20)
    points = [{k: whole(k, v) for k, v in zip(keys, values, strict=True)}
              for values in itertools.product(*method.search.values())]
    out = []
    for point in points or [{}]:
        label = name + "".join(f"+{k}={v:g}" for k, v in point.items())
        settings = build(TrainConfig, {**to_dict(train), **point}, f"methods.{name}.search", "train")
        out.append((label, point, settings))
    return out
