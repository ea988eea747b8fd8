"""Checkpoint selection rules."""

from __future__ import annotations

import pytest

from gadbench.eval.selection import CheckpointScores, select_checkpoint

TEACHER = {"lmsys": 300.0, "dolly": 150.0}
CKPTS = [
    CheckpointScores(50, validation=45.0, test={"lmsys": 46.0, "dolly": 44.0}, length={"lmsys": 310.0, "dolly": 160.0}),
    CheckpointScores(100, validation=48.0, test={"lmsys": 47.0, "dolly": 45.0}, length={"lmsys": 350.0, "dolly": 170.0}),
    # best test score, but its answers are 2x the teacher's on lmsys: outside [0.5, 1.5]
    CheckpointScores(150, validation=47.0, test={"lmsys": 52.0, "dolly": 50.0}, length={"lmsys": 600.0, "dolly": 200.0}),
    CheckpointScores(200, validation=48.0, test={"lmsys": 48.0, "dolly": 46.0}, length={"lmsys": 320.0, "dolly": 140.0}),
]


def test_validation_picks_best_validation_earliest_on_ties():
    s = select_checkpoint(CKPTS, "validation")
    assert (s.step, s.on_test_sets) == (100, False)
    assert "validation" in s.note and "48.00" in s.note


def test_paper_rule_respects_length_range_and_is_flagged():
    s = select_checkpoint(CKPTS, "paper", teacher_length=TEACHER)
    assert (s.step, s.on_test_sets) == (200, True)
    assert "TEST SETS" in s.note and "[0.5, 1.5]" in s.note
    wide = select_checkpoint(CKPTS, "paper", teacher_length=TEACHER, length_range=(0.5, 2.5))
    assert wide.step == 150


def test_paper_rule_without_any_checkpoint_in_range_says_so():
    s = select_checkpoint(CKPTS, "paper", teacher_length=TEACHER, length_range=(3.0, 4.0))
    assert s.step == 150 and "length was ignored" in s.note


def test_last_and_errors():
    assert select_checkpoint(CKPTS, "last").step == 200
    assert select_checkpoint(CKPTS, "last").to_json() == {"rule": "last", "checkpoint": 200, "note": "last checkpoint (step 200)"}
    with pytest.raises(ValueError, match="unknown selection rule"):
        select_checkpoint(CKPTS, "best")
    with pytest.raises(ValueError, match="validation score"):
        select_checkpoint([CheckpointScores(1)], "validation")
    with pytest.raises(ValueError, match="lengths"):
        select_checkpoint(CKPTS, "paper", teacher_length={"lmsys": 300.0})
    with pytest.raises(ValueError, match="no checkpoints"):
        select_checkpoint([], "last")
