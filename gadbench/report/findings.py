"""Does each paper finding reproduce here? A verdict per finding, read from a 95% interval, never from means.

| finding | measured as | reproduced when |
|---|---|---|
| GAD beats SeqKD (in distribution) | GAD - SeqKD on the primary metric of the first dataset, paired by (seed, prompt) | interval > 0 |
| GAD generalises better | the same on each further (out-of-distribution) dataset | interval > 0 |
| SeqKD covers modes, GAD seeks them | entropy of the answer-style shares (world; sampled answers when stored), GAD - SeqKD | interval < 0 |
| GAD's gain survives length control | length-controlled GAD - SeqKD (gadbench.judge.controlled) on the first dataset with a gad-paper or pairwise judge | interval > 0 |
| a frozen D gets exploited | over the off-policy (frozen) D run's adversarial stage, last third - first third of the steps: D's reward, and the rollouts' gold log-prob (world) or response length | reward > 0 and gold < 0 (length > 0) |

Verdicts (gadbench.metrics.verdict): "reproduced" (the interval lies on the paper's side of 0), "not
reproduced" (it lies on the other side), "inconclusive" (it contains 0). Intervals resample seeds, then
prompts (or steps) within each seed, paired. Runs of a hyperparameter search are reduced to the point
the validation split prefers first (gadbench.report.search). Step-to-step values of a training curve are
correlated, so the frozen-D interval is optimistic.
"""

from __future__ import annotations

import numpy as np

from gadbench.metrics import hierarchical_means, paired_seeds_and_items, verdict
from gadbench.report.cells import (
    datasets,
    higher_is_better,
    item_value,
    item_values,
    metrics_of,
    selected_rows,
)
from gadbench.report.judging import NOT_TESTED, judge_signal, survives_length_control
from gadbench.report.load import Run, Suite
from gadbench.report.naming import student_label
from gadbench.report.typeset import Table

STYLE_JUDGES = ("gold-sampled", "gold")  # sampled answers first, else greedy
LEVEL = "95%"


def _runs(suite: Suite, key: str, student: str) -> list[Run]:
    return [r for r in suite.runs if r.identity.key == key and r.student == student and r.summary]


def _by_seed(runs: list[Run], label: str, metric: str) -> dict[int, dict[str, float]]:
    return {r.seed: v for r in runs if (v := item_values(r, label, metric))}


def _n(r: dict, unit: str = "prompts") -> str:
    """seeds x items per seed (the mean count when seeds hold different numbers)."""
    return f"{r['n_seeds']} x {round(r['n_items'] / r['n_seeds'])} {unit}"


def _difference_row(finding: str, gad: list[Run], seqkd: list[Run], label: str, metric: str) -> list | None:
    a, b = _by_seed(gad, label, metric), _by_seed(seqkd, label, metric)
    try:
        r = paired_seeds_and_items(a, b)
    except ValueError:
        return None
    sign = -1 if higher_is_better(metric) is False else 1
    means = [np.mean([v for items in x.values() for v in items.values()]) for x in (a, b)]
    evidence = (f"{metric} on {label}: GAD {means[0]:.3f} vs SeqKD {means[1]:.3f}; GAD - SeqKD {r['diff']:+.3f} "
                f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]")
    return [finding, evidence, _n(r), verdict(r["ci_low"], r["ci_high"], sign)]


def _style_keys(items: list[dict]) -> tuple[str, list[str]] | None:
    """(judge, style-share keys) that the rows carry: sampled answers' shares, else the greedy gold style."""
    for judge in STYLE_JUDGES:
        js = [(it.get("judgments") or {}).get(judge) or {} for it in items]
        keys = {k for j in js for k in j if k.startswith("style_share/")} | {
            f"style_share/{j['style']}" for j in js if isinstance(j.get("style"), str)}
        if keys:
            return judge, sorted(keys)
    return None


