"""Metrics against hand-computed values and against simulated data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gadbench.metrics import (
    bootstrap_means,
    corpus_ngram_f1,
    ngram_f1,
    others,
    paired_bootstrap,
    ratio_of_sums,
    summarize,
    tokenize,
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
