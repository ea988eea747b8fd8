"""Supervised fine-tuning loss on response tokens only (SeqKD and the generator warmup)."""

from __future__ import annotations

import torch


def sft_loss(logp: torch.Tensor, mask: torch.Tensor, num_tokens: float | None = None) -> torch.Tensor:
    """Token-mean cross-entropy: sum_t mask_t * -log p(target_t) / N.

    logp: [B, T] log-probabilities of the target tokens (gadbench.sequences.token_logprobs); mask: [B, T],
    1 on response tokens (prompt and padding are 0). N = `num_tokens` or mask.sum().
    """
    mask = mask.to(logp.dtype)
    n = mask.sum().clamp(min=1) if num_tokens is None else num_tokens
    return -(logp * mask).sum() / n
