"""Counter-based sampling: every sequence draws its tokens from its own seed, so a prompt's samples do not
depend on which other prompts share its batch, how rollouts are chunked, or how many processes split the
batch (data-parallel runs reproduce single-process runs).

Token t of the sequence with seed s is the Gumbel-max sample

    y_t = argmax_v ( logits_v / T + g(s, t, v) ),   g = -log(-log(U)),   U = hash(s, t, v) in (0, 1),

which is an exact draw from softmax(logits / T) (restricted to the top-p nucleus when top_p < 1).
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor

_MASK = (1 << 31) - 1
_MULTIPLIERS = (0x5BD1E995 & _MASK, 0x27D4EB2F & _MASK, 0x165667B1 & _MASK)


def _mix(x: torch.Tensor) -> torch.Tensor:
    """A 31-bit integer hash (xorshift-multiply rounds); products stay below 2**62, so no int64 overflow."""
    for m in _MULTIPLIERS:
        x = (x ^ (x >> 15)) & _MASK
        x = (x * m) & _MASK
    return x ^ (x >> 13)


def uniforms(seeds: torch.Tensor, step: int, vocab: int) -> torch.Tensor:
    """U[i, v] in (0, 1) from (seeds[i], step, v); float64."""
    v = torch.arange(vocab, device=seeds.device, dtype=torch.int64)
    x = _mix(seeds[:, None] * 1_000_003 + step)
    x = _mix((x * 7919 + v[None, :]) & _MASK)
    return (x.double() + 0.5) / float(1 << 31)


def sequence_seed(*parts: int) -> int:
    """A 31-bit seed from integers (run seed, step, prompt index, sample index, ...)."""
    x = torch.tensor([0], dtype=torch.int64)
    for p in parts:
        x = _mix((x * 1_000_003 + int(p)) & _MASK)
    return int(x)


def nucleus_mask(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """True for tokens outside the smallest set whose probability mass reaches top_p."""
    if top_p >= 1.0:
        return torch.zeros_like(scores, dtype=torch.bool)
    probs, order = torch.softmax(scores, dim=-1).sort(dim=-1, descending=True)
    outside_sorted = (probs.cumsum(dim=-1) - probs) >= top_p
    return torch.zeros_like(outside_sorted).scatter(-1, order, outside_sorted)


class GumbelSampler(LogitsProcessor):
    """Turns greedy decoding into seeded sampling: scores / T + Gumbel noise (see the module docstring).

    `seeds` holds one seed per generated row; `prompt_width` is the (left-padded) prompt length, so the
    token index is input_ids.shape[1] - prompt_width.
    """

    def __init__(self, seeds: torch.Tensor, temperature: float, top_p: float, prompt_width: int):
        self.seeds, self.temperature, self.top_p, self.prompt_width = seeds, temperature, top_p, prompt_width

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_width
        scaled = scores.float() / self.temperature
        u = uniforms(self.seeds.to(scores.device), step, scores.shape[-1])
        noisy = scaled.double() - torch.log(-torch.log(u))
        noisy = noisy.masked_fill(nucleus_mask(scaled, self.top_p), float("-inf"))
        return noisy.to(scores.dtype) if scores.dtype == torch.float64 else noisy.float()
