"""Judge registry: `register_judge(name, factory)`; `get_judge(name, **kwargs)` calls `factory(**kwargs)`.

The built-in judges (the LLM protocols, rouge-l, embedding) register on the registry's first use."""

from __future__ import annotations

from collections.abc import Callable

from gadbench.judge.types import Judge

_FACTORIES: dict[str, Callable[..., Judge]] = {}


def _builtins() -> dict[str, Callable[..., Judge]]:
    if not _FACTORIES:
        from gadbench.judge.llm_judge import LLMJudge
        from gadbench.judge.offline import EmbeddingJudge, RougeLJudge
        from gadbench.judge.protocols import PROTOCOLS

        for name, cls in PROTOCOLS.items():
            _FACTORIES[name] = lambda client, _cls=cls, **options: LLMJudge(_cls(**options), client)
        _FACTORIES["rouge-l"] = RougeLJudge
        _FACTORIES["embedding"] = EmbeddingJudge
    return _FACTORIES


def register_judge(name: str, factory: Callable[..., Judge], *, replace: bool = False) -> None:
    """Make `get_judge(name, **kwargs)` return `factory(**kwargs)`; re-registering needs replace=True."""
    if name in _builtins() and not replace:
        raise ValueError(f"judge {name!r} is already registered; pass replace=True to override it")
    _FACTORIES[name] = factory


def get_judge(name: str, **kwargs) -> Judge:
    if name not in _builtins():
        raise KeyError(f"unknown judge {name!r}; registered judges: {', '.join(available_judges())}")
    return _FACTORIES[name](**kwargs)


def available_judges() -> list[str]:
    return sorted(_builtins())
