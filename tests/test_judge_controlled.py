"""Length- and style-controlled scores: each formula on hand-computed data, then synthetic judges whose length or
markdown preference is known, judged through the real protocols' parsers and stored as eval rows."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, logit

from gadbench.judge import GadPaper, Pairwise
from gadbench.judge.controlled import (
    WARN_POINTS,
    controlled_difference,
    controlled_score,
    judged_items,
    length_covariate,
    score_at_zero,
    style_counts,
    style_covariates,
    win_rate_at_zero,
)

# --- the formulas, by hand -------------------------------------------------------------------------------------


def test_length_covariate_is_scaled_not_centred():
    assert length_covariate([13, 7, 13, 7], [10, 10, 10, 10]).ravel() == pytest.approx([1, -1, 1, -1])  # sd 3
    assert length_covariate([12, 14], [10, 10]).ravel() == pytest.approx([2, 4])  # d = (2, 4), sd 1: 0 stays 0


def test_style_counts_ignore_code_blocks():
    text = "# Title\n\n- one\n* two\n3. three\n**bold** and __also__\n```\n# not a header\n- not an item\n```"
    assert style_counts(text) == (len(text.split()), 1, 3, 2)


def test_style_covariates_are_normalised_differences_scaled():
    x = style_covariates([(9, 1, 0, 2), (3, 0, 0, 0)], [(0, 0, 0, 0), (3, 0, 0, 0)])
    # raw (a - b) / (a + b + 1): item 1 (9/10, 1/2, 0, 2/3), item 2 all 0; each column's sd is half its range
    assert x[0] == pytest.approx([2, 2, 0, 2]) and x[1] == pytest.approx([0, 0, 0, 0])


def test_win_rate_at_zero_two_groups_hand_computed():
    # x = -1: 1 win in 2; x = +1: 4 wins in 5. Saturated: theta - phi = logit(1/2), theta + phi = logit(4/5),
    # so theta = log(4) / 2 = log 2 and the rate at x = 0 is sigmoid(log 2) = 2/3; the raw rate is 5/7.
    x = np.array([-1, -1, 1, 1, 1, 1, 1] * 40, dtype=float).reshape(-1, 1)  # repeated: the weak penalty is negligible
    p = np.array([1, 0, 1, 1, 1, 1, 0] * 40, dtype=float)
    rate, phi = win_rate_at_zero(p, x)
    assert rate == pytest.approx(100 * 2 / 3, abs=0.05) and phi[0] == pytest.approx(np.log(4) / 2, abs=0.01)
    assert 100 * p.mean() == pytest.approx(100 * 5 / 7)
    ties = np.array([0.5, 0.5, 1, 1, 1, 1, 0] * 40)  # a tie counts as half a win
    assert win_rate_at_zero(ties, x)[0] == pytest.approx(rate)


def test_win_rate_at_zero_with_one_outcome_is_that_outcome():
    x = np.array([[1.0], [2.0], [-1.0]])
    assert win_rate_at_zero([1, 1, 1], x)[0] == 100.0 and win_rate_at_zero([0.5] * 3, x)[0] == 50.0


def test_score_at_zero_is_the_intercept():
    alpha, beta = score_at_zero([40, 50, 60, 50], np.array([[-1.0], [0.0], [1.0], [0.0]]))
    assert alpha == pytest.approx(50) and beta[0] == pytest.approx(10)
    # x = (0, 1, 2), y = (40, 60, 70): slope Sxy / Sxx = 30 / 2 = 15, intercept mean(y) - 15 mean(x) = 170/3 - 15
    alpha, beta = score_at_zero([40, 60, 70], np.array([[0.0], [1.0], [2.0]]))
    assert (alpha, beta[0]) == pytest.approx((125 / 3, 15))


def test_score_at_zero_agrees_with_scikit_learn_also_when_a_resample_is_rank_deficient():
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 4)), rng.normal(50, 5, 40)
    for cols in (x, np.column_stack([x[:, :3], np.full(40, 0.7)]), np.zeros((40, 4))):  # full rank, a constant, none
        fit = LinearRegression().fit(cols, y)
        alpha, beta = score_at_zero(y, cols)
        assert alpha == pytest.approx(fit.intercept_, abs=1e-9) and beta == pytest.approx(fit.coef_, abs=1e-9)


# --- stored rows ----------------------------------------------------------------------------------------------

VERDICTS = {"win": ["[[A]]", "[[B]]"], "tie": ["[[C]]", "[[C]]"], "loss": ["[[B]]", "[[A]]"]}


def _text(n_words: int, markdown: bool = False) -> str:
    body = " ".join(["word"] * n_words)
    return "- **point** one\n- point two\n" + body if markdown else body


def pairwise_rows(n, theta, phi, longer_by, seed, tie_rate=0.1, markdown_bonus=0.0):
    """Eval rows judged by a synthetic pairwise judge: P(student wins) = sigmoid(theta + phi tanh(z) + bonus),
    z = the standardised word-length difference to the teacher response, bonus = `markdown_bonus` when the
    student's answer (alone) has markdown; ties at `tie_rate`. The verdicts go through Pairwise.parse."""
    rng = np.random.default_rng(seed)
    lb = rng.integers(40, 160, n)
    la = np.maximum(1, lb + np.round(rng.normal(longer_by, 40, n))).astype(int)
    md = rng.random(n) < 0.5 if markdown_bonus else np.zeros(n, dtype=bool)
    answers = [_text(a, m) for a, m in zip(la, md, strict=True)]
    d = np.array([len(a.split()) for a in answers]) - lb
    p = expit(theta + phi * np.tanh(d / (d.std() or 1.0)) + markdown_bonus * md)
    rows = []
    for i in range(n):
        outcome = "tie" if rng.random() < tie_rate else ("win" if rng.random() < p[i] else "loss")
        rows.append({"id": f"q{i}", "prompt": f"question {i}", "answer": answers[i], "answer_tokens": int(la[i]),
                     "teacher_response": _text(lb[i]), "judgments": {"pairwise": Pairwise().parse(VERDICTS[outcome]).to_json()}})
    return rows


