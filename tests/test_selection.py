"""Checkpoint selection rules."""

from __future__ import annotations

import typing

import pytest

from gadbench.config import EvalConfig
from gadbench.eval.selection import _RULES, CheckpointScores, select_checkpoint

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
    with pytest.raises(ValueError, match="lengths"):
        select_checkpoint(CKPTS, "paper", teacher_length={"lmsys": 300.0})
    with pytest.raises(ValueError, match="no checkpoints"):
        select_checkpoint([], "last")


def test_a_checkpoint_without_a_score_is_skipped_and_named_and_none_scored_takes_the_last():
    """A judge outage leaves evaluation points without a valid score: selection goes on without them (fail-safe)
    and says which it left out; with no scored point at all it reports the last checkpoint."""
    outage = [CheckpointScores(c.step, validation=None if c.step in (100, 150) else c.validation,
                               test={} if c.step in (100, 150) else c.test, length=c.length) for c in CKPTS]
    s = select_checkpoint(outage, "validation")
    assert (s.step, s.skipped) == (200, (100, 150)), s  # 48.0 at 200; 100 (also 48.0, earlier) had no score
    assert s.to_json()["skipped"] == [100, 150]
    p = select_checkpoint(outage, "paper", teacher_length=TEACHER)
    assert (p.step, p.skipped) == (200, (100, 150)), p
    for rule in ("validation", "paper"):
        none = select_checkpoint([CheckpointScores(1), CheckpointScores(2)], rule, teacher_length=TEACHER)
        assert (none.rule, none.step, none.skipped) == ("last", 2, (1, 2)), none
        assert "no checkpoint has a" in none.note and "step 2" in none.note
    assert "skipped" not in select_checkpoint(CKPTS, "validation").to_json()


def test_a_lower_is_better_metric_is_selected_at_its_lowest():
    """The direction comes from the metric's declaration (the runner reads its judge record): for a loss-like
    metric the best checkpoint is the lowest, on the validation split and on the test sets alike."""
    s = select_checkpoint(CKPTS, "validation", higher_is_better=False)
    assert s.step == 50 and "45.00" in s.note
    assert select_checkpoint(CKPTS, "paper", teacher_length=TEACHER, higher_is_better=False).step == 50


def test_every_rule_the_settings_allow_is_implemented():
    allowed = typing.get_args(typing.get_type_hints(EvalConfig)["selection"])
    assert set(allowed) == set(_RULES)
