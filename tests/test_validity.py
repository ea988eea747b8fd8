"""The judge-validity table (gadbench.report.validity) on rows whose rank correlations are worked out by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gadbench.report.load import Identity, Run, Suite
from gadbench.report.validity import correlations, validity_table

# Three runs x four prompts: ROUGE-L score and gold reverse KL (lower is better) of each answer.
ROUGE = {"a": [1, 1, 1, 3], "b": [2, 2, 2, 1], "c": [3, 3, 3, 2]}
KL = {"a": [3, 1, 2, 1], "b": [2, 2, 3, 2], "c": [1, 3, 1, 3]}


def _run(name: str) -> Run:
    rows = [{"id": str(i), "prompt": f"p{i}", "answer": "x", "answer_tokens": 1,
             "judgments": {"persona-gold": {"reverse_kl": float(KL[name][i]), "forward_kl": float(KL[name][i]),
                                            "teacher_logprob": -float(KL[name][i])},
                           "rouge-l": {"score": float(ROUGE[name][i])}}} for i in range(4)]
    return Run(f"r-{name}", Path(name), {}, {"eval": {"test": {}}, "selection": {"checkpoint": 1}}, [], None,
               {1: {"test": rows}}, {}, None, "s", "t", name, 0, Identity("gad", "gad", "GAD"))


def test_rank_correlations_with_gold_by_hand():
    # Per prompt, rho(rouge, KL) over runs a, b, c: -1, +1, -0.5, -0.5; oriented (KL is lower-better): +1, -1,
    # +0.5, +0.5, mean 0.25. Run means: rouge 1.5, 1.75, 2.75 (ranks 1 2 3); KL 1.75, 2.25, 2.0 (ranks 1 3 2):
    # rho = 1 - 6 x 2 / (3 x 8) = 0.5, oriented -0.5.
    suite = Suite(Path("."), "s", {"config": {"eval": {"bootstrap": 200}}}, [_run(n) for n in "abc"])
    from gadbench.report.validity import _points

    points = _points(suite, "test", ["rouge-l/score", "persona-gold/reverse_kl"])
    got = correlations(points, 0, 1, -1, 200)
    assert math.isclose(got["within"]["rho"], 0.25) and got["within"]["n"] == 4, got
    assert math.isclose(got["across"]["rho"], -0.5) and got["across"]["n"] == 3, got
    for level in got.values():
        assert level["ci_low"] <= level["rho"] <= level["ci_high"] and level["n_resamples"] >= 200, got

    table = validity_table(suite)
    assert table.header[3:] == ["rho with persona-gold/reverse_kl", "rho with persona-gold/forward_kl",
                                "rho with persona-gold/teacher_logprob"], table.header
    within, across = table.rows
    assert [c.value for c in within[3:]] == pytest.approx([0.25, 0.25, 0.25]), within  # teacher_logprob = -KL
    assert [c.value for c in across[3:]] == pytest.approx([-0.5, -0.5, -0.5]), across


def test_the_table_needs_an_exact_judge_and_another():
    suite = Suite(Path("."), "s", {}, [_run(n) for n in "abc"])
    for run in suite.runs:
        for row in run.evals[1]["test"]:
            del row["judgments"]["persona-gold"]
    assert validity_table(suite).startswith("Judge-validity table skipped")
