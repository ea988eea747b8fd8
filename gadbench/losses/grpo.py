"""GRPO: group-normalised advantages and the clipped policy-gradient loss with a k3 KL term."""

from __future__ import annotations

import torch

TIE_TOLERANCE = 1e-6


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-6,
                     tie_tolerance: float = TIE_TOLERANCE) -> torch.Tensor:
    """A_i = (r_i - mean_g(r)) / (std_g(r) + eps) within each group of `group_size` consecutive rewards,
    computed in float64.

    std is the unbiased sample standard deviation (as in verl and TRL). A group is tied, and all its
    advantages are exactly 0, when std_g(r) <= tie_tolerance * max(1, mean_g |r|): equal rewards, or rewards
    that differ by rounding alone (the same text scored at another padding), carry no preference, and
    normalising their differences would turn noise into advantages of order 1.
    """
    if group_size < 2:  # one sample has no group to be compared with: its unbiased std is NaN
        raise ValueError(f"GRPO advantages need groups of 2 or more samples, not {group_size}.")
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}.")
    g = rewards.reshape(-1, group_size).double()
    mean, std = g.mean(dim=1, keepdim=True), g.std(dim=1, keepdim=True)
    tied = std <= tie_tolerance * g.abs().mean(dim=1, keepdim=True).clamp(min=1.0)
    adv = torch.where(tied, torch.zeros_like(g), (g - mean) / (std + eps))
    return adv.view(-1)


KL_CLAMP = 10.0


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's low-variance KL estimator per token, min(exp(ref - logp) - (ref - logp) - 1, 10) (>= 0).

    The clamp at 10 is verl's (`low_var_kl`): a token the reference finds e^10 times likelier than the policy
    (a rare sample) would otherwise dominate the loss; beyond it the term has no gradient.
    """
    d = ref_logp - logp
    return torch.clamp(torch.exp(d) - d - 1, max=KL_CLAMP)


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_ratio: float = 0.2,
    beta: float = 0.001,
    num_tokens: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Token-mean clipped surrogate plus beta * k3 KL to the reference.

        ratio_t = exp(logp_t - old_logp_t)
        pg_t    = -min(ratio_t * A, clip(ratio_t, 1 - eps, 1 + eps) * A)
        loss    = sum_t mask_t * (pg_t + beta * kl3_t) / N

    logp, old_logp, ref_logp, mask: [B, T] (mask 1 on response tokens); advantages: [B] (one per sequence).
    N is `num_tokens` when given (the whole batch's token count, for exact token-mean under micro-batching),
    else mask.sum().
    """
    mask = mask.to(logp.dtype)
    n = mask.sum().clamp(min=1) if num_tokens is None else num_tokens
    ratio = torch.exp(logp - old_logp)
    adv = advantages[:, None].to(logp.dtype)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - clip_ratio, 1 + clip_ratio) * adv
    pg = -torch.minimum(unclipped, clipped)
    per_token = pg
    kl = torch.zeros_like(pg)
    if ref_logp is not None and beta > 0:
        kl = k3_kl(logp, ref_logp)
        per_token = pg + beta * kl
    loss = (per_token * mask).sum() / n
    with torch.no_grad():
        stats = {
            "pg_loss": float((pg * mask).sum() / n),
            "kl": float((kl * mask).sum() / n),
            "clip_frac": float((((ratio - 1).abs() > clip_ratio).to(logp.dtype) * mask).sum() / n),
        }
    return loss, stats
