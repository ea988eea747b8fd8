"""Length- and style-controlled judge scores, fitted offline on gadbench's own per-item data.

LLM judges favour longer and more formatted answers, and GAD, a policy-gradient method, can learn exactly
that. A controlled score answers: what would the judge's score be if the student's answers had their
opponents' length (and markdown style)? It is a regression over the items of one method on one dataset,
read at zero difference.

Which judges can be controlled, and how, is their record's `Control` (gadbench.judge.records): the fit
("logistic" for a win rate, pairwise; "linear" for a 0-100 score, gad-paper) and where the opponent text is.
Per valid judgment i: y_i, the item score (pairwise: 100 win, 50 tie, 0 loss; gad-paper: 100 s / (s + r));
a_i, the student's answer; b_i, the answer it was judged against (opponent "teacher": the row's teacher
response, else its `reference`, as `gadbench.eval.evaluator` passes them to the judge; "judge_reference": the
judge's own reference, details["judge_reference"]). Items without b_i are left out.

Lengths l are whitespace-separated words of both texts: rows store `answer_tokens` for the student only, the
opponent has no token count, and a difference needs one unit on both sides.

    d_i = l(a_i) - l(b_i),    z_i = d_i / sd(d)                            (length)
    x_ik = (n_k(a_i) - n_k(b_i)) / (n_k(a_i) + n_k(b_i) + 1),  scaled by sd_k   (style, k = 1..4)

with n_k = length l, markdown headers (`#`..`######` at a line start), list items (`-`, `*`, `+` or `1.` at
a line start) and bold spans (`**..**`, `__..__`), counted outside fenced code blocks; sd is the population
standard deviation over the items. Covariates are scaled, never centred, so 0 means "no difference".

logistic (pairwise): logistic regression with soft labels p_i = y_i / 100 (a tie is half a win):
    length (AlpacaEval 2's length-controlled win rate, Dubois et al. 2024, "Length-Controlled AlpacaEval"):
        logit P(student wins i) = theta + phi * tanh(z_i)
    style (Arena-Hard style control, LMSYS 2024, "Does style matter?"; its Bradley-Terry fit with style
    terms is, for one student against one opponent, this logistic model):
        logit P(student wins i) = theta + sum_k phi_k x_ik
    controlled = 100 sigmoid(theta), the prediction at zero difference.
linear (gad-paper): least squares on the 0-100 item score:
    length: y_i = alpha + beta z_i;   style: y_i = alpha + sum_k beta_k x_ik;   controlled = alpha.

Departures from AlpacaEval and Arena-Hard:
- No per-instruction term. AlpacaEval's instruction difficulty is estimated once over many models and
  downloaded. gadbench has one comparison per instruction and method (per seed), where such a term is not
  identifiable (it would absorb each item's outcome); shared across methods, it would make one method's
  controlled score depend on which other methods are in the suite.
- Covariates are not centred. Arena-Hard centres them, which in its many-model fit keeps 0 near an average
  battle; with one student against one opponent, centring would read the score at the student's own mean
  difference and undo the control.

The logistic fit uses scikit-learn, not statsmodels: it is already installed (lm-eval needs it) and is what
AlpacaEval's own fit uses; its L2 penalty (PENALTY_C = 100 on the covariate terms, the intercept unpenalised) keeps the
logistic fit finite when the covariates separate wins from losses, where statsmodels' unpenalised maximum
likelihood diverges; and only point estimates are needed, because the intervals come from the bootstrap.
The linear fit is numpy's least squares (the same numbers as scikit-learn's LinearRegression, without its
per-call overhead, which dominated the bootstrap's refits).

Intervals: percentile bootstrap that refits on every resample: items are resampled; with several seeds,
seeds first, then items within each drawn seed (the scheme of `gadbench.metrics.hierarchical_means`). The
covariates (their sd included) are computed once on all items and resampled with them. Refits are added
(`gadbench.metrics.grow_draws`, up to `max_resamples`; by default none, as every refit is a regression) until
each bound's Monte-Carlo error is settled; every bound comes with its Monte-Carlo s.e., and a difference's
verdict is "borderline" when a bound is within 2 of them of 0.

`warning` is set when |controlled - raw| > WARN_POINTS = 2 points of the 0-100 scale, the size of the
GAD-vs-SeqKD gaps in the paper's Table 2 (0.5 to 2.2 points): a shift that large can change the conclusion.
(AlpacaEval warns only beyond 10 points, as a sign that its fit failed.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from gadbench.judge.records import JUDGES, Control
from gadbench.metrics import grow_draws, verdict

WARN_POINTS = 2.0
CONTROLS = ("length", "style")
STYLE_FEATURES = ("length", "headers", "list_items", "bold")
PENALTY_C = 100.0  # scikit-learn's C for the logistic covariate terms: an L2 penalty |phi|^2 / (2 C), weak
_CODE = re.compile(r"```.*?```", re.S)
_HEADER = re.compile(r"^#{1,6}\s", re.M)
_LIST_ITEM = re.compile(r"^\s*(?:\d+\.|[-*+])\s", re.M)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")


@dataclass(frozen=True)
class JudgedItem:
    """One valid judgment with the two texts it compared (see the module doc for `opponent`);
    `answer_tokens` (the student's, as stored) is for plots in the paper's unit (Table 6 counts tokens)."""

    id: str
    score: float
    answer: str
    opponent: str
    answer_tokens: int | None = None


def control_of(judge: str) -> Control:
    """How `judge`'s score is controlled; a judge whose record has no `Control` is an error."""
    control = JUDGES[judge].control if judge in JUDGES else None
    if control is None:
        able = [n for n, r in JUDGES.items() if r.control]
        raise ValueError(f"controlled scores exist for the judges {', '.join(able)}, not {judge!r}")
    return control


def judged_items(rows: Sequence[dict], judge: str) -> list[JudgedItem]:
    """The valid `judge` judgments of stored eval rows that have an opponent text (see `Control`)."""
    opponent_of = control_of(judge).opponent
    out = []
    for r in rows:
        j = (r.get("judgments") or {}).get(judge)
        if not j or not j.get("valid") or j.get("score") is None or r.get("answer") is None:
            continue
        if opponent_of == "judge_reference":
            opponent = (j.get("details") or {}).get("judge_reference")
        else:
            opponent = r.get("teacher_response") or r.get("reference")
        if opponent is not None:
            out.append(JudgedItem(str(r["id"]), float(j["score"]), r["answer"], opponent, r.get("answer_tokens")))
    return out


def words(text: str) -> int:
    return len(text.split())


def style_counts(text: str) -> tuple[int, int, int, int]:
    """(words, headers, list items, bold spans); markdown is counted outside fenced code blocks."""
    plain = _CODE.sub("", text)
    return words(text), len(_HEADER.findall(plain)), len(_LIST_ITEM.findall(plain)), len(_BOLD.findall(plain))


def _scaled(x: np.ndarray) -> np.ndarray:
    sd = x.std(axis=0)
    return x / np.where(sd > 0, sd, 1.0)


def length_covariate(answer_lengths: Sequence[float], opponent_lengths: Sequence[float]) -> np.ndarray:
    """z = d / sd(d), d = answer length - opponent length: [n, 1], scaled but not centred."""
    d = np.asarray(answer_lengths, dtype=float) - np.asarray(opponent_lengths, dtype=float)
    return _scaled(d.reshape(-1, 1))


def style_covariates(answer_counts: Sequence[Sequence[float]], opponent_counts: Sequence[Sequence[float]]) -> np.ndarray:
    """x_k = (a_k - b_k) / (a_k + b_k + 1) per count (rows of `style_counts`), each column scaled: [n, 4]."""
    a, b = np.asarray(answer_counts, dtype=float), np.asarray(opponent_counts, dtype=float)
    return _scaled((a - b) / (a + b + 1))


def win_rate_at_zero(p: Sequence[float], x: np.ndarray) -> tuple[float, np.ndarray]:
    """100 sigmoid(theta) and phi of logit P(win) = theta + x @ phi, fitted to soft labels p in [0, 1]
    (each item enters as a win weighted p and a loss weighted 1 - p). One outcome on every item leaves nothing
    to explain: its rate, phi = 0."""
    p = np.asarray(p, dtype=float)
    if p.min() == p.max():
        return 100 * float(p[0]), np.zeros(x.shape[1])
    labels = np.r_[np.ones(len(p)), np.zeros(len(p))]
    weights = np.r_[p, 1 - p]
    keep = weights > 0
    model = LogisticRegression(C=PENALTY_C, solver="newton-cholesky", max_iter=100)
    fit = model.fit(np.vstack([x, x])[keep], labels[keep], sample_weight=weights[keep])
    return 100 * float(expit(fit.intercept_[0])), fit.coef_[0]


def score_at_zero(y: Sequence[float], x: np.ndarray) -> tuple[float, np.ndarray]:
    """alpha and beta of the least-squares fit y = alpha + x @ beta, as scikit-learn's LinearRegression: beta from
    the centred data (minimum-norm when a resample leaves x rank-deficient), alpha = mean(y) - mean(x) @ beta."""
    y = np.asarray(y, dtype=float)
    x_mean = x.mean(axis=0)
    beta = np.linalg.lstsq(x - x_mean, y - y.mean(), rcond=None)[0]
    return float(y.mean() - x_mean @ beta), beta


def _covariates(items: Sequence[JudgedItem], judge: str, control: str) -> np.ndarray:
    if control == "length":
        z = length_covariate([words(i.answer) for i in items], [words(i.opponent) for i in items])
        return np.tanh(z) if control_of(judge).fit == "logistic" else z
    return style_covariates([style_counts(i.answer) for i in items], [style_counts(i.opponent) for i in items])


def _check(control: str) -> None:
    if control not in CONTROLS:
        raise ValueError(f"control must be one of {CONTROLS}, not {control!r}")


def _fit(judge: str, y: np.ndarray, x: np.ndarray) -> tuple[float, np.ndarray]:
    return win_rate_at_zero(y / 100, x) if control_of(judge).fit == "logistic" else score_at_zero(y, x)


def _at_zero(judge: str, y: np.ndarray, x: np.ndarray) -> float:
    return _fit(judge, y, x)[0]


def _identified(x: np.ndarray) -> bool:
    """False when a covariate takes one non-zero value on every item: it cannot be told apart from the
    intercept, so the score at zero difference is an extrapolation the data say nothing about."""
    return not np.any((np.ptp(x, axis=0) == 0) & (x[0] != 0))


def _resample(groups: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Indices of one resample: len(groups) seeds drawn with replacement, then each drawn seed's items."""
    picks = rng.integers(0, len(groups), len(groups))
    return np.concatenate([groups[s][rng.integers(0, len(groups[s]), len(groups[s]))] for s in picks])


def _groups(sizes: Sequence[int]) -> list[np.ndarray]:
    """Index ranges of consecutive blocks of the given sizes (one block per seed)."""
    ends = np.cumsum(sizes)
    return [np.arange(e - n, e) for n, e in zip(sizes, ends, strict=True)]


def _draws(stat, groups: list[np.ndarray], n_resamples: int, seed: int) -> np.ndarray:
    """[n_resamples, k]: `stat(indices)` (k values) on each resample."""
    rng = np.random.default_rng(seed)
    return np.array([stat(_resample(groups, rng)) for _ in range(n_resamples)]).reshape(n_resamples, -1)


def _interval(bounds: dict) -> dict:
    """ci_low, ci_high and each bound's Monte-Carlo s.e. (mc_low, mc_high) of one column of `grow_draws`."""
    return {k: bounds[k] for k in ("ci_low", "ci_high", "mc_low", "mc_high")}


def _warning(control: str, shift: float) -> str | None:
    if abs(shift) <= WARN_POINTS:
        return None
    return (f"the {control}-controlled value differs from the raw one by {shift:+.1f} points (more than "
            f"{WARN_POINTS:g}): the judge's {control} preference moves this number")


def _features(control: str) -> tuple[str, ...]:
    return ("length",) if control == "length" else STYLE_FEATURES


def controlled_score(runs: Mapping[int, Sequence[dict]], judge: str, control: str = "length",
                     n_resamples: int = 1000, seed: int = 0, level: float = 0.95,
                     max_resamples: int | None = None) -> dict:
    """Raw and controlled score of one method on one dataset, from its stored eval rows.

    `runs`: seed -> that run's rows of the dataset (eval/step-K/<dataset>.jsonl at the selected step);
    `judge`: a judge whose record has a `Control`; `control`: "length" or "style" (formulas in the module doc).
    Returns raw and controlled ({mean, ci_low, ci_high, mc_low, mc_high} on 0-100; both intervals from the same
    resamples, at least `n_resamples`, grown up to `max_resamples`), n_resamples, shift (controlled - raw),
    coefficients (phi or beta per covariate), n_items (valid judgments with an opponent text), n_seeds, n_total
    (rows given) and warning (a sentence, or None). Without items, or with a
    covariate that never varies, the controlled fields are None (and warning says why).
    """
    _check(control)
    per_seed = [s for s in (judged_items(rows, judge) for rows in runs.values()) if s]
    items = [it for s in per_seed for it in s]
    none = {"mean": None, "ci_low": None, "ci_high": None}
    out = {"judge": judge, "control": control, "raw": dict(none), "controlled": dict(none), "shift": None,
           "coefficients": None, "n_items": len(items), "n_seeds": len(per_seed),
           "n_total": sum(len(rows) for rows in runs.values()), "warning": None}
    if not items:
        return out
    y, x = np.array([it.score for it in items]), _covariates(items, judge, control)
    groups = _groups([len(s) for s in per_seed])
    identified = _identified(x)

    def stat(i: np.ndarray) -> tuple[float, float]:  # (raw, controlled); nothing to control when unidentified
        return y[i].mean(), _at_zero(judge, y[i], x[i]) if identified else 0.0

    _, bounds = grow_draws(lambda n, s: _draws(stat, groups, n, s), n_resamples, seed, level,
                           max_resamples=max_resamples or n_resamples)
    out["raw"] = {"mean": float(y.mean()), **_interval(bounds[0])}
    out["n_resamples"] = bounds[0]["n_resamples"]
    if not identified:
        out["warning"] = f"the {control} difference is the same on every item: no controlled score"
        return out
    value, coef = _fit(judge, y, x)
    out["controlled"] = {"mean": value, **_interval(bounds[1])}
    out["shift"] = value - out["raw"]["mean"]
    out["coefficients"] = {n: float(c) for n, c in zip(_features(control), coef, strict=True)}
    out["warning"] = _warning(control, out["shift"])
    return out


def _paired(a: Mapping[int, Sequence[dict]], b: Mapping[int, Sequence[dict]],
            judge: str) -> list[tuple[list[JudgedItem], list[JudgedItem]]]:
    """Per seed present in both, the items of a and b for the ids valid in both, in the same order."""
    pairs = []
    for s in sorted(a.keys() & b.keys()):
        ia = {it.id: it for it in judged_items(a[s], judge)}
        ib = {it.id: it for it in judged_items(b[s], judge)}
        ids = sorted(ia.keys() & ib.keys())
        if ids:
            pairs.append(([ia[k] for k in ids], [ib[k] for k in ids]))
    return pairs


def controlled_difference(a: Mapping[int, Sequence[dict]], b: Mapping[int, Sequence[dict]], judge: str,
                          control: str = "length", expected_sign: int = 1, n_resamples: int = 1000, seed: int = 0,
                          level: float = 0.95, max_resamples: int | None = None) -> dict:
    """controlled(a) - controlled(b), e.g. GAD minus SeqKD, with a paired bootstrap interval and a verdict.

    `a`, `b`: seed -> rows, as for `controlled_score`. Pairs are the (seed, item id) valid in both; each
    resample draws seeds, then ids within each drawn seed, the same for a and b, and refits both models
    (each method keeps its own fit and covariate scale, so the difference is that of two `controlled_score`
    values on the paired items). Returns diff, ci_low, ci_high, mc_low, mc_high (each bound's Monte-Carlo s.e.),
    p (the two-sided bootstrap fraction of `gadbench.metrics.paired_bootstrap`), verdict
    (`gadbench.metrics.verdict` against `expected_sign`), the same for the raw scores (raw_diff, raw_ci_low,
    raw_ci_high, raw_mc_low, raw_mc_high, raw_verdict), n_resamples (at least `n_resamples`, grown up to
    `max_resamples` until both differences' bounds are settled for a verdict), n_seeds, n_items, and warning
    when the controlled and raw differences are more than WARN_POINTS apart.
    """
    _check(control)
    pairs = _paired(a, b, judge)
    if not pairs:
        raise ValueError(f"controlled_difference: the two methods share no (seed, item) with a valid {judge} judgment")
    ya, yb = (np.array([it.score for p in pairs for it in p[k]]) for k in (0, 1))
    xa, xb = (_covariates([it for p in pairs for it in p[k]], judge, control) for k in (0, 1))
    if not (_identified(xa) and _identified(xb)):
        raise ValueError(f"controlled_difference: the {control} difference is the same on every item of a method")
    groups = _groups([len(p[0]) for p in pairs])

    def stat(i: np.ndarray) -> tuple[float, float]:
        return ya[i].mean() - yb[i].mean(), _at_zero(judge, ya[i], xa[i]) - _at_zero(judge, yb[i], xb[i])

    draws, bounds = grow_draws(lambda n, s: _draws(stat, groups, n, s), n_resamples, seed, level, decide_at=0.0,
                               max_resamples=max_resamples or n_resamples)
    raw, diff = stat(np.arange(len(ya)))
    out = {"judge": judge, "control": control, "diff": float(diff), **_interval(bounds[1])}
    out["p"] = min(1.0, 2 * min(float(np.mean(draws[:, 1] <= 0)), float(np.mean(draws[:, 1] >= 0))))
    out["verdict"] = verdict(out["ci_low"], out["ci_high"], expected_sign, out["mc_low"], out["mc_high"])
    raw_ci = _interval(bounds[0])
    out.update(raw_diff=float(raw), **{f"raw_{k}": v for k, v in raw_ci.items()},
               raw_verdict=verdict(raw_ci["ci_low"], raw_ci["ci_high"], expected_sign, raw_ci["mc_low"],
                                   raw_ci["mc_high"]),
               n_resamples=len(draws), n_seeds=len(pairs), n_items=len(ya), warning=_warning(control, diff - raw))
    return out
