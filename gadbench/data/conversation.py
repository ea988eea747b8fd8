"""Reduce a chat conversation to its first exchange.

Accepts both turn shapes in the wild: ShareGPT's `{"from": "human"|"gpt", "value": ...}` and the
OpenAI/LMSYS `{"role": "user"|"assistant", "content": ...}`. Leading system turns are ignored.
"""

from __future__ import annotations

from typing import Any

from gadbench.data.base import Row

_USER = {"human", "user"}
_SYSTEM = {"system"}


def first_exchange(number: int, turns: Any, meta: dict) -> Row:
    """Row with prompt = first user turn, response = the reply right after it (None if there is none),
    `user_turns` = number of user turns; a problem Row when the conversation cannot give a prompt."""
    if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
        return Row(
            number, meta=meta, problem="missing_fields", detail=" (conversation is not a list of turns)"
        )
    turns = [t for t in turns if _speaker(t) not in _SYSTEM]
    if not turns:
        return Row(number, meta=meta, problem="empty_conversation")
    if _speaker(turns[0]) not in _USER:
        return Row(
            number,
            meta=meta,
            problem="first_turn_not_user",
            detail=f" (it starts with {_speaker(turns[0])!r})",
        )
    reply = _text(turns[1]) if len(turns) > 1 and _speaker(turns[1]) not in _USER else None
    user_turns = sum(_speaker(t) in _USER for t in turns)
    return Row(number, _text(turns[0]), reply, meta, user_turns=user_turns)


def _speaker(turn: dict) -> str:
    return str(turn.get("from", turn.get("role", ""))).lower()


def _text(turn: dict) -> Any:
    return turn.get("value", turn.get("content"))