def gad_paper_rows(n, base, per_sd, longer_by, seed):
    """Eval rows judged by a synthetic gad-paper judge: the reference scores round(6 + e), the student
    round(6 + base + per_sd * z + e'), both clipped to 1..10, e and e' independent N(0, 0.7) and z the
    standardised length difference to the judge's reference (so at z = 0 and base = 0 the two scores are
    exchangeable and the expected item score is exactly 50); the "r s" replies go through GadPaper.parse."""
    rng = np.random.default_rng(seed)
    lb = rng.integers(40, 160, n)
    la = np.maximum(1, lb + np.round(rng.normal(longer_by, 40, n))).astype(int)
    z = (la - lb) / (la - lb).std()
    r = np.clip(np.round(6 + rng.normal(0, 0.7, n)), 1, 10)
    s = np.clip(np.round(6 + base + per_sd * z + rng.normal(0, 0.7, n)), 1, 10)
    rows = []
    for i in range(n):
        j = GadPaper().parse([f"{r[i]:g} {s[i]:g}\nexplanation"])
        j.details["judge_reference"] = _text(lb[i])
        rows.append({"id": f"q{i}", "prompt": f"question {i}", "answer": _text(la[i]), "answer_tokens": int(la[i]),
                     "teacher_response": None, "judgments": {"gad-paper": j.to_json()}})
    return rows


def test_judged_items_pick_the_opponent_each_judge_saw():
    rows = [
        {"id": 1, "answer": "a", "teacher_response": "t", "judgments": {"pairwise": {"score": 100.0, "valid": True}}},
        {"id": 2, "answer": "a", "teacher_response": None, "reference": "ref",
         "judgments": {"pairwise": {"score": 0.0, "valid": True}}},
        {"id": 3, "answer": "a", "teacher_response": "t", "judgments": {"pairwise": {"score": None, "valid": False}}},
        {"id": 4, "answer": "a", "teacher_response": None, "judgments": {"pairwise": {"score": 50.0, "valid": True}}},
        {"id": 5, "answer": "a", "teacher_response": "t",
         "judgments": {"gad-paper": {"score": 40.0, "valid": True, "details": {"judge_reference": "jr"}}}},
    ]
    assert [(i.id, i.opponent) for i in judged_items(rows, "pairwise")] == [("1", "t"), ("2", "ref")]
    assert [(i.id, i.opponent, i.score) for i in judged_items(rows, "gad-paper")] == [("5", "jr", 40.0)]
    with pytest.raises(ValueError, match="controlled scores exist for the judges gad-paper, pairwise, not 'rouge-l'"):
        judged_items(rows, "rouge-l")


# --- synthetic judges (issue 15's acceptance tests) -------------------------------------------------------------


def _covers(r: dict, value: float) -> bool:
    return r["ci_low"] <= value <= r["ci_high"]


def test_pairwise_judge_that_prefers_longer_answers_is_length_controlled_to_parity():
    # equal quality (theta = 0), the judge adds 1.5 logits per unit of tanh(z), the student runs 30 words longer
    r = controlled_score({0: pairwise_rows(600, 0.0, 1.5, 30, seed=1)}, "pairwise", n_resamples=300)
    assert r["raw"]["ci_low"] > 50  # the raw win rate rewards length
    assert _covers(r["controlled"], 50) and abs(r["controlled"]["mean"] - 50) < 3
    assert r["coefficients"]["length"] == pytest.approx(1.5, abs=0.4)
    assert r["shift"] < -WARN_POINTS and "length-controlled" in r["warning"]
    assert (r["n_items"], r["n_seeds"], r["n_total"]) == (600, 1, 600)


def test_pairwise_judge_without_length_preference_keeps_its_raw_rate():
    r = controlled_score({0: pairwise_rows(600, logit(0.6), 0.0, 30, seed=2)}, "pairwise", n_resamples=300)
    assert _covers(r["controlled"], r["raw"]["mean"]) and _covers(r["raw"], r["controlled"]["mean"])
    assert abs(r["shift"]) <= WARN_POINTS and r["warning"] is None


