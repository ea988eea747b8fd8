"""How far each judge tracks an exact judge (`JudgeRecord.exact`: persona-gold, the world's gold): Spearman
rank correlations between a judge's primary score and each gold metric (the exact judge's primary metric and
its `findings` metrics), on the same eval rows, oriented so that +1 means the judge ranks as gold does.

Each dataset's points are its (run, step, prompt) rows at every stored evaluation step of every run: the
runs of every method, search point and seed, their checkpoints along training included.
- within prompts: for each prompt, rho over the points that answer it; the mean over prompts;
- across runs: rho over the (run, step) means of the prompts both judges scored.
Intervals are 95% percentile bootstraps over prompts (the points are fixed; the prompts are the sample; a
resample whose prompts give no rho, all ties, is drawn again): at least the suite's `eval.bootstrap`
resamples, grown until each bound's Monte-Carlo error is settled (gadbench.metrics.grow_draws)."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

from gadbench.judge.records import JUDGES
from gadbench.metrics import grow_draws
from gadbench.report.cells import datasets, item_value, resamples
from gadbench.report.load import Suite
from gadbench.report.naming import dataset_label
from gadbench.report.typeset import Cell, Table

MIN_POINTS = 3  # a prompt (or the run means) with fewer points has no rank correlation


def _points(suite: Suite, label: str, metrics: list[str]) -> dict[str, dict[tuple, np.ndarray]]:
    """prompt id -> {(run id, step): [value of each metric]} over every stored step (NaN where missing)."""
    out: dict[str, dict[tuple, np.ndarray]] = {}
    for run in suite.runs:
        for step, sets in run.evals.items():
            for stem, rows in sets.items():
                if dataset_label(stem) != label:
                    continue
                for i, row in enumerate(rows):
                    values = [item_value(row, m) for m in metrics]
                    out.setdefault(str(row.get("id", i)), {})[(run.run_id, step)] = np.array(
                        [np.nan if v is None else float(v) for v in values])
    return out


def _rho(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < MIN_POINTS or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return np.nan
    return float(stats.spearmanr(x[ok], y[ok]).statistic)


def correlations(points: dict[str, dict[tuple, np.ndarray]], a: int, b: int, sign: int,
                 n_resamples: int) -> dict[str, dict]:
    """{"within": ..., "across": ...}: each {"rho", "ci_low", "ci_high", "n", "n_resamples"} (module doc) for
    columns a (the judge) and b (gold) of the points, rho multiplied by `sign`."""
    prompts = sorted(points)
    systems = sorted({s for p in prompts for s in points[p]})
    table = np.full((len(prompts), len(systems), 2), np.nan)
    for i, p in enumerate(prompts):
        for s, v in points[p].items():
            table[i, systems.index(s)] = v[[a, b]]
    per_prompt = np.array([_rho(t[:, 0], t[:, 1]) for t in table])

    def across(rows: np.ndarray) -> float:
        both = np.isfinite(rows[..., 0]) & np.isfinite(rows[..., 1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a point no prompt scores with both judges
            means = [np.nanmean(np.where(both[..., None], rows, np.nan), axis=0)[:, k] for k in (0, 1)]
        return _rho(*means)

    out = {}
    for name, value, stat in (("within", np.nanmean(per_prompt) if np.isfinite(per_prompt).any() else np.nan,
                               lambda idx: np.nanmean(per_prompt[idx])),
                              ("across", across(table), lambda idx: across(table[idx]))):
        if not np.isfinite(value):
            continue

        def draw(n: int, seed: int, stat=stat) -> np.ndarray:
            """n finite draws: a resample whose prompts give no rho (all ties) is drawn again."""
            rng, out = np.random.default_rng(seed), []
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                for _ in range(100 * n):
                    if len(out) == n:
                        break
                    if np.isfinite(v := stat(rng.integers(0, len(prompts), len(prompts)))):
                        out.append(v)
            return np.array(out + [np.nan] * (n - len(out)))

        draws, (bounds,) = grow_draws(draw, n_resamples)
        paired = np.isfinite(table[..., 0]) & np.isfinite(table[..., 1])  # [prompt, point]
        n = int(np.isfinite(per_prompt).sum()) if name == "within" else int(paired.any(axis=0).sum())
        out[name] = {"rho": sign * value, "ci_low": sign * (bounds["ci_low"] if sign > 0 else bounds["ci_high"]),
                     "ci_high": sign * (bounds["ci_high"] if sign > 0 else bounds["ci_low"]), "n": n,
                     "n_resamples": len(draws)}
    return out


def _judges_in(suite: Suite, label: str) -> list[str]:
    names = {j for r in suite.runs for sets in r.evals.values() for stem, rows in sets.items()
             if dataset_label(stem) == label for row in rows for j in (row.get("judgments") or {})}
    return [n for n in JUDGES if n in names]  # registration order


def validity_table(suite: Suite, base=None) -> Table | str:
    n_resamples = resamples(suite.runs, suite.meta)
    rows, blocks, golds = [], [], []
    for label in datasets(suite):
        judges = _judges_in(suite, label)
        exact = next((JUDGES[j] for j in judges if JUDGES[j].exact), None)
        proxies = [JUDGES[j] for j in judges if not JUDGES[j].exact and _direction(JUDGES[j].primary)]
        if exact is None or not proxies:
            continue
        gold = [exact.primary] + [f"{exact.name}/{m}" for m in exact.findings]
        golds = golds or gold
        metrics = [p.primary for p in proxies] + gold
        points = _points(suite, label, metrics)
        for k, proxy in enumerate(proxies):
            up = _direction(proxy.primary)
            per_gold = [correlations(points, k, len(proxies) + g, up * _direction(m), n_resamples)
                        for g, m in enumerate(gold)]
            blocks.append(len(rows))
            for level, what in (("within", "within prompts"), ("across", "across runs")):
                cells = [Cell(c[level]["rho"], c[level]["ci_low"], c[level]["ci_high"], c[level]["n"], digits=2)
                         if level in c else Cell() for c in per_gold]
                rows.append([label, proxy.primary, what, *cells])
    if not rows:
        return "Judge-validity table skipped: no dataset has an exact judge (persona-gold, gold) and another judge."
    return Table("judge-validity", "How far each judge ranks answers as the exact judge does",
                 ["Dataset", "Judge", "level"] + [f"rho with {m}" for m in golds], rows, blocks,
                 "Spearman rank correlation between the judge's score and each gold metric, oriented so that +1 "
                 "means the judge ranks as gold does; points: every run, search point, seed and evaluated step. "
                 "Within prompts: rho over the points answering one prompt, mean over prompts (n: prompts); "
                 "across runs: rho over the (run, step) means (n: points scored by both). 95% bootstrap intervals over prompts, "
                 f"at least {n_resamples:,} resamples (gadbench.report.validity).")


def _direction(metric: str) -> int:
    """+1 higher is better, -1 lower is better, 0 neither."""
    judge, _, key = metric.partition("/")
    better = JUDGES[judge].metric(key).higher_is_better
    return 0 if better is None else 1 if better else -1
