"""Evaluation metrics: bootstrap intervals, paired comparisons, n-gram overlap, ROUGE-L, the "Others" column.

Invalid items (None or NaN: parse failures, API errors) are excluded from every statistic and counted in
`n_total - n_valid`; they are never scored 0.

Monte-Carlo error. A percentile-bootstrap bound is a quantile of R random resamples, so it moves with the RNG
seed; a verdict read from it can flip. `quantile_mc_se` estimates each bound's Monte-Carlo standard error, and
`grow_draws` adds resamples (doubling, from the suite's `eval.bootstrap` up to MAX_RESAMPLES) until every bound
is settled: its s.e. is at most MC_SHARE of the interval's width and, for a verdict, it lies more than
MC_BAND s.e. from 0. A verdict whose bound is still within MC_BAND s.e. of 0 at the cap is "borderline".

Text metrics use `tokenize`: lower-cased runs of word characters, and each other non-space character as
its own token ("Don't!" -> ["don", "'", "t", "!"]).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

OTHERS = ("dolly", "selfinst", "vicuna")
_TOKEN = re.compile(r"\w+|[^\w\s]")
_CELLS_PER_CHUNK = 4_000_000  # bootstrap index matrix size per chunk (memory bound)
RESAMPLES = 2000  # the default number of bootstrap resamples (eval.bootstrap)
MC_SHARE = 0.05  # a bound is settled when its Monte-Carlo s.e. is at most this share of the interval's width
MC_BAND = 2.0  # ... and, for a verdict, when it lies more than this many s.e. from 0
MAX_RESAMPLES = 64_000  # resamples stop growing here; an unsettled verdict is then "borderline"


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _valid(values: Sequence[float | None]) -> np.ndarray:
    x = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    return x[~np.isnan(x)]


def bootstrap_means(x: np.ndarray, n_resamples: int = 2000, seed: int = 0) -> np.ndarray:
    """Means of `n_resamples` resamples of the rows of `x` drawn with replacement (seeded, vectorised in
    chunks); for 2-D `x` every column is resampled with the same row indices."""
    rng = np.random.default_rng(seed)
    n = len(x)
    chunk = max(1, _CELLS_PER_CHUNK // n)
    out = [
        x[rng.integers(0, n, size=(min(chunk, n_resamples - start), n))].mean(axis=1)
        for start in range(0, n_resamples, chunk)
    ]
    return np.concatenate(out)


def summarize(
    values: Sequence[float | None], n_resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> dict:
    """Mean of the valid values with a percentile-bootstrap interval at `level`, and valid/total counts.

    ci = the (1-level)/2 and (1+level)/2 quantiles of the resampled means. No valid value -> None fields.
    """
    x = _valid(values)
    out = {"mean": None, "ci_low": None, "ci_high": None, "n_valid": int(len(x)), "n_total": len(values)}
    if len(x):
        lo, hi = np.quantile(bootstrap_means(x, n_resamples, seed), [(1 - level) / 2, (1 + level) / 2])
        out.update(mean=float(x.mean()), ci_low=float(lo), ci_high=float(hi))
    return out


def paired_bootstrap(
    a: Mapping[str, float | None],
    b: Mapping[str, float | None],
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Difference mean(a - b) over prompt ids valid in both, resampling ids (paired bootstrap).

    Returns diff, ci_low, ci_high (percentile interval), n (shared valid ids) and
    p = min(1, 2 * min(P*(mean* <= 0), P*(mean* >= 0))), a two-sided bootstrap fraction: small p means the
    sign of the difference is stable under resampling.
    """

    def ok(v: float | None) -> bool:
        return v is not None and not math.isnan(v)

    ids = sorted(k for k in a.keys() & b.keys() if ok(a[k]) and ok(b[k]))
    if not ids:
        raise ValueError("paired_bootstrap: the two methods share no prompt id with valid scores")
    d = np.array([a[k] - b[k] for k in ids], dtype=float)
    means = bootstrap_means(d, n_resamples, seed)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    p = min(1.0, 2 * min(float(np.mean(means <= 0)), float(np.mean(means >= 0))))
    return {"diff": float(d.mean()), "ci_low": float(lo), "ci_high": float(hi), "p": p, "n": len(ids)}


