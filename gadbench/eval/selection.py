"""Checkpoint selection, one rule applied to every method of a suite.

- `validation` (default): the best validation-split score; the test sets are never looked at.
- `paper`: the best judged test score (unweighted mean over the test sets) among checkpoints whose mean
  response length on every test set lies within [lo, hi] x the teacher's (default [0.5, 1.5]). The paper
  (docs/paper.md, section 5.4) selects by "score with length in an acceptable range" on the test sets
  themselves and publishes no range: the range is our assumption, and the result is flagged as selection
  on test sets.
  If no checkpoint is within range, the best test score is taken and the note says so.
- `last`: the latest step.
"Best" is the highest score, or the lowest for a metric declared lower-is-better (its record's `Metric`, read
by the caller). Ties go to the earliest step. A checkpoint without the score its rule reads (no valid judgment,
e.g. in a judge outage) is left out and listed in `Selection.skipped`; when no checkpoint has one, the last is
taken and the note says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CheckpointScores:
    step: int
    validation: float | None = None
    test: Mapping[str, float] = field(default_factory=dict)  # dataset -> judged score
    length: Mapping[str, float] = field(default_factory=dict)  # dataset -> mean response length


@dataclass(frozen=True)
class Selection:
    rule: str
    step: int
    note: str
    on_test_sets: bool
    skipped: tuple[int, ...] = ()  # checkpoints left out: no score to select on

    def to_json(self) -> dict:
        out = {"rule": self.rule, "checkpoint": self.step, "note": self.note}
        return {**out, "skipped": list(self.skipped)} if self.skipped else out


def _best(cands: Sequence[CheckpointScores], key, sign: float) -> CheckpointScores:
    return max(sorted(cands, key=lambda c: c.step), key=lambda c: sign * key(c))  # max keeps the first of equals


def _test_mean(c: CheckpointScores) -> float:
    if not c.test:
        raise ValueError(f"checkpoint step {c.step} has no test scores; rule 'paper' needs them")
    return sum(c.test.values()) / len(c.test)


def _in_range(c: CheckpointScores, teacher_length: Mapping[str, float], lo: float, hi: float) -> bool:
    missing = set(c.test) - set(c.length) | set(c.test) - set(teacher_length)
    if missing:
        raise ValueError(f"rule 'paper' needs student and teacher lengths for {sorted(missing)} (step {c.step})")
    return all(lo <= c.length[d] / teacher_length[d] <= hi for d in c.test)


def _last(checkpoints: Sequence[CheckpointScores], sign: float, teacher_length, length_range) -> Selection:
    step = max(c.step for c in checkpoints)
    return Selection("last", step, f"last checkpoint (step {step})", False)


def _none_scored(checkpoints: Sequence[CheckpointScores], what: str) -> Selection:
    step = max(c.step for c in checkpoints)
    return Selection("last", step, f"no checkpoint has a {what} (its judgments failed): the last checkpoint (step "
                                   f"{step}) is reported", False, tuple(sorted(c.step for c in checkpoints)))


def _by_validation(checkpoints: Sequence[CheckpointScores], sign: float, teacher_length, length_range) -> Selection:
    scored = [c for c in checkpoints if c.validation is not None]
    if not scored:
        return _none_scored(checkpoints, "validation score")
    best = _best(scored, lambda c: c.validation, sign)
    skipped = tuple(sorted(c.step for c in checkpoints if c.validation is None))
    return Selection("validation", best.step, f"best validation score {best.validation:.2f} at step {best.step}",
                     False, skipped)


def _by_test_sets(checkpoints: Sequence[CheckpointScores], sign: float, teacher_length, length_range) -> Selection:
    lo, hi = length_range
    scored = [c for c in checkpoints if c.test]
    if not scored:
        return _none_scored(checkpoints, "test score")
    skipped = tuple(sorted(c.step for c in checkpoints if not c.test))
    ok = [c for c in scored if _in_range(c, teacher_length or {}, lo, hi)]
    best = _best(ok or scored, _test_mean, sign)
    scope = (
        f"length within [{lo:g}, {hi:g}] x teacher"
        if ok
        else f"no checkpoint had length within [{lo:g}, {hi:g}] x teacher, so length was ignored"
    )
    note = (
        f"SELECTED ON THE TEST SETS (paper protocol): best mean test score {_test_mean(best):.2f} "
        f"at step {best.step}, {scope}"
    )
    return Selection("paper", best.step, note, True, skipped)


_RULES = {"validation": _by_validation, "paper": _by_test_sets, "last": _last}  # eval.selection's values


def select_checkpoint(
    checkpoints: Sequence[CheckpointScores],
    rule: str = "validation",
    teacher_length: Mapping[str, float] | None = None,
    length_range: tuple[float, float] = (0.5, 1.5),
    higher_is_better: bool = True,
) -> Selection:
    """Choose one checkpoint by `rule`; the returned note is printed in reports."""
    if not checkpoints:
        raise ValueError("no checkpoints to select from")
    return _RULES[rule](checkpoints, 1.0 if higher_is_better else -1.0, teacher_length, length_range)
