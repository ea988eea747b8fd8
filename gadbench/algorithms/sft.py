"""Supervised fine-tuning loss on response tokens only (SeqKD and the generator warmup)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sft_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, num_tokens: float | None = None) -> torch.Tensor:
    """Token-mean cross-entropy: sum_t mask_t * -log p(target_t) / N.

    logits: [B, T, V] predicting `targets` [B, T] at the same positions (already shifted by the caller);
    mask: [B, T], 1 on response tokens (prompt and padding are 0). N = `num_tokens` or mask.sum().
    """
    mask = mask.to(logits.dtype)
    n = mask.sum().clamp(min=1) if num_tokens is None else num_tokens
    nll = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
    return (nll.view_as(mask) * mask).sum() / n
