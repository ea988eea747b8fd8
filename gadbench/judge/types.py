"""What a judge reads (JudgeItem) and writes (Judgment), and the Judge interface every judge implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class JudgeItem:
    """One answer to judge. `other` is the pairwise opponent (default: the teacher response); `reference` is the
    data's own reference answer (GPT-4's for MT-bench and Vicuna questions that have one) and `category` the
    data's question category, both as the data source gives them (mtbench-single reads them)."""

    id: str
    prompt: str
    answer: str
    teacher_response: str | None = None
    other: str | None = None
    reference: str | None = None
    category: str | None = None


@dataclass
class Judgment:
    """score is None exactly when valid is False; raw holds the judge's reply text per call, in the
    protocol's call order (empty for offline judges); details holds parsed parts, errors and usage."""

    score: float | None
    valid: bool
    raw: list[str | None] = field(default_factory=list)
    details: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"score": self.score, "valid": self.valid, "raw": self.raw, "details": self.details}


API_ERROR = "api error"  # the start of an invalid judgment's error when a judge call failed


def invalid(reason: str, raw: list[str | None] | None = None, **details) -> Judgment:
    return Judgment(None, False, raw or [], {"error": reason, **details})


def call_failed(stored: dict) -> bool:
    """A stored judgment (`to_json()`) is invalid because a judge call failed (an API error, worth asking
    again), not because its reply did not parse."""
    error = (stored.get("details") or {}).get("error") if not stored.get("valid", True) else None
    return isinstance(error, str) and error.startswith(API_ERROR)


class Judge(Protocol):
    """Anything with a name that maps items to one judgment each, in order."""

    name: str

    def judge(self, items: Sequence[JudgeItem]) -> list[Judgment]: ...
