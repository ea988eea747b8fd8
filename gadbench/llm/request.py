"""What one chat completion asks for; the client (gadbench.llm.client) sends it, judge protocols build it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion. `choices`: the reply must be one of these strings, sent as `guided_choice` (the
    structured-output field of vLLM's OpenAI server, which `gadbench serve` also honours)."""

    messages: tuple[dict, ...] | list[dict]
    temperature: float = 0.0
    max_tokens: int | None = None
    seed: int | None = None
    choices: tuple[str, ...] | None = None