def hierarchical_means(groups: Sequence[np.ndarray], n_resamples: int = 2000, seed: int = 0) -> np.ndarray:
    """Two-level bootstrap of the pooled mean of items grouped by seed: [n_resamples, K] resampled means.

    `groups[s]` holds seed s's items, [n_s] or [n_s, K]. Each resample draws S seeds with replacement, then,
    for every drawn seed, its n_s items with replacement, and pools them:
        mean* = sum_j n_{c_j} m*_j / sum_j n_{c_j},   c_j ~ U{1..S},   m*_j = a resampled mean of seed c_j,
    so an interval reflects both seed-to-seed and prompt-to-prompt variation (with one seed it is the plain
    bootstrap over items). Seeds with no items are dropped.
    """
    groups = [np.asarray(g, dtype=float).reshape(len(g), -1) for g in groups if len(g)]
    if not groups:
        raise ValueError("hierarchical_means: no items")
    S = len(groups)
    rng = np.random.default_rng(seed)
    counts = np.array([len(g) for g in groups], dtype=float)
    # per seed, an independent resampled mean for every (resample, draw) slot: [S, R, S, K]
    per_seed = np.stack([bootstrap_means(g, n_resamples * S, seed + 1 + s).reshape(n_resamples, S, -1)
                         for s, g in enumerate(groups)])
    chosen = rng.integers(0, S, size=(n_resamples, S))
    r, j = np.meshgrid(np.arange(n_resamples), np.arange(S), indexing="ij")
    picked = per_seed[chosen, r, j]  # [R, S, K]
    w = counts[chosen][..., None]
    return (picked * w).sum(axis=1) / w.sum(axis=1)


def quantile_mc_se(draws: np.ndarray, q: float) -> float:
    """Monte-Carlo standard error of the q-quantile of R independent draws, from order statistics (no density
    estimate): the number of draws below the true quantile is Binomial(R, q), with sd s = sqrt(R q (1 - q)), so
    the order statistics of ranks R q -+ s lie about one standard error either side of it:
        se = (x_(ceil(R q + s)) - x_(floor(R q - s))) / 2,   ranks clipped to 1..R."""
    x = np.sort(np.asarray(draws, dtype=float))
    r = len(x)
    centre, spread = r * q, math.sqrt(r * q * (1 - q))
    hi = min(r, max(1, math.ceil(centre + spread)))
    lo = min(r, max(1, math.floor(centre - spread)))
    return float(x[hi - 1] - x[lo - 1]) / 2


def _bounds(draws: np.ndarray, level: float) -> dict:
    """ci_low, ci_high (percentile interval) of 1-D draws, each bound's MC s.e. and the resample count."""
    qs = ((1 - level) / 2, (1 + level) / 2)
    lo, hi = np.quantile(draws, qs)
    return {"ci_low": float(lo), "ci_high": float(hi), "mc_low": quantile_mc_se(draws, qs[0]),
            "mc_high": quantile_mc_se(draws, qs[1]), "n_resamples": len(draws)}


def _settled(b: dict, decide_at: float | None) -> bool:
    width = b["ci_high"] - b["ci_low"]
    for bound, se in ((b["ci_low"], b["mc_low"]), (b["ci_high"], b["mc_high"])):
        if se > MC_SHARE * width:
            return False
        if decide_at is not None and se > 0 and abs(bound - decide_at) <= MC_BAND * se:
            return False
    return True


def grow_draws(draw, n_resamples: int, seed: int = 0, level: float = 0.95, decide_at: float | None = None,
               max_resamples: int = MAX_RESAMPLES) -> tuple[np.ndarray, list[dict]]:
    """Bootstrap draws of a statistic, grown until every interval bound is settled (module doc).

    `draw(n, seed)` returns n independent draws, [n] or [n, K] (K statistics from the same resamples). Starts
    with `n_resamples` draws; while a column's bound is unsettled and fewer than `max_resamples` are drawn, adds
    as many again from a fresh seed. `decide_at`: the value a verdict compares the bounds with (0 for a
    difference), None for an interval no verdict reads. Returns the draws [R, K] and, per column, `_bounds`."""
    batches = [np.asarray(draw(n_resamples, seed), dtype=float)]
    total = len(batches[0])
    while True:
        draws = np.concatenate(batches).reshape(total, -1)
        bounds = [_bounds(draws[:, k], level) for k in range(draws.shape[1])]
        if total >= max_resamples or all(_settled(b, decide_at) for b in bounds):
            return draws, bounds
        extra = min(total, max_resamples - total)
        batches.append(np.asarray(draw(extra, int(np.random.SeedSequence([seed, len(batches)]).generate_state(1)[0])),
                                  dtype=float))
        total += extra


