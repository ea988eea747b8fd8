"""The rollout contract shared by engines."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Rollout:
    """N samples per prompt, prompt-major (prompt 0's samples first).

    response_ids end with the EOS token when the sample finished, and are cut at `max_new_tokens` (no EOS,
    `truncated`) otherwise; `texts` are the decoded responses without special tokens.
    """

    prompt_index: list[int]
    response_ids: list[list[int]]
    truncated: list[bool]
    texts: list[str]

    @property
    def generated_tokens(self) -> int:
        return sum(map(len, self.response_ids))


def make_engine(name: str, tokenizer, batch_size: int = 0):
    if name == "hf":
        from gadbench.rollout.hf import HFRolloutEngine

        return HFRolloutEngine(tokenizer, batch_size)
    raise ValueError(f"unknown rollout engine {name!r}; use `hf`.")
