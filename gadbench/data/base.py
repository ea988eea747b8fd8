"""Common data types, the source registry and the bad-row policy.

A source turns one dataset into `Row`s (raw records with a row number); `load_examples` applies the
policy of `DataSpec` to every row, so that each row is either an `Example` or a counted skip reason
(`bad_rows="skip"`), or stops the load with one line naming file, row, reason and fix (`"error"`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gadbench import GadbenchError


class DataError(GadbenchError, ValueError):
    """A dataset that cannot be loaded as asked; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class Example:
    """One prompt, the teacher's (or reference) response when the source carries one, and metadata
    (always `id` (a string), `source` and `row`; per source e.g. `category`, `context`, `reference`)."""

    prompt: str
    teacher_response: str | None
    meta: dict = field(default_factory=dict)


@dataclass
class LoadReport:
    """What one load read: `total` rows looked at = `kept` + the sum of `skipped` (reason -> count).
    `first_turn_only` counts kept multi-turn rows that were reduced to their first turn."""

    source: str
    path: str
    total: int = 0
    kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    first_turn_only: int = 0

    def summary(self) -> str:
        skips = ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items())) or "none"
        return f"{self.source} ({self.path}): kept {self.kept} of {self.total} rows; skipped: {skips}"


@dataclass(frozen=True)
class DataSpec:
    """What to load and which rows to accept.

    `path` (a local .jsonl/.json/.parquet file) always wins over `$GADBENCH_DATA_DIR` and the hub;
    `hub_id` overrides the source's default hub dataset. `split=None` means the source's default.
    `fields` maps `prompt`/`response`/`id` to column names (sources `jsonl` and `parquet`).
    `test_fraction` is the share of conversation ids hashed into `test` (source `sharegpt`); `offset`, the first
    problem of the source `world` (the run keeps its train, validation and test problems disjoint by offset).
    `max_chars` / `max_response_chars` skip rows whose prompt / teacher response is longer; `max_repetition`
    skips rows whose teacher response repeats itself: the share of its word 4-grams that repeat an earlier
    one is above it (a degenerate loop of one phrase is near 1, ordinary prose near 0).
    """

    source: str
    path: str | None = None
    hub_id: str | None = None
    split: str | None = None
    limit: int | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    bad_rows: str = "skip"
    require_teacher: bool = False
    multi_turn: str = "first"
    max_chars: int | None = None
    max_response_chars: int | None = None
    max_repetition: float | None = None
    test_fraction: float = 0.02
    offset: int = 0

    def __post_init__(self) -> None:
        if self.bad_rows not in ("skip", "error"):
            raise DataError(f"bad_rows must be 'skip' or 'error', not {self.bad_rows!r}.")
        if self.multi_turn not in ("first", "skip"):
            raise DataError(f"multi_turn must be 'first' or 'skip', not {self.multi_turn!r}.")
        for name in ("limit", "max_chars", "max_response_chars"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise DataError(f"{name} must be a non-negative integer or None, not {value!r}.")
        if self.max_repetition is not None and not 0.0 <= self.max_repetition <= 1.0:
            raise DataError(f"max_repetition must lie in [0, 1] or be None, not {self.max_repetition!r}.")
        if not 0.0 < self.test_fraction < 1.0:
            raise DataError(f"test_fraction must lie strictly between 0 and 1, not {self.test_fraction!r}.")
        unknown = set(self.fields) - {"prompt", "response", "id"}
        if unknown:
            raise DataError(
                f"fields has unknown keys {sorted(unknown)}; use only 'prompt', 'response' and 'id'."
            )


@dataclass
class Row:
    """One record of a source before the policy. `problem` is a reason key (see `REASONS`) when the
    source already found the record unusable; `detail` adds the specifics to the error line."""

    number: int
    prompt: Any = None
    response: Any = None
    meta: dict = field(default_factory=dict)
    user_turns: int = 1
    problem: str | None = None
    detail: str = ""


# reason -> (what is wrong, how to fix it); the keys are the skip reasons of LoadReport.skipped
REASONS: dict[str, tuple[str, str]] = {
    "not_utf8": ("the line is not UTF-8 text", "save the file as UTF-8, or repair or delete that line"),
    "invalid_json": ("the line is not valid JSON", "repair or delete that line"),
    "not_an_object": ("the row is not a JSON object", "make every row an object with the source's fields"),
    "missing_fields": (
        "the row lacks a field this source reads",
        "add or rename the field, or load the file with source 'jsonl' and a field mapping",
    ),
    "missing_id": ("the row has no string id", "give every row a unique string id"),
    "empty_conversation": ("the conversation has no turns", "delete the row"),
    "first_turn_not_user": (
        "the conversation does not start with a user turn",
        "delete the row or start it with the user's message",
    ),
    "prompt_not_string": ("the prompt is not a string", "store the prompt as text"),
    "empty_prompt": ("the prompt is empty", "write the prompt or delete the row"),
    "invalid_unicode": (
        "the prompt or response holds an unpaired surrogate escape (\\ud800-\\udfff), which is not text",
        "repair the escape or delete the row",
    ),
    "multi_turn": (
        "the conversation has more than one user turn",
        "set multi_turn='first' to keep its first turn",
    ),
    "missing_response": (
        "the teacher response is missing or empty",
        "fill it in, or set require_teacher=False to let a teacher answer",
    ),
    "prompt_over_max_chars": ("the prompt is longer than max_chars", "raise max_chars"),
    "response_over_max_chars": ("the teacher response is longer than max_response_chars", "raise max_response_chars"),
    "response_repetitive": (
        "the teacher response repeats itself (its share of repeated word 4-grams is above max_repetition)",
        "raise max_repetition, or repair the response",
    ),
}

SourceFn = Callable[[DataSpec], tuple[str, Iterable[Row]]]


@dataclass(frozen=True)
class Source:
    """A data source: `read(spec) -> (where, rows)`, `where` naming the file or hub dataset read; `size`, the rows
    of its default split when known (the plan's judge-cost estimate for an eval set without `limit`)."""

    name: str
    read: SourceFn
    size: int | None = None


SOURCES: dict[str, Source] = {}


def register_source(name: str, size: int | None = None) -> Callable[[SourceFn], SourceFn]:
    """Decorate `read(spec) -> (where, rows)` to register it as source `name` (one record per name)."""

    def add(fn: SourceFn) -> SourceFn:
        if name in SOURCES:
            raise ValueError(f"data source {name!r} is registered twice")
        SOURCES[name] = Source(name, fn, size)
        return fn

    return add


def list_sources() -> list[str]:
    return sorted(SOURCES)


def load_examples(spec: DataSpec) -> tuple[list[Example], LoadReport]:
    """Load `spec.source` and apply the bad-row policy; stop after `spec.limit` kept examples."""
    if spec.source not in SOURCES:
        raise DataError(f"unknown data source {spec.source!r}; choose one of {', '.join(list_sources())}.")
    where, rows = SOURCES[spec.source].read(spec)
    report = LoadReport(spec.source, where)
    examples: list[Example] = []
    for row in rows:
        if spec.limit is not None and report.kept >= spec.limit:
            break
        report.total += 1
        reason = row.problem or _check(row, spec)
        if reason is not None:
            if spec.bad_rows == "error":
                what, fix = REASONS[reason]
                raise DataError(
                    f"{where}: row {row.number}: {what}{row.detail}; {fix} "
                    f"(or set bad_rows='skip' to drop and count such rows)."
                )
            report.skipped[reason] = report.skipped.get(reason, 0) + 1
            continue
        meta = {"id": f"{spec.source}-{row.number}", **row.meta, "source": spec.source, "row": row.number}
        meta["id"] = str(meta["id"])
        if row.user_turns > 1:
            report.first_turn_only += 1
            meta["user_turns"] = row.user_turns
        examples.append(Example(row.prompt, _response(row.response), meta))
        report.kept += 1
    return examples, report


def _response(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _check(row: Row, spec: DataSpec) -> str | None:
    if not isinstance(row.prompt, str):
        return "prompt_not_string"
    if not row.prompt.strip():
        return "empty_prompt"
    if not _unicode(row.prompt) or (isinstance(row.response, str) and not _unicode(row.response)):
        return "invalid_unicode"
    if row.user_turns > 1 and spec.multi_turn == "skip":
        return "multi_turn"
    response = _response(row.response)
    if spec.require_teacher and response is None:
        return "missing_response"
    if spec.max_chars is not None and len(row.prompt) > spec.max_chars:
        return "prompt_over_max_chars"
    if response is not None and spec.max_response_chars is not None and len(response) > spec.max_response_chars:
        return "response_over_max_chars"
    if response is not None and spec.max_repetition is not None and repetition(response) > spec.max_repetition:
        return "response_repetitive"
    return None


def repetition(text: str, n: int = 4) -> float:
    """The share of the text's word n-grams that repeat an earlier one: 1 - distinct / all (0 under n+1 words)."""
    words = text.split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def _unicode(text: str) -> bool:
    """False for text that no file or tokenizer takes: a lone surrogate, from a JSON escape like "\\ud800"."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
