"""Agreement between a judge's two orders and between two judges, on hand-computed examples."""

from __future__ import annotations

import pytest

from gadbench.judge.agreement import item_scores, judge_agreement, position_agreement


def test_rank_correlations_hand_computed():
    # b swaps the middle two: one discordant pair of six, sum of squared rank differences 2
    r = judge_agreement({"1": 1, "2": 2, "3": 3, "4": 4}, {"1": 1, "2": 3, "3": 2, "4": 4})
    assert r["spearman"] == pytest.approx(1 - 6 * 2 / (4 * (4**2 - 1)))  # 0.8
    assert r["kendall"] == pytest.approx((5 - 1) / 6)
    assert r["n"] == 4 and r["agreement"] is None


def test_rank_correlations_with_ties_hand_computed():
    # a ranks (1, 2.5, 2.5, 4), b ranks (1, 2, 3.5, 3.5): Pearson of the ranks = 3.75 / 4.5;
    # 4 concordant, 0 discordant pairs, one pair tied in a and one in b: tau-b = 4 / sqrt(5 * 5)
    r = judge_agreement({"p": 1, "q": 2, "r": 2, "s": 3}, {"p": 1, "q": 2, "r": 3, "s": 3})
    assert r["spearman"] == pytest.approx(3.75 / 4.5)
    assert r["kendall"] == pytest.approx(0.8)


def test_verdict_agreement_over_items_valid_for_both_judges():
    a = {"w": 100.0, "t": 50.0, "l": 0.0, "x": 100.0, "only-a": 100.0, "bad": None}
    b = {"w": 100.0, "t": 0.0, "l": 0.0, "x": 50.0, "only-b": 0.0, "bad": 100.0}
    r = judge_agreement(a, b, center=50)
    assert r["n"] == 4 and r["agreement"] == pytest.approx(2 / 4)  # w and l agree; t and x do not


def test_too_few_or_constant_scores_have_no_correlation():
    assert judge_agreement({"a": 1.0}, {"a": 2.0})["spearman"] is None
    r = judge_agreement({"a": 50.0, "b": 50.0}, {"a": 0.0, "b": 100.0}, center=50)
    assert r["kendall"] is None and r["agreement"] == 0.0


def test_position_agreement_counts_valid_two_order_judgments():
    judgments = [
        {"valid": True, "details": {"orders_agree": True}},
        {"valid": True, "details": {"orders_agree": False}},
        {"valid": False, "details": {"error": "parse failure"}},
        {"valid": True, "details": {"orders_agree": True}},
        {"valid": True, "details": {}},  # judged in one order only
    ]
    r = position_agreement(judgments, n_resamples=200)
    assert r["mean"] == pytest.approx(2 / 3) and (r["n_valid"], r["n_total"]) == (3, 5)
    assert 0 <= r["ci_low"] <= r["mean"] <= r["ci_high"] <= 1


def test_item_scores_reads_stored_rows():
    rows = [
        {"id": "a", "judgments": {"pairwise": {"score": 100.0, "valid": True}}},
        {"id": "b", "judgments": {"pairwise": {"score": None, "valid": False}}},
        {"id": 3, "judgments": {"rouge-l": {"score": 40.0, "valid": True}}},
    ]
    assert item_scores(rows, "pairwise") == {"a": 100.0, "b": None}
    assert item_scores(rows, "rouge-l") == {"3": 40.0}
