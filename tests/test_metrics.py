"""Metrics against hand-computed values and against simulated data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gadbench.metrics import (
    auc,
    bootstrap_means,
    corpus_ngram_f1,
    hierarchical_means,
    ngram_f1,
    others,
    paired_bootstrap,
    paired_seeds_and_items,
    ratio_of_sums,
    seeds_and_items,
    summarize,
    tokenize,
    verdict,
)


def test_tokenize():
    assert tokenize("Don't stop, OK?") == ["don", "'", "t", "stop", ",", "ok", "?"]


def test_summarize_excludes_invalid_and_counts():
    s = summarize([1.0, None, 3.0, float("nan"), 5.0], n_resamples=500)
    assert (s["mean"], s["n_valid"], s["n_total"]) == (3.0, 3, 5)
    assert 1.0 <= s["ci_low"] <= 3.0 <= s["ci_high"] <= 5.0


def test_summarize_hand_computed_interval():
    # resampled means of [0, 1] are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4: the 2.5% and 97.5%
    # quantiles are 0 and 1
    s = summarize([0.0, 1.0], n_resamples=4000, seed=1)
    assert (s["mean"], s["ci_low"], s["ci_high"]) == (0.5, 0.0, 1.0)
    # a constant sample has a zero-width interval; an empty one has no numbers
    assert summarize([4.0] * 7) == {"mean": 4.0, "ci_low": 4.0, "ci_high": 4.0, "n_valid": 7, "n_total": 7}
    assert summarize([None, None])["mean"] is None


def test_bootstrap_is_seeded_and_chunk_independent_in_shape():
    x = np.arange(10.0)
    a, b = bootstrap_means(x, 300, seed=3), bootstrap_means(x, 300, seed=3)
    assert a.shape == (300,) and np.array_equal(a, b)
    assert not np.array_equal(a, bootstrap_means(x, 300, seed=4))
    assert abs(a.mean() - 4.5) < 0.3


def test_interval_covers_true_mean_at_nominal_rate():
    rng = np.random.default_rng(0)
    hits = 0
    trials = 300
    for t in range(trials):
        data = rng.normal(50.0, 10.0, size=40)
        s = summarize(data.tolist(), n_resamples=400, seed=t)
        hits += s["ci_low"] <= 50.0 <= s["ci_high"]
    # percentile bootstrap at n=40 slightly under-covers; nominal 0.95
    assert 0.88 <= hits / trials <= 0.99


def test_ratio_of_sums_hand_computed():
    r = ratio_of_sums([100 * 6.0, 100 * 9.0, None], [6 + 8.0, 9 + 3.0, 10.0], n_resamples=500)
    assert r["mean"] == pytest.approx(1500 / 26)
    assert (r["n_valid"], r["n_total"]) == (2, 3)
    assert r["ci_low"] <= r["mean"] <= r["ci_high"]


def test_paired_bootstrap_known_difference():
    a = {"p1": 5.0, "p2": 6.0, "p3": 7.0, "p4": None, "only_a": 100.0}
    b = {"p1": 4.0, "p2": 5.0, "p3": 6.0, "p4": 1.0}
    r = paired_bootstrap(a, b, n_resamples=500)
    assert (r["diff"], r["ci_low"], r["ci_high"], r["n"]) == (1.0, 1.0, 1.0, 3)
    assert r["p"] == 0.0
    with pytest.raises(ValueError, match="share no prompt id"):
        paired_bootstrap({"x": 1.0}, {"y": 1.0})


def test_paired_bootstrap_detects_and_rejects():
    rng = np.random.default_rng(1)
    base = rng.normal(50, 10, 200)
    ids = [f"p{i}" for i in range(200)]
    better = paired_bootstrap(dict(zip(ids, base + 2 + rng.normal(0, 1, 200), strict=True)), dict(zip(ids, base, strict=True)))
    assert better["p"] < 0.01 and better["ci_low"] > 0
    same = paired_bootstrap(dict(zip(ids, base + rng.normal(0, 1, 200), strict=True)), dict(zip(ids, base, strict=True)))
    assert same["p"] > 0.05 and same["ci_low"] < 0 < same["ci_high"]


def test_hierarchical_interval_sees_seed_to_seed_variation():
    """Seed 0's 50 prompts all score 0, seed 1's all score 1: within a seed nothing varies, so every resample
    mean is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4, and the 95% interval is [0, 1]. A flat bootstrap
    over the 100 (seed, prompt) items pretends they are independent: about 0.5 +- 0.1."""
    values = {0: {f"p{i}": 0.0 for i in range(50)}, 1: {f"p{i}": 1.0 for i in range(50)}}
    r = seeds_and_items(values, n_resamples=4000)
    assert (r["mean"], r["ci_low"], r["ci_high"], r["n_seeds"], r["n_items"]) == (0.5, 0.0, 1.0, 2, 100)
    means = hierarchical_means([np.zeros(50), np.ones(50)], 4000)[:, 0]
    assert set(np.unique(means)) == {0.0, 0.5, 1.0}
    assert np.mean(means == 0.5) == pytest.approx(0.5, abs=0.03)
    flat = summarize([0.0] * 50 + [1.0] * 50, 4000)
    assert 0.38 < flat["ci_low"] < flat["ci_high"] < 0.62


def test_hierarchical_pools_items_and_reduces_to_the_item_bootstrap_for_one_seed():
    # seed 0: one item of 0; seed 1: three items of 1 -> pooled mean 3/4 (not the mean of seed means, 1/2)
    assert seeds_and_items({0: {"a": 0.0}, 1: {"a": 1.0, "b": 1.0, "c": None, "d": 1.0}})["mean"] == 0.75
    x = np.random.default_rng(0).normal(size=40)
    one = seeds_and_items({7: {str(i): v for i, v in enumerate(x)}}, n_resamples=4000)
    flat = summarize(list(x), 4000)
    assert one["mean"] == pytest.approx(flat["mean"])
    assert one["ci_low"] == pytest.approx(flat["ci_low"], abs=0.05) and one["ci_high"] == pytest.approx(flat["ci_high"], abs=0.05)
    assert (one["n_total"], one["n_valid"]) == (40, 40)


def test_paired_over_seeds_and_items():
    a = {0: {"p1": 5.0, "p2": 6.0, "x": 1.0}, 1: {"p1": 7.0, "p2": None}}
    b = {0: {"p1": 4.7, "p2": 5.7}, 1: {"p1": 6.7, "p2": 2.0}, 2: {"p1": 0.0}}
    r = paired_seeds_and_items(a, b, n_resamples=500)
    # pairs (0, p1), (0, p2), (1, p1), each a - b = 0.3: no variation at either level
    assert (r["n_seeds"], r["n_items"], r["p"]) == (2, 3, 0.0)
    assert r["diff"] == pytest.approx(0.3) and r["ci_low"] == pytest.approx(0.3) and r["ci_high"] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="share no"):
        paired_seeds_and_items({0: {"x": 1.0}}, {1: {"x": 1.0}})


@pytest.mark.parametrize("lo, hi, sign, expected", [
    (0.1, 0.5, +1, "reproduced"), (-0.5, -0.1, +1, "not reproduced"), (-0.1, 0.5, +1, "inconclusive"),
    (-0.5, -0.1, -1, "reproduced"), (0.1, 0.5, -1, "not reproduced"), (0.0, 0.5, +1, "inconclusive"),
])
def test_verdict_uses_the_interval(lo, hi, sign, expected):
    assert verdict(lo, hi, sign) == expected


def test_auc_hand_computed():
    # pairs (teacher, student): 3>1 3>2 3=3 | 2>1 2=2 2<3 -> (3 wins + 2 ties / 2) / 6 = 4/6
    assert auc([3.0, 2.0], [1.0, 2.0, 3.0]) == pytest.approx(4 / 6)
    assert auc([1.0], [2.0]) == 0.0 and auc([2.0], [2.0]) == 0.5


def test_ngram_f1_hand_computed():
    cand, ref = "the cat the cat".split(), "the cat sat".split()
    # unigrams: cand {the:2, cat:2}, ref {the, cat, sat}; clipped overlap 2; P=2/4, R=2/3, F1=4/7
    assert ngram_f1(cand, ref, 1) == pytest.approx(4 / 7)
    # bigrams: cand {the cat:2, cat the:1}, ref {the cat, cat sat}; overlap 1; P=1/3, R=1/2, F1=2/5
    assert ngram_f1(cand, ref, 2) == pytest.approx(2 / 5)
    assert ngram_f1(cand, ref, 4) == 0.0  # the reference has no 4-gram
    assert ngram_f1(ref, ref, 3) == 1.0


def test_corpus_ngram_f1_is_mean_of_items():
    f = corpus_ngram_f1(["the cat the cat", "a b"], ["the cat sat", "a b"], max_n=2)
    assert f == pytest.approx([(4 / 7 + 1) / 2, (2 / 5 + 1) / 2])
    assert corpus_ngram_f1(["x"], [None], max_n=3) == [None, None, None]


def test_others_is_unweighted_mean():
    # paper Table 2, 7B SeqKD: (47.2 + 48.3 + 49.5) / 3 = 48.33
    assert others({"lmsys": 49.2, "dolly": 47.2, "selfinst": 48.3, "vicuna": 49.5}) == pytest.approx(48.3333, abs=1e-4)
    with pytest.raises(KeyError, match="vicuna"):
        others({"dolly": 1.0, "selfinst": 2.0})
    assert not math.isnan(others({"a": 1.0, "b": 3.0}, names=("a", "b")))
