"""The report's figures (matplotlib, Agg canvas). Each builder returns a Figure, or a sentence saying why
the figure is skipped."""

from __future__ import annotations

import textwrap
from collections import defaultdict
from statistics import mean

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from gadbench.judge.records import metric_info
from gadbench.report.cells import (
    aggregate,
    columns,
    datasets,
    eval_of,
    item_value,
    metrics_of,
    outcome_shares,
)
from gadbench.report.load import Run, Suite
from gadbench.report.naming import dataset_label, dataset_order, student_label
from gadbench.report.search import selection_metric

_COLORS = {"before": "#9e9e9e", "seqkd": "#f28e2b", "gad": "#4e79a7"}
_CURVES = (
    ("sft_loss", "SFT loss (SeqKD, GAD warmup)"),
    ("d_loss", "D loss"),
    ("d_acc", "D accuracy"),
    ("reward_mean", "reward mean"),
    ("kl", "KL (k3)"),
    ("response_len", "response length"),
)


def _figure(w: float, h: float) -> Figure:
    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _color(suite: Suite, run: Run) -> tuple:
    """One colour per run, the same in every panel and figure."""
    cmap = matplotlib.colormaps["tab10" if len(suite.runs) <= 10 else "tab20"]
    return cmap(suite.runs.index(run) % cmap.N)


def axis_label(metric: str, what: str | None = None) -> str:
    """A metric's axis label with its declared unit and direction (gadbench.judge.records), wrapped to fit
    beside a panel: `gold/accuracy (fraction correct, higher is better)`."""
    info = metric_info(metric)
    label = f"{what or metric} ({info.describe()})" if info else (what or metric)
    return "\n".join(textwrap.wrap(label, 34))


