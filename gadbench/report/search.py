"""Hyperparameter search across runs: which search point of each (student, method) the validation split
prefers. Every method gets the same rule, and the test sets play no part in it.

A run made from `method.search` is named `<method>+<key>=<value>...` and stores its point as `variant` in
config.yaml. A point's score is the mean over its seeds of the validation score of the run's selected
checkpoint (or, for a budget of `step` steps, of its evaluation at that step) under the runs' selection
metric; the best point is kept, ties going to the earlier point.
"""

from __future__ import annotations

from collections import defaultdict
from statistics import mean

from gadbench.report.cells import higher_is_better
from gadbench.report.load import Run, Suite

Key = tuple[str, str]  # (student, base method)


def selection_metric(runs: list[Run]) -> str | None:
    return next((m for r in runs if (m := ((r.summary or {}).get("selection") or {}).get("metric"))), None)


def validation_score(run: Run, metric: str, step: int | None = None) -> float | None:
    """The run's validation score: at its selected checkpoint, or at evaluation step `step`."""
    block = (run.summary or {}).get("validation") if step is None else run.eval_metrics.get(step, {}).get("validation")
    value = ((block or {}).get(metric) or {}).get("mean")
    return float(value) if isinstance(value, int | float) else None


def points(suite: Suite) -> dict[Key, dict[str, list[Run]]]:
    """(student, base method) -> search point label -> its runs (one per seed), in suite order."""
    out: dict[Key, dict[str, list[Run]]] = defaultdict(dict)
    for r in suite.runs:
        out[(r.student, r.base_method)].setdefault(r.search_label, []).append(r)
    return out


def point_score(runs: list[Run], metric: str, step: int | None = None) -> float | None:
    scores = [s for r in runs if (s := validation_score(r, metric, step)) is not None]
    return mean(scores) if scores else None


def chosen_points(suite: Suite, step: int | None = None) -> dict[Key, str]:
    """The preferred search point of every (student, method) with a search (more than one point)."""
    metric = selection_metric(suite.runs)
    sign = -1.0 if metric and higher_is_better(metric) is False else 1.0
    out = {}
    for key, by_point in points(suite).items():
        if len(by_point) < 2 or metric is None:
            continue
        scored = [(sign * s, -i, label) for i, (label, runs) in enumerate(by_point.items())
                  if (s := point_score(runs, metric, step)) is not None]
        if scored:
            out[key] = max(scored)[2]
    return out


def chosen_runs(suite: Suite, step: int | None = None) -> list[Run]:
    """The suite's runs with every searched method reduced to its preferred point."""
    chosen = chosen_points(suite, step)
    return [r for r in suite.runs if chosen.get((r.student, r.base_method), r.search_label) == r.search_label]
