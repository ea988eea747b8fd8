"""From summaries to cells: which (dataset, metric) columns exist, the primary metric, and seed aggregation."""

from __future__ import annotations

from statistics import mean

from gadbench.report.load import Run, Suite
from gadbench.report.naming import OOD, OTHERS, dataset_label, dataset_order, higher_is_better
from gadbench.report.typeset import Cell

NOT_METRICS = ("length", "ngram_f1", "pairwise")


def eval_of(run: Run, label: str) -> dict:
    """The summary's eval block of the dataset whose paper label is `label`."""
    for name, block in ((run.summary or {}).get("eval") or {}).items():
        if dataset_label(name) == label and isinstance(block, dict):
            return block
    return {}


def stat(run: Run, label: str, metric: str) -> dict | None:
    """{mean, ci_low, ci_high, n_valid, ...} of a metric; 'Others' is the mean of the three OOD means."""
    if label == OTHERS:
        parts = [stat(run, d, metric) for d in OOD]
        return {"mean": mean(p["mean"] for p in parts)} if all(parts) else None
    s = eval_of(run, label).get(metric)
    return s if isinstance(s, dict) and isinstance(s.get("mean"), int | float) else None


def datasets(suite: Suite) -> list[str]:
    labels = {dataset_label(d) for r in suite.runs for d in ((r.summary or {}).get("eval") or {})}
    return sorted(labels, key=dataset_order)


def metrics_of(suite: Suite, label: str) -> list[str]:
    """Metric keys of a dataset, primary first: the runs' checkpoint-selection metric when they name one,
    else a key ending in '/score' (an LLM judge), else alphabetical."""
    keys = {
        m
        for r in suite.runs
        for m, s in eval_of(r, label).items()
        if m not in NOT_METRICS and isinstance(s, dict) and "mean" in s
    }
    chosen = {((r.summary or {}).get("selection") or {}).get("metric") for r in suite.runs} & keys
    primary = min(chosen) if chosen else None
    return sorted(keys, key=lambda m: (m != primary, not m.endswith("/score"), m))


def columns(suite: Suite, primary_only: bool = False) -> list[tuple[str, str]]:
    """(dataset label, metric) pairs present, plus ('Others', metric) when Dolly, SelfInst and Vicuna all have it."""
    cols = []
    for d in datasets(suite):
        ms = metrics_of(suite, d)
        cols += [(d, m) for m in (ms[:1] if primary_only else ms)]
    shared = [m for d, m in cols if d == OOD[0] and all((o, m) in cols for o in OOD)]
    return cols + [(OTHERS, m) for m in shared]


def column_name(col: tuple[str, str], cols: list[tuple[str, str]]) -> str:
    """Just the dataset when it has one metric, else 'dataset metric'."""
    d, m = col
    return d if sum(c[0] == d for c in cols) == 1 else f"{d} {m}"


def aggregate(runs: list[Run], label: str, metric: str) -> Cell:
    """One seed: its mean and stored interval; several: the mean of seed means and their [min, max]."""
    found = [s for s in (stat(r, label, metric) for r in runs) if s]
    if not found:
        return Cell()
    if len(found) == 1:
        s = found[0]
        return Cell(s["mean"], s.get("ci_low"), s.get("ci_high"), s.get("n_valid"))
    means = [s["mean"] for s in found]
    return Cell(mean(means), min(means), max(means), None, seeds=len(found))


def set_digits(cells: list[Cell]) -> None:
    """One decimal for scores and lengths (|x| >= 10), three for small gold metrics."""
    vals = [abs(c.value) for c in cells if c.value is not None]
    digits = 1 if vals and max(vals) >= 10 else 3
    for c in cells:
        c.digits = digits


def mark_best(cells: list[Cell], metric: str) -> None:
    """Bold the best value(s) of one column within one block, as printed (after rounding)."""
    direction = higher_is_better(metric)
    shown = [c for c in cells if c.value is not None]
    if direction is None or len(shown) < 2:
        return
    key = [round(c.value, c.digits) for c in shown]
    best = max(key) if direction else min(key)
    for c, k in zip(shown, key, strict=True):
        c.bold = k == best


def pairwise_results(block: dict) -> list[dict]:
    """The complete {vs, win, tie, loss, n} entries of a dataset's eval block."""
    entries = block.get("pairwise") if isinstance(block, dict) else None
    return [
        p for p in entries or [] if all(isinstance(p.get(k), int | float) for k in ("win", "tie", "loss"))
    ]
