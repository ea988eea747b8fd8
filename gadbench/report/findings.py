"""Does each paper finding reproduce here? A verdict per finding, read from a 95% interval, never from means.

| finding | measured as | reproduced when |
|---|---|---|
| GAD beats SeqKD (in distribution) | GAD - SeqKD on the primary metric of the first dataset, paired by (seed, prompt) | interval > 0 |
| GAD generalises better | the same on each further (out-of-distribution) dataset | interval > 0 |
| (the same, on an exact judge's other metrics) | its record's `findings` (persona-gold: forward KL, greedy teacher log-prob) | on the better side of 0 |
| SeqKD covers modes, GAD seeks them | entropy of the answer-style shares (world; sampled answers when stored) or of the personas that best explain the greedy answers (persona-gold), GAD - SeqKD | interval < 0 |
| GAD's gain survives length control | length-controlled GAD - SeqKD (gadbench.judge.controlled) on the first dataset with a gad-paper or pairwise judge | interval > 0 |
| a frozen D gets exploited | over the off-policy (frozen) D run's adversarial stage, last third - first third of the steps: D's reward, and the rollouts' gold log-prob (world) or response length | reward > 0 and gold < 0 (length > 0) |

Verdicts (gadbench.metrics.verdict): "reproduced" (the interval lies on the paper's side of 0), "not
reproduced" (it lies on the other side), "inconclusive" (it contains 0), "borderline" (a bound lies within 2
Monte-Carlo standard errors of 0 even at gadbench.metrics.MAX_RESAMPLES resamples). Intervals resample seeds,
then prompts (or steps) within each seed, paired; the resamples start at the suite's `eval.bootstrap` and grow
until every bound is settled (gadbench.metrics.grow_draws); the table's note gives each row's count and
Monte-Carlo errors. Runs of a hyperparameter search are reduced to the point
the validation split prefers first (gadbench.report.search). Step-to-step values of a training curve are
correlated, so the frozen-D interval is optimistic.
"""

from __future__ import annotations

import numpy as np

from gadbench.judge.records import JUDGES
from gadbench.metrics import (
    MAX_RESAMPLES,
    MC_BAND,
    MC_SHARE,
    grow_draws,
    hierarchical_means,
    paired_seeds_and_items,
    verdict,
)
from gadbench.report.cells import (
    datasets,
    higher_is_better,
    item_value,
    item_values,
    metrics_of,
    resamples,
    selected_rows,
)
from gadbench.report.judging import MAX_REFITS, NOT_TESTED, judge_signal, survives_length_control
from gadbench.report.load import Run, Suite
from gadbench.report.naming import student_label
from gadbench.report.typeset import Table

STYLE_JUDGES = ("gold-sampled", "gold", "persona-gold")  # sampled answers first, else greedy; persona-gold's personas
LEVEL = "95%"


def _runs(suite: Suite, key: str, student: str) -> list[Run]:
    return [r for r in suite.runs if r.identity.key == key and r.student == student and r.summary]


def _by_seed(runs: list[Run], label: str, metric: str) -> dict[int, dict[str, float]]:
    return {r.seed: v for r in runs if (v := item_values(r, label, metric))}


def _n(r: dict, unit: str = "prompts") -> str:
    """seeds x items per seed (the mean count when seeds hold different numbers)."""
    return f"{r['n_seeds']} x {round(r['n_items'] / r['n_seeds'])} {unit}"


def _mc(r: dict, what: str = "") -> str:
    """'<what>: R resamples, MC s.e. of the bounds +-a / +-b': an interval's resamples and Monte-Carlo errors."""
    lead = f"{what}: " if what else ""
    return f"{lead}{r['n_resamples']:,} resamples, MC s.e. of the bounds ±{r['mc_low']:.3f} / ±{r['mc_high']:.3f}"


def _verdict(r: dict, sign: int) -> str:
    return verdict(r["ci_low"], r["ci_high"], sign, r["mc_low"], r["mc_high"])


def _difference_row(finding: str, gad: list[Run], seqkd: list[Run], label: str, metric: str,
                    n_resamples: int) -> tuple[list, str] | None:
    a, b = _by_seed(gad, label, metric), _by_seed(seqkd, label, metric)
    try:
        r = paired_seeds_and_items(a, b, n_resamples)
    except ValueError:
        return None
    sign = -1 if higher_is_better(metric) is False else 1
    means = [np.mean([v for items in x.values() for v in items.values()]) for x in (a, b)]
    evidence = (f"{metric} on {label}: GAD {means[0]:.3f} vs SeqKD {means[1]:.3f}; GAD - SeqKD {r['diff']:+.3f} "
                f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]")
    return [finding, evidence, _n(r), _verdict(r, sign)], _mc(r)