def _by_seed(values: Mapping[int, Mapping[str, float | None]]) -> dict[int, dict[str, float]]:
    return {s: {k: float(v) for k, v in items.items() if v is not None and not math.isnan(v)}
            for s, items in values.items()}


def seeds_and_items(values: Mapping[int, Mapping[str, float | None]], n_resamples: int = 2000, seed: int = 0,
                    level: float = 0.95, max_resamples: int = MAX_RESAMPLES) -> dict:
    """Pooled mean over (seed, item) with a hierarchical-bootstrap interval (`hierarchical_means`).

    `values`: seed -> item id -> value (None/NaN invalid, excluded). Returns mean, ci_low, ci_high,
    n_seeds, n_items (valid items over all seeds), n_valid/n_total as `summarize` does, and the Monte-Carlo
    s.e. of each bound (mc_low, mc_high) with the resamples drawn (n_resamples: at least `n_resamples`, grown
    up to `max_resamples` until each s.e. is at most MC_SHARE of the width; `grow_draws`).
    """
    clean = _by_seed(values)
    groups = [np.array(list(v.values())) for v in clean.values() if v]
    total = sum(len(v) for v in values.values())
    out = {"mean": None, "ci_low": None, "ci_high": None, "n_seeds": len(groups),
           "n_items": int(sum(map(len, groups))), "n_valid": int(sum(map(len, groups))), "n_total": total}
    if groups:
        _, (b,) = grow_draws(lambda n, s: hierarchical_means(groups, n, s)[:, 0], n_resamples, seed, level,
                             max_resamples=max_resamples)
        out.update(mean=float(np.concatenate(groups).mean()), **b)
    return out


def paired_seeds_and_items(a: Mapping[int, Mapping[str, float | None]], b: Mapping[int, Mapping[str, float | None]],
                           n_resamples: int = 2000, seed: int = 0, level: float = 0.95,
                           max_resamples: int = MAX_RESAMPLES) -> dict:
    """Difference mean(a - b) paired by (seed, item id), with a hierarchical-bootstrap interval.

    Pairs are the (seed, id) valid in both; seeds are resampled, then items within each seed. Returns diff,
    ci_low, ci_high, p (the two-sided bootstrap fraction of `paired_bootstrap`), n_seeds, n_items, and each
    bound's Monte-Carlo s.e. (mc_low, mc_high) with the resamples drawn (n_resamples): at least `n_resamples`,
    grown up to `max_resamples` until each bound is settled for a verdict against 0 (`grow_draws`).
    """
    ca, cb = _by_seed(a), _by_seed(b)
    groups = []
    for s in sorted(ca.keys() & cb.keys()):
        ids = sorted(ca[s].keys() & cb[s].keys())
        if ids:
            groups.append(np.array([ca[s][k] - cb[s][k] for k in ids]))
    if not groups:
        raise ValueError("paired_seeds_and_items: the two methods share no (seed, item) with valid values")
    draws, (bounds,) = grow_draws(lambda n, s: hierarchical_means(groups, n, s)[:, 0], n_resamples, seed, level,
                                  decide_at=0.0, max_resamples=max_resamples)
    means = draws[:, 0]
    p = min(1.0, 2 * min(float(np.mean(means <= 0)), float(np.mean(means >= 0))))
    return {"diff": float(np.concatenate(groups).mean()), **bounds, "p": p,
            "n_seeds": len(groups), "n_items": int(sum(map(len, groups)))}


def verdict(ci_low: float, ci_high: float, expected_sign: int, mc_low: float = 0.0, mc_high: float = 0.0) -> str:
    """'reproduced' when the interval lies strictly on the expected side of 0, 'not reproduced' when it lies
    strictly on the other side, else 'inconclusive' (the interval contains 0); 'borderline' when a bound lies
    within MC_BAND of its Monte-Carlo standard errors (`mc_low`, `mc_high`) of 0, so that another RNG seed
    could give another verdict."""
    if any(se > 0 and abs(bound) <= MC_BAND * se for bound, se in ((ci_low, mc_low), (ci_high, mc_high))):
        return "borderline"
    if ci_low > 0 or ci_high < 0:
        return "reproduced" if (ci_low > 0) == (expected_sign > 0) else "not reproduced"
    return "inconclusive"


def auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """P(x > y) + P(x = y) / 2 for x from `positive`, y from `negative`, over all pairs (Mann-Whitney U / n m)."""
    x, y = np.asarray(positive, dtype=float)[:, None], np.asarray(negative, dtype=float)[None, :]
    return float(((x > y) + 0.5 * (x == y)).mean())


def ratio_of_sums(
    num: Sequence[float | None], den: Sequence[float | None], n_resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> dict:
    """sum(num) / sum(den) over items where both are valid, with a percentile-bootstrap interval (items
    resampled as pairs); same keys as `summarize`."""
    pairs = np.array(
        [(float(a), float(b)) for a, b in zip(num, den, strict=True) if a is not None and b is not None], dtype=float
    ).reshape(-1, 2)
    pairs = pairs[~np.isnan(pairs).any(axis=1)]
    out = {"mean": None, "ci_low": None, "ci_high": None, "n_valid": len(pairs), "n_total": len(num)}
    if len(pairs):
        means = bootstrap_means(pairs, n_resamples, seed)
        lo, hi = np.quantile(means[:, 0] / means[:, 1], [(1 - level) / 2, (1 + level) / 2])
        out.update(mean=float(pairs[:, 0].sum() / pairs[:, 1].sum()), ci_low=float(lo), ci_high=float(hi))
    return out


def ngram_f1(candidate: Sequence[str], reference: Sequence[str], n: int) -> float:
    """F1 of n-gram overlap with clipped counts.

    overlap = sum over n-grams g of min(count_cand(g), count_ref(g)); P = overlap / #cand n-grams,
    R = overlap / #ref n-grams, F1 = 2PR / (P + R); 0 when either side has no n-gram or overlap is 0.
    """
    c = Counter(tuple(candidate[i : i + n]) for i in range(len(candidate) - n + 1))
    r = Counter(tuple(reference[i : i + n]) for i in range(len(reference) - n + 1))
    overlap = sum((c & r).values())
    if overlap == 0:
        return 0.0
    p, rec = overlap / c.total(), overlap / r.total()
    return 2 * p * rec / (p + rec)


def corpus_ngram_f1(
    candidates: Sequence[str], references: Sequence[str | None], max_n: int = 6
) -> list[float | None]:
    """[mean over items of ngram_f1(tokenize(cand), tokenize(ref), n) for n = 1..max_n] (paper Fig. 4).

    Items without a reference are skipped; with none at all every entry is None.
    """
    pairs = [(tokenize(c), tokenize(r)) for c, r in zip(candidates, references, strict=True) if r is not None]
    if not pairs:
        return [None] * max_n
    return [float(np.mean([ngram_f1(c, r, n) for c, r in pairs])) for n in range(1, max_n + 1)]


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, by dynamic programming one row of `b` at a time.

    row_i[j] = max(row_{i-1}[j], row_{i-1}[j-1] + [a_i == b_j], row_i[j-1]); the last term is a running max.
    """
    if not a or not b:
        return 0
    vocab = {t: k for k, t in enumerate(set(a) | set(b))}
    bb = np.array([vocab[t] for t in b])
    row = np.zeros(len(b) + 1, dtype=np.int64)
    for t in a:
        step = np.maximum(row[1:], row[:-1] + (bb == vocab[t]))
        row[1:] = np.maximum.accumulate(step)
    return int(row[-1])


def rouge_l_f1(candidate: str, reference: str) -> float:
    """ROUGE-L F1 on `tokenize` tokens: P = LCS/|cand|, R = LCS/|ref|, F1 = 2PR/(P+R) (0 if LCS = 0)."""
    c, r = tokenize(candidate), tokenize(reference)
    lcs = lcs_length(c, r)
    if lcs == 0:
        return 0.0
    p, rec = lcs / len(c), lcs / len(r)
    return 2 * p * rec / (p + rec)


def others(scores: Mapping[str, float], names: Sequence[str] = OTHERS) -> float:
    """The paper's "Others" column: the unweighted mean of the Dolly, SelfInst and Vicuna scores."""
    missing = [n for n in names if n not in scores]
    if missing:
        raise KeyError(f"'Others' needs the scores of {', '.join(names)}; missing: {', '.join(missing)}")
    return float(np.mean([scores[n] for n in names]))
