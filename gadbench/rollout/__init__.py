"""Rollout engines: `generate(model, prompts, n, ...) -> Rollout`; `hf` (transformers), `vllm` (vLLM, optional)."""

from gadbench.rollout.base import Rollout, make_engine

__all__ = ["Rollout", "make_engine"]
