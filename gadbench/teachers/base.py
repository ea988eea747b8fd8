"""The black-box Teacher interface and the backend records behind `make_teacher(spec)`.

A spec is `NAME` or `NAME:ARG`, e.g. `openai:gpt-4o`, `openai:local@http://127.0.0.1:8000/v1`, `hf:PATH`,
`dataset`, `program`. The backend registered as NAME is built as `build(ARG, **options)` ("" when there is no
ARG); `options(settings, cache_path)` says which keyword arguments it takes from a suite's teacher settings, so
a run and `gadbench teacher collect` build a backend the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from gadbench import GadbenchError
from gadbench.config import TeacherConfig


@runtime_checkable
class Teacher(Protocol):
    """Answers prompts with text only (a black box: no logits, no tokenizer). One response per prompt, in order."""

    def respond(self, prompts: list[str]) -> list[str]: ...


class TeacherError(GadbenchError, RuntimeError):
    """The teacher could not answer every prompt; the message says what to do."""


@dataclass(frozen=True)
class Backend:
    name: str
    build: Callable[..., Teacher]  # (ARG, **options) -> Teacher
    options: Callable[[TeacherConfig, Path | None], dict] = lambda cfg, cache_path: {}
    about: str = ""
    answers_every_prompt: bool = False  # its answers replace the data's own responses (not just fill the missing)


BACKENDS: dict[str, Backend] = {}


def register_teacher(backend: Backend) -> Backend:
    """Add `backend` to the registry; a name registers once."""
    if not backend.name or ":" in backend.name:
        raise ValueError(f"teacher backend name {backend.name!r} must be non-empty and contain no ':'.")
    if backend.name in BACKENDS:
        raise ValueError(f"a teacher backend named {backend.name!r} is already registered; pick another name.")
    BACKENDS[backend.name] = backend
    return backend


def unknown_teacher(spec: str) -> str | None:
    """What is wrong with teacher spec `spec`, or None."""
    name = spec.partition(":")[0]
    if name in BACKENDS:
        return None
    close = difflib.get_close_matches(name, list(BACKENDS), n=1)
    hint = f" (did you mean `{close[0]}`?)" if close else ""
    return f"teacher backend `{name}` in `{spec}` is not registered{hint}; use one of {', '.join(BACKENDS)}"


def make_teacher(spec: str, **options) -> Teacher:
    if problem := unknown_teacher(spec):
        raise ValueError(problem + ".")
    name, _, arg = spec.partition(":")
    return BACKENDS[name].build(arg, **options)


def teacher_from(cfg: TeacherConfig, cache_path: Path | None = None, **options) -> Teacher:
    """The teacher of `cfg.spec` with the options its backend takes from `cfg` (and `cache_path`, where API
    answers are cached), then `options` over them."""
    if problem := unknown_teacher(cfg.spec):
        raise ValueError(problem + ".")
    defaults = BACKENDS[cfg.spec.partition(":")[0]].options(cfg, cache_path)
    return make_teacher(cfg.spec, **(defaults | options))