def _style_vectors(items: list[dict], judge: str, keys: list[str]) -> dict[str, np.ndarray]:
    return {str(it.get("id", i)): np.array([item_value(it, f"{judge}/{k}") or 0.0 for k in keys])
            for i, it in enumerate(items)}


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _mode_row(gad: list[Run], seqkd: list[Run], label: str) -> list | None:
    """Entropy of the mean style shares, GAD - SeqKD, paired by (seed, prompt): a two-level bootstrap of the
    joint mean share vectors, the entropy difference taken on each resample."""
    groups = []
    for s in sorted({r.seed for r in gad} & {r.seed for r in seqkd}):
        g, q = (selected_rows(next(r for r in runs if r.seed == s), label) for runs in (gad, seqkd))
        found = _style_keys(g + q)
        if not found:
            continue
        vg, vq = (_style_vectors(x, *found) for x in (g, q))
        ids = sorted(vg.keys() & vq.keys())
        if ids:
            groups.append(np.array([np.concatenate([vg[i], vq[i]]) for i in ids]))
    if not groups or len({x.shape[1] for x in groups}) > 1:
        return None
    k = groups[0].shape[1] // 2
    pooled = np.concatenate(groups).mean(axis=0)
    boot = hierarchical_means(groups, 2000)
    diffs = np.array([_entropy(m[:k]) - _entropy(m[k:]) for m in boot])
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    diff = _entropy(pooled[:k]) - _entropy(pooled[k:])
    evidence = (f"entropy of answer styles on {label}: GAD {_entropy(pooled[:k]):.3f} vs SeqKD "
                f"{_entropy(pooled[k:]):.3f} nats; GAD - SeqKD {diff:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    n = {"n_seeds": len(groups), "n_items": sum(len(x) for x in groups)}
    return ["SeqKD covers modes, GAD seeks them", evidence, _n(n), verdict(lo, hi, -1)]


def _thirds(run: Run, key: str) -> tuple[dict[str, float], dict[str, float]] | None:
    """(last third, first third) of the run's adversarial-stage values of `key`, keyed by position."""
    ys = [m[key] for m in run.metrics if m.get("stage") == "adversarial" and isinstance(m.get(key), int | float)]
    k = len(ys) // 3
    if k < 1:
        return None
    return {str(j): v for j, v in enumerate(ys[-k:])}, {str(j): v for j, v in enumerate(ys[:k])}


def _change(runs: list[Run], key: str) -> dict | None:
    pairs = {r.seed: t for r in runs if (t := _thirds(r, key))}
    if not pairs:
        return None
    return paired_seeds_and_items({s: t[0] for s, t in pairs.items()}, {s: t[1] for s, t in pairs.items()})


def _frozen_row(suite: Suite, student: str) -> list | None:
    frozen = [r for r in suite.runs if r.student == student and r.identity.group == "frozen discriminator"]
    paper = [r for r in frozen if r.identity.key == "gad:offpolicy"]
    runs = paper or frozen
    if not runs:
        return None
    gold = "gold/teacher_logprob" if any("gold/teacher_logprob" in m for r in runs for m in r.metrics) else None
    quality, quality_sign = (gold, -1) if gold else ("response_len", +1)
    reward, q = _change(runs, "reward_mean"), _change(runs, quality)
    if reward is None or q is None:
        return None
    verdicts = {verdict(reward["ci_low"], reward["ci_high"], +1), verdict(q["ci_low"], q["ci_high"], quality_sign)}
    final = ("not reproduced" if "not reproduced" in verdicts else
             "reproduced" if verdicts == {"reproduced"} else "inconclusive")
    steps = sum(1 for m in runs[0].metrics if m.get("stage") == "adversarial")
    what = "off-policy D (paper)" if paper else runs[0].identity.label
    evidence = (f"{what}, last vs first third of {steps} adversarial steps: reward {reward['diff']:+.3f} "
                f"[{reward['ci_low']:+.3f}, {reward['ci_high']:+.3f}], {quality} {q['diff']:+.3f} "
                f"[{q['ci_low']:+.3f}, {q['ci_high']:+.3f}]")
    return ["A frozen discriminator gets exploited", evidence, _n(reward, "steps"), final]


def findings_table(suite: Suite, base=None) -> Table | str:
    students = list(dict.fromkeys(r.student for r in suite.runs if r.identity.key in ("gad", "seqkd")))
    rows, flags = [], judge_signal(suite)  # a judge without signal tests no finding
    for student in students:
        gad, seqkd = _runs(suite, "gad", student), _runs(suite, "seqkd", student)
        if not gad or not seqkd:
            continue
        labels = [d for d in datasets(suite) if metrics_of(suite, d)]
        found = []
        for i, label in enumerate(labels):
            finding = "GAD beats SeqKD (in distribution)" if i == 0 else f"GAD generalises better ({label})"
            metric = metrics_of(suite, label)[0]
            if (label, judge := metric.partition("/")[0]) in flags:
                found.append([finding, f"not tested: {judge} has no signal on {label} ({flags[(label, judge)]})",
                              "–", NOT_TESTED])
                continue
            found.append(_difference_row(finding, gad, seqkd, label, metric))
        found.append(_mode_row(gad, seqkd, labels[0]) if labels else None)
        found.append(_frozen_row(suite, student))
        found.append(survives_length_control(gad, seqkd, labels, flags))
        prefix = f"{student_label(student)}: " if len(students) > 1 else ""
        rows += [[prefix + r[0], *r[1:]] for r in found if r]
    if not rows:
        return ("Findings table skipped: it needs `gad` and `seqkd` runs whose eval rows (eval/step-K/*.jsonl) "
                "are stored.")
    return Table(
        name="findings",
        title="Paper findings in this suite",
        header=["Finding", f"Evidence (difference, {LEVEL} interval)", "n (seeds x items)", "Verdict"],
        rows=rows,
        note=("Verdict from the interval: reproduced (on the paper's side of 0), not reproduced (on the other "
              "side), inconclusive (contains 0); not tested: only a judge without signal could test it. Intervals resample seeds, then prompts (steps) within each "
              "seed, paired by (seed, prompt); n = seeds x prompts. Primary metric per dataset."),
    )