def _style_keys(items: list[dict]) -> tuple[str, list[str]] | None:
    """(judge, style-share keys) that the rows carry: sampled answers' shares, else the greedy gold style."""
    for judge in STYLE_JUDGES:
        js = [(it.get("judgments") or {}).get(judge) or {} for it in items]
        keys = {k for j in js for k in j if k.startswith(("style_share/", "persona_share/"))} | {
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


def _mode_row(gad: list[Run], seqkd: list[Run], label: str, n_resamples: int) -> tuple[list, str] | None:
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

    def draw(n: int, seed: int) -> np.ndarray:
        return np.array([_entropy(m[:k]) - _entropy(m[k:]) for m in hierarchical_means(groups, n, seed)])

    _, (r,) = grow_draws(draw, n_resamples, decide_at=0.0)
    diff = _entropy(pooled[:k]) - _entropy(pooled[k:])
    evidence = (f"entropy of answer styles on {label}: GAD {_entropy(pooled[:k]):.3f} vs SeqKD "
                f"{_entropy(pooled[k:]):.3f} nats; GAD - SeqKD {diff:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]")
    n = {"n_seeds": len(groups), "n_items": sum(len(x) for x in groups)}
    return ["SeqKD covers modes, GAD seeks them", evidence, _n(n), _verdict(r, -1)], _mc(r)


def _thirds(run: Run, key: str) -> tuple[dict[str, float], dict[str, float]] | None:
    """(last third, first third) of the run's adversarial-stage values of `key`, keyed by position."""
    ys = [m[key] for m in run.metrics if m.get("stage") == "adversarial" and isinstance(m.get(key), int | float)]
    k = len(ys) // 3
    if k < 1:
        return None
    return {str(j): v for j, v in enumerate(ys[-k:])}, {str(j): v for j, v in enumerate(ys[:k])}


def _change(runs: list[Run], key: str, n_resamples: int) -> dict | None:
    pairs = {r.seed: t for r in runs if (t := _thirds(r, key))}
    if not pairs:
        return None
    return paired_seeds_and_items({s: t[0] for s, t in pairs.items()}, {s: t[1] for s, t in pairs.items()},
                                  n_resamples)


def _frozen_row(suite: Suite, student: str, n_resamples: int) -> tuple[list, str] | None:
    frozen = [r for r in suite.runs if r.student == student and r.identity.group == "frozen discriminator"]
    paper = [r for r in frozen if r.identity.key == "gad:offpolicy"]
    runs = paper or frozen
    if not runs:
        return None
    gold = "gold/teacher_logprob" if any("gold/teacher_logprob" in m for r in runs for m in r.metrics) else None
    quality, quality_sign = (gold, -1) if gold else ("response_len", +1)
    reward, q = _change(runs, "reward_mean", n_resamples), _change(runs, quality, n_resamples)
    if reward is None or q is None:
        return None
    verdicts = {_verdict(reward, +1), _verdict(q, quality_sign)}
    final = ("not reproduced" if "not reproduced" in verdicts else "reproduced" if verdicts == {"reproduced"} else
             "borderline" if "borderline" in verdicts else "inconclusive")
    steps = sum(1 for m in runs[0].metrics if m.get("stage") == "adversarial")
    what = "off-policy D (paper)" if paper else runs[0].identity.label
    evidence = (f"{what}, last vs first third of {steps} adversarial steps: reward {reward['diff']:+.3f} "
                f"[{reward['ci_low']:+.3f}, {reward['ci_high']:+.3f}], {quality} {q['diff']:+.3f} "
                f"[{q['ci_low']:+.3f}, {q['ci_high']:+.3f}]")
    return (["A frozen discriminator gets exploited", evidence, _n(reward, "steps"), final],
            f"{_mc(reward, 'reward')}; {_mc(q, quality)}")


def findings_table(suite: Suite, base=None) -> Table | str:
    students = list(dict.fromkeys(r.student for r in suite.runs if r.identity.key in ("gad", "seqkd")))
    n_resamples = resamples(suite.runs, suite.meta)
    rows, errors, flags = [], [], judge_signal(suite)  # a judge without signal tests no finding
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
                found.append(([finding, f"not tested: {judge} has no signal on {label} ({flags[(label, judge)]})",
                               "–", NOT_TESTED], ""))
                continue
            found.append(_difference_row(finding, gad, seqkd, label, metric, n_resamples))
            record = JUDGES.get(judge)
            for extra in record.findings if record else ():  # an exact judge's other metrics
                found.append(_difference_row(f"{finding}, {extra}", gad, seqkd, label, f"{judge}/{extra}",
                                             n_resamples))
        found.append(_mode_row(gad, seqkd, labels[0], n_resamples) if labels else None)
        found.append(_frozen_row(suite, student, n_resamples))
        found.append(survives_length_control(gad, seqkd, labels, n_resamples, flags))
        prefix = f"{student_label(student)}: " if len(students) > 1 else ""
        rows += [[prefix + row[0], *row[1:]] for row, _ in filter(None, found)]
        errors += [f"{prefix}{row[0]}: {mc}" for row, mc in filter(None, found) if mc]
    if not rows:
        return ("Findings table skipped: it needs `gad` and `seqkd` runs whose eval rows (eval/step-K/*.jsonl) "
                "are stored.")
    return Table(
        name="findings",
        title="Paper findings in this suite",
        header=["Finding", f"Evidence (difference, {LEVEL} interval)", "n (seeds x items)", "Verdict"],
        rows=rows,
        note=("Verdict from the interval: reproduced (on the paper's side of 0), not reproduced (on the other "
              f"side), inconclusive (contains 0), borderline (a bound within {MC_BAND:g} Monte-Carlo standard errors "
              f"of 0 even at the cap of {MAX_RESAMPLES:,} resamples, {MAX_REFITS:,} refits for a controlled score: "
              "another RNG seed could give another verdict); not tested: only a judge without signal could test "
              "it. Intervals resample seeds, then prompts (steps) within each seed, paired by "
              "(seed, prompt); n = seeds x prompts. Primary metric per dataset. Resamples: at least the suite's "
              f"eval.bootstrap = {n_resamples:,}, doubled until each bound's Monte-Carlo standard error (MC s.e., "
              f"from order statistics) is at most {100 * MC_SHARE:g}% of the interval's width and {MC_BAND:g} MC "
              "s.e. away from 0. " + "; ".join(errors) + "."),
    )