def test_gad_paper_judge_that_prefers_longer_answers_is_length_controlled():
    # parity at equal length, +1 point of the student's 1-10 score per sd of length difference
    r = controlled_score({0: gad_paper_rows(600, 0.0, 1.0, 40, seed=3)}, "gad-paper", n_resamples=300)
    assert r["raw"]["ci_low"] > 50
    assert _covers(r["controlled"], 50) and abs(r["controlled"]["mean"] - 50) < 1.5
    assert r["warning"] is not None


def test_gad_paper_judge_without_length_preference_keeps_its_raw_score():
    r = controlled_score({0: gad_paper_rows(600, 1.0, 0.0, 30, seed=4)}, "gad-paper", n_resamples=300)
    assert r["raw"]["mean"] > 52  # the student is better by 1 point
    assert _covers(r["controlled"], r["raw"]["mean"]) and r["warning"] is None


def test_style_control_removes_a_markdown_preference_that_length_control_keeps():
    rows = pairwise_rows(800, 0.0, 0.0, 0, seed=5, markdown_bonus=1.2)
    style = controlled_score({0: rows}, "pairwise", control="style", n_resamples=300)
    length = controlled_score({0: rows}, "pairwise", control="length", n_resamples=300)
    assert style["raw"]["ci_low"] > 50 and _covers(style["controlled"], 50)
    assert not _covers(length["controlled"], 50)
    assert set(style["coefficients"]) == {"length", "headers", "list_items", "bold"}


def test_several_seeds_are_resampled_before_items():
    # three seeds of very different quality: the seed-then-item interval is wider than pooling them as one run
    runs = {s: pairwise_rows(200, theta, 0.0, 0, seed=10 + s) for s, theta in enumerate((-1.0, 0.0, 1.0))}
    pooled = controlled_score({0: [r for rows in runs.values() for r in rows]}, "pairwise", n_resamples=300)
    seeds = controlled_score(runs, "pairwise", n_resamples=300)
    assert seeds["n_seeds"] == 3 and seeds["controlled"]["mean"] == pytest.approx(pooled["controlled"]["mean"])
    width = {k: r["controlled"]["ci_high"] - r["controlled"]["ci_low"] for k, r in (("pooled", pooled), ("seeds", seeds))}
    assert width["seeds"] > 2 * width["pooled"]


def test_no_items_or_no_length_variation_gives_no_controlled_score():
    r = controlled_score({0: []}, "pairwise")
    assert r["n_items"] == 0 and r["controlled"]["mean"] is None and r["raw"]["mean"] is None
    one = pairwise_rows(1, 0.0, 0.0, 30, seed=6)
    r = controlled_score({0: one}, "pairwise", n_resamples=50)
    assert r["raw"]["mean"] is not None and r["controlled"]["mean"] is None and "same on every item" in r["warning"]


# --- GAD vs SeqKD under length control ---------------------------------------------------------------------------


def test_a_gain_that_is_only_length_does_not_survive_length_control():
    gad = {0: pairwise_rows(600, 0.0, 1.5, 50, seed=20)}  # GAD's answers 50 words longer than the teacher's
    seqkd = {0: pairwise_rows(600, 0.0, 1.5, 0, seed=21)}
    r = controlled_difference(gad, seqkd, "pairwise", n_resamples=300)
    assert r["raw_diff"] > 0 and r["raw_verdict"] == "reproduced"
    assert r["verdict"] == "inconclusive" and r["ci_low"] < 0 < r["ci_high"]
    assert r["n_items"] == 600 and r["n_seeds"] == 1 and r["warning"] is not None


def test_a_real_gain_survives_length_control():
    gad = {0: pairwise_rows(600, 0.6, 1.5, 50, seed=22)}
    seqkd = {0: pairwise_rows(600, 0.0, 1.5, 0, seed=23)}
    r = controlled_difference(gad, seqkd, "pairwise", n_resamples=300)
    assert r["verdict"] == "reproduced" and r["p"] < 0.05
    assert r["diff"] == pytest.approx(100 * (expit(0.6) - 0.5), abs=6)
    g, s = (controlled_score(m, "pairwise", n_resamples=50)["controlled"]["mean"] for m in (gad, seqkd))
    assert r["diff"] == pytest.approx(g - s)  # the difference of the two controlled scores (same items here)


def test_the_difference_pairs_seeds_and_ids():
    gad = {0: gad_paper_rows(300, 1.0, 1.0, 40, seed=30), 1: gad_paper_rows(300, 1.0, 1.0, 40, seed=31)}
    seqkd = {0: gad_paper_rows(250, 0.0, 1.0, 0, seed=32), 2: gad_paper_rows(300, 0.0, 1.0, 0, seed=33)}
    r = controlled_difference(gad, seqkd, "gad-paper", n_resamples=200)
    assert (r["n_seeds"], r["n_items"]) == (1, 250)  # seed 0 only, the 250 ids both have
    assert r["verdict"] == "reproduced" and r["raw_diff"] > r["diff"] > 0
    with pytest.raises(ValueError, match="share no"):
        controlled_difference({5: gad[0]}, seqkd, "gad-paper")
