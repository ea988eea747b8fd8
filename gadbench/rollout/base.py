"""The rollout contract shared by engines."""

from __future__ import annotations

from dataclasses import dataclass

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


def make_engine(spec, tokenizer):
    """The rollout engine of a run (`spec.rollout.engine`); vLLM's is sized for the run's longest prompt plus
    response or evaluation answer."""
    r, t = spec.rollout, spec.train
    if r.engine == "hf":
        from gadbench.rollout.hf import HFRolloutEngine

        return HFRolloutEngine(tokenizer, r.batch_size)
    if r.engine == "vllm":
        from gadbench.rollout.vllm import VLLMRolloutEngine

        max_len = t.max_prompt_tokens + max(t.max_response_tokens, spec.eval.max_new_tokens)
        return VLLMRolloutEngine(tokenizer, r, max_len, precision=t.precision, seed=spec.seed)
    raise ValueError(f"unknown rollout engine {r.engine!r}; use `hf` or `vllm`.")
