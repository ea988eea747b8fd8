"""Rollout engines: `generate(model, prompts, n, ...) -> Rollout`; `hf` (default) and `vllm` (optional extra)."""

from gadbench.rollout.base import Rollout, make_engine

__all__ = ["Rollout", "make_engine"]