def legend_below(fig: Figure, handles: list | None = None, ncol: int = 3) -> None:
    """One legend for the whole figure, below its axes (never over data): the given handles, else every
    labelled artist of every axes, each label once; as many columns as fit the figure's width."""
    if handles is None:
        seen: dict[str, object] = {}
        for ax in fig.axes:
            for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
                seen.setdefault(label, h)
        handles = [_as_handle(h, label) for label, h in seen.items()]
    if handles:
        widest = max(len(h.get_label()) for h in handles) * LEGEND_CHAR_IN + LEGEND_HANDLE_IN
        fits = max(1, int(fig.get_figwidth() // widest))
        fig.legend(handles=handles, loc="outside lower center", ncol=min(ncol, len(handles), fits), fontsize=7)


LEGEND_CHAR_IN = 0.058  # width of one character at fontsize 7, in inches (a generous estimate)
LEGEND_HANDLE_IN = 0.55  # the line sample and the gaps around an entry


def _as_handle(h, label: str):
    h.set_label(label)
    return h


def _series(run: Run, key: str) -> tuple[list, list]:
    pts = [(m["step"], m[key]) for m in run.metrics if isinstance(m.get(key), int | float) and "step" in m]
    return [p[0] for p in pts], [p[1] for p in pts]


def fig_bars(suite: Suite) -> Figure | str:
    """GAD vs SeqKD (and before distillation) on each dataset's primary metric, per student, with the tables'
    95% intervals as error bars; the teacher as a dashed line. Bars start at 0; a metric with negative values
    (a log-probability) is drawn as points, since a bar hanging from 0 would make the worst value the tallest.
    Each axis names the metric's unit and which way is better."""
    students = list(
        dict.fromkeys(student_label(r.student) for r in suite.runs if r.family in ("seqkd", "gad"))
    )
    panels = columns(suite, primary_only=True)[:5]
    fams = [
        f
        for f in ("before", "seqkd", "gad")
        if any(r.family == f and r.identity.group is None and r.summary for r in suite.runs)
    ]
    if not students or not panels or len(fams) < 2:
        return "skipped: needs eval results of at least two of before distillation, SeqKD and GAD."
    names = {f: next(r.identity.label for r in suite.runs if r.family == f and r.identity.group is None)
             for f in fams}
    fig = _figure(3.6 * len(panels), 3.6)
    width = 0.8 / len(fams)
    for ax, (d, m) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels, strict=True):
        runs = {(f, s): [r for r in suite.runs if r.family == f and r.identity.group is None
                         and student_label(r.student) == s] for f in fams for s in students}
        cells = {f: [aggregate(runs[f, s], d, m) for s in students] for f in fams}
        teacher = aggregate([r for r in suite.runs if r.family == "teacher"], d, m)
        shown = [c.value for cs in cells.values() for c in cs if c.value is not None] + (
            [teacher.value] if teacher.value is not None else [])
        bars = all(v >= 0 for v in shown)
        for j, fam in enumerate(fams):
            x = np.arange(len(students)) + (j - (len(fams) - 1) / 2) * width
            vals = [c.value if c.value is not None else np.nan for c in cells[fam]]
            err = _errors(cells[fam])
            if bars:
                ax.bar(x, vals, width, yerr=err, capsize=2, color=_COLORS[fam], label=names[fam])
            else:
                ax.errorbar(x, vals, yerr=err, fmt="o", capsize=3, color=_COLORS[fam], label=names[fam])
        if teacher.value is not None:
            ax.axhline(teacher.value, color="black", linestyle="--", linewidth=1, label="teacher")
        ax.set_xticks(np.arange(len(students)), students, rotation=15 if len(students) > 1 else 0, fontsize=8)
        ax.set_title(d, fontsize=10)
        ax.set_ylabel(axis_label(m), fontsize=8)
        if bars:
            ax.set_ylim(bottom=0)
        else:
            ax.set_xlim(-0.6, len(students) - 0.4)
    legend_below(fig, ncol=4)
    return fig


def _errors(cells: list) -> list[list[float]] | None:
    """Error bars from bootstrap intervals only (a range of seed means is not an interval)."""
    if not any(c.kind == "interval" and c.lo is not None and c.hi is not None for c in cells):
        return None
    ok = [c.kind == "interval" and None not in (c.value, c.lo, c.hi) for c in cells]
    return [[max(c.value - c.lo, 0) if k else 0 for c, k in zip(cells, ok, strict=True)],
            [max(c.hi - c.value, 0) if k else 0 for c, k in zip(cells, ok, strict=True)]]


def _groups(runs: list[Run]) -> dict[str, list[Run]]:
    """Runs that differ only by seed, under one legend label."""
    out: dict[str, list[Run]] = {}
    for r in runs:
        out.setdefault(f"{student_label(r.student)} {r.identity.label}{r.search_label}", []).append(r)
    return out


def _band(ax, runs: list[Run], key: str, color, label: str, linestyle: str = "-", series=None) -> bool:
    """The mean over runs of `key` per step, with the [min, max] over runs shaded; False if no run has it.
    `series(run, key) -> (steps, values)` defaults to the run's global steps."""
    series = [dict(zip(*(series or _series)(r, key), strict=True)) for r in runs]
    steps = sorted(set().union(*series))
    if not steps:
        return False
    ys = [[s[k] for s in series if k in s] for k in steps]
    mean_ = [np.mean(y) for y in ys]
    name = f"{label} ({len(runs)} runs: mean, range)" if len(runs) > 1 else label
    ax.plot(steps, mean_, color=color, linewidth=1.2, linestyle=linestyle, label=name)
    if len(runs) > 1:
        ax.fill_between(steps, [min(y) for y in ys], [max(y) for y in ys], color=color, alpha=0.18, linewidth=0)
    return True


def fig_curves(suite: Suite) -> Figure | str:
    """Training curves from metrics.jsonl: one line per method (the mean over its seeds, the range shaded)."""
    keys = [(k, t) for k, t in _CURVES if any(_series(r, k)[0] for r in suite.runs)]
    if not keys:
        return "skipped: no metrics.jsonl with d_loss, d_acc, reward_mean, kl or response_len."
    groups = _groups([r for r in suite.runs if r.metrics])
    cmap = matplotlib.colormaps["tab10" if len(groups) <= 10 else "tab20"]
    colors = {name: cmap(i % cmap.N) for i, name in enumerate(groups)}
    fig = _figure(12, 3.2 * ((len(keys) + 2) // 3) + 0.3 * ((len(groups) + 2) // 3))
    axes = fig.subplots((len(keys) + 2) // 3, 3, squeeze=False).ravel()
    drawn: set[str] = set()
    for ax, (k, title) in zip(axes, keys, strict=False):
        for name, runs in groups.items():
            if _band(ax, runs, k, colors[name], name):
                drawn.add(name)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
    for ax in axes[len(keys) :]:
        ax.axis("off")
    legend_below(fig, [Line2D([], [], color=colors[n], label=f"{n} ({len(r)} runs: mean, range)" if len(r) > 1
                              else n) for n, r in groups.items() if n in drawn])
    return fig


ADVERSARIAL = "adversarial"  # the stage whose steps the reward-hacking figure compares


def _stage_series(run: Run, key: str) -> tuple[list, list]:
    """`key` at each step of the run's adversarial stage, the stage's first step as 1: an off-policy run's
    stage starts after SFT and D alone, GAD's after its warmup, and both are compared step for step."""
    pts = [m[key] for m in run.metrics if m.get("stage") == ADVERSARIAL and isinstance(m.get(key), int | float)]
    return list(range(1, len(pts) + 1)), pts


def fig_hacking(suite: Suite) -> Figure | str:
    """Response length, reward and a gold metric over the steps of the adversarial stage: frozen (off-policy)
    vs online discriminator, each kind of run as the mean over its runs with the range shaded."""
    frozen = [r for r in suite.runs if r.identity.group == "frozen discriminator" and _stage_series(r, "response_len")[0]]
    online = [r for r in suite.runs if r.identity.key == "gad" and _stage_series(r, "response_len")[0]]
    if not frozen:
        return "skipped: no frozen-discriminator run with response_len in its adversarial stage (metrics.jsonl)."
    runs = frozen + online
    gold = sorted({k for r in runs for m in r.metrics for k in m if k.startswith("gold/")},
                  key=lambda k: k != selection_metric(suite.runs))  # the selection metric first
    keys = ["response_len", "reward_mean"] + gold[:1]
    kinds = [(f"{v}", [r for r in frozen if r.identity.label == v], "#e15759", "-")
             for v in dict.fromkeys(r.identity.label for r in frozen)]
    kinds += [("online D (GAD)", online, "#4e79a7", "-")] if online else []
    labels = {"response_len": ("response length", "tokens"), "reward_mean": ("reward", "mean reward of the rollouts")}
    fig = _figure(4.2 * len(keys), 3.8)
    for ax, k in zip(fig.subplots(1, len(keys), squeeze=False)[0], keys, strict=True):
        for j, (label, group, color, style) in enumerate(kinds):
            _band(ax, group, k, color if j < 2 else "#76b7b2", label, "--" if j == 1 and len(kinds) > 2 else style,
                  series=_stage_series)
        if k == "response_len":
            t = [v for r in runs for v in _series(r, "teacher_len")[1]]
            if t:
                ax.axhline(mean(t), color="black", linestyle="--", linewidth=1, label="teacher length")
        title, unit = labels.get(k, (k, None))
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit or axis_label(k), fontsize=8)
        ax.set_xlabel("step of the adversarial stage", fontsize=8)
    legend_below(fig)
    return fig


def fig_budget(suite: Suite) -> Figure | str:
    """GAD - SeqKD against the training budget (evaluation steps), a panel per dataset and metric (the primary,
    then an exact judge's findings metrics), one line per GAD-family method with its 95% interval shaded (gadbench.report.tables.budget_curve: settings chosen on validation per step)."""
    from gadbench.report.tables import budget_curve

    rows = budget_curve(suite)
    panels = list(dict.fromkeys((r["dataset"], r["metric"]) for r in rows))
    if len({r["step"] for r in rows}) < 3:
        return "skipped: needs GAD and SeqKD evaluated at 3 or more common steps."
    fig = _figure(4.4 * len(panels), 3.6)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cmap = matplotlib.colormaps["tab10"]
    for ax, (d, metric) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels, strict=True):
        for i, m in enumerate(methods):
            pts = sorted((r["step"], r["diff"], r["ci_low"], r["ci_high"]) for r in rows
                         if r["dataset"] == d and r["metric"] == metric and r["method"] == m)
            if pts:
                x, y, lo, hi = zip(*pts, strict=True)
                ax.plot(x, y, marker=".", color=cmap(i), label=m)
                ax.fill_between(x, lo, hi, color=cmap(i), alpha=0.15, linewidth=0)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title(f"{d}: GAD - SeqKD", fontsize=10)
        ax.set_ylabel(axis_label(metric, f"{metric}, GAD - SeqKD"), fontsize=8)
        ax.set_xlabel("training steps", fontsize=8)
    legend_below(fig)
    return fig


def fig_discriminator(suite: Suite) -> Figure | str:
    """D's validation accuracy and AUC at every evaluation step, per method (mean over seeds, range shaded)."""
    runs = [r for r in suite.runs if any(((m.get("validation") or {}).get("d")) for m in r.eval_metrics.values())]
    if not runs:
        return "skipped: no run stores D's validation diagnostics."
    groups = _groups(runs)
    cmap = matplotlib.colormaps["tab10" if len(groups) <= 10 else "tab20"]
    fig = _figure(10, 3.6)
    for ax, (key, title) in zip(fig.subplots(1, 2)[0:2], (("accuracy", "D accuracy"), ("auc", "D AUC")), strict=True):
        for i, (name, group) in enumerate(groups.items()):
            series = [{k: _d_value(m, key) for k, m in r.eval_metrics.items() if _d_value(m, key) is not None}
                      for r in group]
            steps = sorted(set().union(*series))
            ys = [[s[k] for s in series if k in s] for k in steps]
            ax.plot(steps, [np.mean(y) for y in ys], marker=".", color=cmap(i % cmap.N),
                    label=f"{name} ({len(group)} runs)" if len(group) > 1 else name)
            if len(group) > 1:
                ax.fill_between(steps, [min(y) for y in ys], [max(y) for y in ys], color=cmap(i % cmap.N), alpha=0.15)
        ax.axhline(0.5, color="black", linestyle=":", linewidth=0.8)
        ax.set_title(f"{title} on the validation split", fontsize=10)
        ax.set_ylabel(f"{title.split()[-1]} (0.5: chance)", fontsize=8)
        ax.set_xlabel("step", fontsize=8)
    legend_below(fig)
    return fig


def _d_value(metrics: dict, key: str) -> float | None:
    d = (metrics.get("validation") or {}).get("d") or {}
    v = d.get(key)
    v = v.get("mean") if isinstance(v, dict) else v
    return float(v) if isinstance(v, int | float) else None


def fig_ngram(suite: Suite) -> Figure | str:
    """N-gram overlap F1 with the teacher vs n (Fig. 4), one line per student/method, mean over seeds."""
    ds = [d for d in datasets(suite) if any(_ngram(r, d) for r in suite.runs)][:4]
    if not ds:
        return "skipped: no ngram_f1 in any summary."
    fig = _figure(4.2 * len(ds), 3.4)
    for ax, d in zip(fig.subplots(1, len(ds), squeeze=False)[0], ds, strict=True):
        groups: dict[str, list[list[float]]] = defaultdict(list)
        for r in suite.runs:
            if _ngram(r, d):
                groups[f"{student_label(r.student)} {r.identity.label}"].append(_ngram(r, d))
        for name, curves in groups.items():
            n = min(len(c) for c in curves)
            ax.plot(range(1, n + 1), np.mean([c[:n] for c in curves], axis=0), marker="o", label=name)
        ax.set_ylim(0, 1)
        ax.set_xlabel("n", fontsize=8)
        ax.set_ylabel("F1 with the teacher's answer\n(higher: closer to the teacher)", fontsize=8)
        ax.set_title(f"{d}: n-gram F1 with teacher", fontsize=10)
    legend_below(fig)
    return fig


def _ngram(run: Run, label: str) -> list[float] | None:
    v = eval_of(run, label).get("ngram_f1")
    return v if isinstance(v, list) and v else None


def fig_toy(suite: Suite) -> Figure | str:
    """Toy distributions over 10 classes (Fig. 5): teacher, SeqKD (mode covering), GAD (mode seeking)."""
    toys = [r for r in suite.runs if r.toy][:4]
    if not toys:
        return "skipped: no run stores toy.json."
    fig = _figure(4.2 * len(toys), 3.2)
    for ax, r in zip(fig.subplots(1, len(toys), squeeze=False)[0], toys, strict=True):
        classes = np.asarray(r.toy["classes"])
        for j, (k, color) in enumerate(
            (("teacher", "black"), ("seqkd", _COLORS["seqkd"]), ("gad", _COLORS["gad"]))
        ):
            if k in r.toy:
                ax.bar(classes + (j - 1) * 0.27, r.toy[k], 0.27, color=color, label=k)
        ax.set_xticks(classes)
        ax.set_xlabel("class", fontsize=8)
        ax.set_ylabel("probability", fontsize=8)
        ax.set_title(r.label, fontsize=9)
    legend_below(fig)
    return fig


def fig_pairwise(suite: Suite) -> Figure | str:
    """Win / tie / loss bars for every pairwise result in the summaries."""
    bars = [
        (f"{r.label} vs teacher ({d}, {p['judge']})", p)
        for r in suite.runs
        for d, b in ((r.summary or {}).get("eval") or {}).items()
        for p in outcome_shares(b)
    ]
    if not bars:
        return "skipped: no judge in any summary gives win / tie / loss shares."
    fig = _figure(9, max(2.4, 0.45 * len(bars) + 1.2))
    ax = fig.subplots()
    y = np.arange(len(bars))
    left = np.zeros(len(bars))
    for k, color in (("win", "#59a14f"), ("tie", "#bab0ac"), ("loss", "#e15759")):
        v = np.array([100 * p[k] for _, p in bars])
        ax.barh(y, v, left=left, color=color, label=k)
        for yi, (start, w) in enumerate(zip(left, v, strict=True)):
            if w >= 6:
                ax.text(start + w / 2, yi, f"{w:.0f}%", ha="center", va="center", fontsize=7)
        left += v
    ax.set_yticks(y, [b[0] for b in bars], fontsize=7)
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of items (win: the student's answer preferred to the teacher's)", fontsize=8)
    ax.invert_yaxis()
    fig.legend(loc="outside lower center", ncol=3, fontsize=8)
    return fig


VALIDATION = "validation"  # eval/step-K/validation.jsonl: the split checkpoint selection reads


def fig_eval_steps(suite: Suite) -> Figure | str:
    """Each evaluated checkpoint (eval/step-K) on each set's primary metric (validation: the selection metric),
    the selected checkpoint starred."""
    runs = [r for r in suite.runs if len(r.evals) >= 2]
    if not runs:
        return "skipped: no run has eval/step-K files for two or more checkpoints."
    stems = sorted({d for r in runs for items in r.evals.values() for d in items},
                   key=lambda d: (d != VALIDATION, dataset_order(dataset_label(d))))
    panels = [(d, m) for d in stems if (m := _set_metric(suite, d))][:4]
    if not panels:
        return "skipped: no evaluated set has a declared metric in its rows."
    fig = _figure(10, 3.4 * ((len(panels) + 1) // 2))
    axes = fig.subplots((len(panels) + 1) // 2, 2, squeeze=False).ravel()
    for ax in axes[len(panels) :]:
        ax.axis("off")
    drawn = []
    for ax, (d, metric) in zip(axes, panels, strict=False):
        for r in runs:
            pts = [(k, v) for k, items in r.evals.items() if d in items
                   and (v := _mean_value(items[d], metric)) is not None]
            if len(pts) < 2:
                continue
            ax.plot([k for k, _ in pts], [v for _, v in pts], marker=".", linewidth=1, color=_color(suite, r))
            if r not in drawn:
                drawn.append(r)
            sel = ((r.summary or {}).get("selection") or {}).get("checkpoint")
            if sel in dict(pts):
                ax.plot([sel], [dict(pts)[sel]], marker="*", markersize=11, color=_color(suite, r))
        ax.set_title(f"{dataset_label(d)} (★ = selected)", fontsize=10)
        ax.set_ylabel(axis_label(metric), fontsize=8)
        ax.set_xlabel("checkpoint step", fontsize=8)
    legend_below(fig, [Line2D([], [], color=_color(suite, r), label=r.label) for r in drawn])
    return fig


def _set_metric(suite: Suite, stem: str) -> str | None:
    """The metric plotted for an eval set: the selection metric on the validation split, else the set's
    primary metric (gadbench.report.cells.metrics_of)."""
    if stem == VALIDATION:
        return selection_metric(suite.runs)
    return (metrics_of(suite, dataset_label(stem)) or [None])[0]


def _mean_value(items: list[dict], metric: str) -> float | None:
    values = [v for it in items if (v := item_value(it, metric)) is not None]
    return mean(values) if values else None


def fig_length_scatter(suite: Suite) -> Figure | str:
    """Judge score against answer length (tokens) per method, one panel per dataset (up to 4), with each
    method's least-squares line: the picture of a judge's length preference (docs/judging.md)."""
    from gadbench.report.judging import length_points
    from gadbench.report.search import chosen_runs

    runs = chosen_runs(suite)
    panels = [(d, pts) for d in datasets(suite) if (pts := length_points(runs, d))][:4]
    if not panels:
        return "skipped: no stored eval rows with answer lengths and judge scores."
    fig = _figure(4.4 * min(len(panels), 2), 3.4 * ((len(panels) + 1) // 2))
    axes = fig.subplots((len(panels) + 1) // 2, min(len(panels), 2), squeeze=False).ravel()
    cmap = matplotlib.colormaps["tab10"]
    methods = list(dict.fromkeys(m for _, pts in panels for m in pts))
    for ax, (d, pts) in zip(axes, panels, strict=False):
        judges = sorted({j for j, _, _ in pts.values()})
        for m, (_, x, y) in pts.items():
            color = cmap(methods.index(m) % 10)
            ax.scatter(x, y, s=8, alpha=0.45, color=color, label=m)
            if np.ptp(x) > 0:
                slope, intercept = np.polyfit(x, y, 1)
                xs = np.array([x.min(), x.max()])
                ax.plot(xs, intercept + slope * xs, color=color, linewidth=1.2)
        ax.set_title(f"{d}: {' / '.join(judges)} score vs length", fontsize=10)
        ax.set_ylabel(axis_label(f"{judges[0]}/score", "judge score") if len(judges) == 1 else "judge score",
                      fontsize=8)
        ax.set_xlabel("answer tokens", fontsize=8)
    for ax in axes[len(panels):]:
        ax.axis("off")
    legend_below(fig, ncol=4)
    return fig


FIGURES = (
    ("fig1_bars", "GAD vs SeqKD per dataset (Figure 1 style)", fig_bars),
    ("budget", "GAD - SeqKD against the training budget", fig_budget),
    ("training_curves", "Training curves", fig_curves),
    ("discriminator", "Discriminator diagnostics on the validation split", fig_discriminator),
    ("reward_hacking", "Reward hacking: frozen vs online discriminator (Figure 6 style)", fig_hacking),
    ("ngram_f1", "N-gram overlap F1 with the teacher (Figure 4 style)", fig_ngram),
    ("score_vs_length", "Judge score against answer length", fig_length_scatter),
    ("toy", "Toy distributions (Figure 5 style)", fig_toy),
    ("pairwise", "Pairwise win / tie / loss (Figure 3 style)", fig_pairwise),
    ("eval_steps", "Primary metric per evaluated checkpoint", fig_eval_steps),
)
