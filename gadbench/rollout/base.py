"""The rollout contract shared by engines: the `RolloutEngine` protocol and the `Rollout` it returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gadbench.models import normalize_response


def decode_response(tok, ids: list[int]) -> str:
    """A sampled response's text: special tokens dropped, no tokenizer clean-up (it would edit spaces around
    punctuation, a difference the teacher's text does not have), then `normalize_response`."""
    return normalize_response(tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False))


@dataclass
class Rollout:
    """N samples per prompt, prompt-major (prompt 0's samples first).

    response_ids end with the EOS token when the sample finished, and are cut at `max_new_tokens` (no EOS,
    `truncated`) otherwise; `texts` are the decoded responses (`decode_response`).
    """

    prompt_index: list[int]
    response_ids: list[list[int]]
    truncated: list[bool]
    texts: list[str]

    @property
    def generated_tokens(self) -> int:
        return sum(map(len, self.response_ids))


class RolloutEngine(Protocol):
    """What the trainer and the evaluator need from an engine (`hf`: transformers; `vllm`: vLLM)."""

    def generate(self, model, prompts: list[list[int]], n: int, temperature: float, max_new_tokens: int,
                 top_p: float = 1.0, seeds: list[int] | None = None) -> Rollout:
        """`n` samples per prompt (token ids in, prompt-major `Rollout` out); greedy at temperature 0; sample
        j of prompt i drawn from seeds[i] (from torch's RNG when `seeds` is None)."""

    def update_weights(self, model) -> None:
        """Make the engine generate from `model`'s current weights."""

    def close(self) -> None:
        """Release what the engine holds (a vLLM engine's memory)."""
