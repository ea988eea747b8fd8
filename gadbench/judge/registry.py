"""Judge registry: `register_judge(name, factory)`; `get_judge(name, **kwargs)` calls `factory(**kwargs)`."""

from __future__ import annotations

from collections.abc import Callable

from gadbench.judge.types import Judge

_FACTORIES: dict[str, Callable[..., Judge]] = {}


def register_judge(name: str, factory: Callable[..., Judge], *, replace: bool = False) -> None:
    """Make `get_judge(name, **kwargs)` return `factory(**kwargs)`; re-registering needs replace=True."""
    if name in _FACTORIES and not replace:
        raise ValueError(f"judge {name!r} is already registered; pass replace=True to override it")
    _FACTORIES[name] = factory


def get_judge(name: str, **kwargs) -> Judge:
    if name not in _FACTORIES:
        raise KeyError(f"unknown judge {name!r}; registered judges: {', '.join(available_judges())}")
    return _FACTORIES[name](**kwargs)


def available_judges() -> list[str]:
    return sorted(_FACTORIES)
