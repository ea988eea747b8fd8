"""Rollout engines: `generate(model, prompts, n, ...) -> Rollout`; `hf` (transformers), `vllm` (vLLM, optional)."""

from gadbench.rollout.base import Rollout, RolloutEngine, decode_response
from gadbench.rollout.factory import make_engine

__all__ = ["Rollout", "RolloutEngine", "decode_response", "make_engine"]
