"""The rollout engine a run asks for (`rollout.engine`)."""

from __future__ import annotations

from gadbench.rollout.base import RolloutEngine


def make_engine(spec, tokenizer) -> RolloutEngine:
    """The rollout engine of a run (`spec.rollout.engine`); vLLM's is sized for the run's longest prompt plus
    response or evaluation answer."""
    r, t = spec.rollout, spec.train
    if r.engine == "hf":
        import torch

        from gadbench.rollout.hf import HFRolloutEngine

        return HFRolloutEngine(tokenizer, r.batch_size, torch.bfloat16 if t.precision == "bf16" else None, r.hf_fast)
    if r.engine == "vllm":
        from gadbench.rollout.vllm import VLLMRolloutEngine

        max_len = t.max_prompt_tokens + max(t.max_response_tokens, spec.eval.max_new_tokens)
        return VLLMRolloutEngine(tokenizer, r, max_len, precision=t.precision, seed=spec.seed)
    raise ValueError(f"unknown rollout engine {r.engine!r}; use `hf` or `vllm`.")
