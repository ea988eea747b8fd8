"""LLMJudge: an LLM protocol bound to a ChatClient, behind the common Judge interface."""

from __future__ import annotations

from collections.abc import Sequence

from gadbench.judge.engine import JudgeRun, judge
from gadbench.judge.protocols import LLMProtocol
from gadbench.judge.types import JudgeItem
from gadbench.llm.client import ChatClient


class LLMJudge:
    def __init__(self, protocol: LLMProtocol, client: ChatClient):
        self.protocol, self.client = protocol, client
        self.name = protocol.name

    def judge(self, items: Sequence[JudgeItem]) -> JudgeRun:
        return judge(items, self.protocol, self.client)
