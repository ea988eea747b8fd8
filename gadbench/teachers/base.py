"""The black-box Teacher interface and the registry behind `make_teacher(spec)`.

A spec is `NAME` or `NAME:ARG`, e.g. `openai:gpt-4o`, `openai:local@http://127.0.0.1:8000/v1`, `hf:PATH`,
`dataset`. The factory registered for NAME is called as `factory(ARG, **opts)` ("" when there is no ARG).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from gadbench import GadbenchError


@runtime_checkable
class Teacher(Protocol):
    """Answers prompts with text only (a black box: no logits, no tokenizer). One response per prompt, in order."""

    def respond(self, prompts: list[str]) -> list[str]: ...


class TeacherError(GadbenchError, RuntimeError):
    """The teacher could not answer every prompt; the message says what to do."""


_FACTORIES: dict[str, Callable[..., Teacher]] = {}


def register_teacher(name: str, factory: Callable[..., Teacher]) -> None:
    """Make `make_teacher("NAME[:ARG]", **opts)` call `factory(ARG, **opts)`; a second registration is an error."""
    if not name or ":" in name:
        raise ValueError(f"teacher backend name {name!r} must be non-empty and contain no ':'.")
    if name in _FACTORIES:
        raise ValueError(f"a teacher backend named {name!r} is already registered; pick another name.")
    _FACTORIES[name] = factory


def make_teacher(spec: str, **opts) -> Teacher:
    name, _, arg = spec.partition(":")
    if name not in _FACTORIES:
        known = ", ".join(sorted(_FACTORIES))
        raise ValueError(f"unknown teacher backend {name!r} in spec {spec!r}; use one of: {known}.")
    return _FACTORIES[name](arg, **opts)
