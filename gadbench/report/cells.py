"""From summaries to cells: which (dataset, metric) columns exist, the primary metric, and seed aggregation."""

from __future__ import annotations

from statistics import mean

from gadbench.judge.records import JUDGES, metric_info
from gadbench.metrics import RESAMPLES, seeds_and_items
from gadbench.report.load import Run, Suite
from gadbench.report.naming import OOD, OTHERS, dataset_label, dataset_order
from gadbench.report.typeset import Cell

NOT_METRICS = ("length",)  # declared, but shown in the length table, not as a score column


def resamples(runs: list[Run], meta: dict | None = None) -> int:
    """The suite's `eval.bootstrap` (suite.json's config, else the largest in the runs' config.yaml, else the
    setting's default): the fewest resamples of every interval the report computes; gadbench.metrics adds
    more until each bound's Monte-Carlo error is settled."""

    def count(config: dict | None) -> int | None:
        n = ((config or {}).get("eval") or {}).get("bootstrap")
        return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None

    suite_setting = count((meta or {}).get("config"))
    return suite_setting or max((n for r in runs if (n := count(r.config))), default=RESAMPLES)


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
    """The declared metrics (judge records) a dataset's summaries hold, primary first: the runs'
    checkpoint-selection metric when they name one, else a key ending in '/score', else alphabetical."""
    keys = {
        m
        for r in suite.runs
        for m, s in eval_of(r, label).items()
        if m not in NOT_METRICS and metric_info(m) is not None and isinstance(s, dict) and "mean" in s
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


def finding_metrics(suite: Suite, label: str) -> list[str]:
    """The dataset's primary metric, then the `findings` metrics of its primary metric's judge (an exact judge's
    other measures, e.g. persona-gold's forward KL and greedy teacher log-prob) that the runs store."""
    metrics = metrics_of(suite, label)
    if not metrics:
        return []
    judge = metrics[0].partition("/")[0]
    record = JUDGES.get(judge)
    return [metrics[0]] + [m for k in (record.findings if record else ()) if (m := f"{judge}/{k}") in metrics]


def item_value(item: dict, metric: str) -> float | None:
    """One eval row's value of `metric`: `length` is its answer's tokens; `J/K` is key K of judge J's
    judgment (`gold/style_share/S`: whether the gold judge found style S); invalid judgments give None."""
    if metric == "length":
        v = item.get("answer_tokens")
    else:
        judge, _, key = metric.partition("/")
        j = (item.get("judgments") or {}).get(judge)
        if not isinstance(j, dict) or j.get("valid") is False:
            return None
        v = j.get(key)
        if v is None and key.startswith("style_share/") and "style" in j:
            v = float(j["style"] == key.split("/", 1)[1])
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def item_values(run: Run, label: str, metric: str, step: int | None = None) -> dict[str, float] | None:
    """Item id -> value of `metric` on the dataset labelled `label`, at the run's selected checkpoint (or at
    `step`); None when the run stores no rows for it."""
    if step is None:
        step = ((run.summary or {}).get("selection") or {}).get("checkpoint")
    for stem, items in (run.evals.get(step) or {}).items():
        if dataset_label(stem) == label and items:
            values = {str(it.get("id", i)): item_value(it, metric) for i, it in enumerate(items)}
            return {k: v for k, v in values.items() if v is not None} or None
    return None


def selected_rows(run: Run, label: str) -> list[dict]:
    """The run's eval rows of the dataset labelled `label` at its selected checkpoint ([] without them)."""
    step = ((run.summary or {}).get("selection") or {}).get("checkpoint")
    return next((items for stem, items in (run.evals.get(step) or {}).items() if dataset_label(stem) == label), [])


def aggregate(runs: list[Run], label: str, metric: str) -> Cell:
    """One seed: its mean and stored interval over items. Several: the pooled mean over (seed, item) with a
    hierarchical bootstrap interval (seeds, then items within each; gadbench.metrics.seeds_and_items) when
    every run stores its rows, else the mean of seed means and their [min, max] (`kind="range"`)."""
    found = [(r, s) for r in runs if (s := stat(r, label, metric))]
    if not found:
        return Cell()
    if len(found) == 1:
        s = found[0][1]
        return Cell(s["mean"], s.get("ci_low"), s.get("ci_high"), s.get("n_valid"))
    items = {r.seed: item_values(r, label, metric) for r, _ in found}
    if label != OTHERS and all(items.values()) and len(items) == len(found):
        h = seeds_and_items(items, n_resamples=resamples(runs))
        return Cell(h["mean"], h["ci_low"], h["ci_high"], h["n_items"], seeds=h["n_seeds"])
    means = [s["mean"] for _, s in found]
    return Cell(mean(means), min(means), max(means), None, seeds=len(found), kind="range")


def set_digits(cells: list[Cell]) -> None:
    """One decimal for scores and lengths (|x| >= 10), three for small gold metrics."""
    vals = [abs(c.value) for c in cells if c.value is not None]
    digits = 1 if vals and max(vals) >= 10 else 3
    for c in cells:
        c.digits = digits


def higher_is_better(metric: str) -> bool | None:
    """The declared direction of a reported metric (its judge record's `Metric`); None when it has none or is
    not declared."""
    info = metric_info(metric)
    return info.higher_is_better if info else None


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


def outcome_shares(block: dict) -> list[dict]:
    """{judge, win, tie, loss, n} of each judge whose statistics in an eval block include win / tie / loss shares
    (the pairwise judge: the student against the teacher's answer)."""
    out = []
    for key in block if isinstance(block, dict) else {}:
        judge, _, name = key.rpartition("/")
        shares = {k: block.get(f"{judge}/{k}") for k in ("win", "tie", "loss")}
        if name == "win" and all(isinstance(v, int | float) for v in shares.values()):
            out.append({"judge": judge, **shares, "n": (block.get(f"{judge}/score") or {}).get("n_valid")})
    return out
