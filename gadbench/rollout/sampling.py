"""Counter-based sampling: every sequence draws its tokens from its own seed, so a prompt's samples do not
depend on which other prompts share its batch, how rollouts are chunked, or how many processes split the
batch (data-parallel runs reproduce single-process runs).

Token t of the sequence with seed s is the inverse-CDF draw

    y_t = min { v : F(v) >= U * F(V-1) },   F(v) = sum_{w <= v} p(w),   U = hash(s, t) in (0, 1),

with p = softmax(logits / T) in float64 (restricted to the top-p nucleus when top_p < 1), an exact draw
from p that needs one uniform per sequence and step (the Gumbel-max form needs one per vocabulary entry,
ten times slower with a 49k vocabulary).
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


def uniforms(seeds: torch.Tensor, step: int) -> torch.Tensor:
    """U[i] in (0, 1) from (seeds[i], step); float64."""
    x = _mix(_mix(seeds.to(torch.int64) * 1_000_003 + step) * 7919 & _MASK)
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


def draw(scores: torch.Tensor, seeds: torch.Tensor, step: int, temperature: float, top_p: float = 1.0) -> torch.Tensor:
    """The token of each row (the formula in the module docstring): [rows] indices into the vocabulary."""
    # In place where it changes no bit: a decoding step draws over rows x vocabulary float64 values (16 x 49k for
    # SmolLM2), and every fresh buffer of that size costs page faults.
    scaled = scores.to(torch.float64).div_(temperature)
    probs = torch.softmax(scaled, dim=-1)
    if top_p < 1.0:
        probs.masked_fill_(nucleus_mask(scaled, top_p), 0.0)
    cdf = torch.cumsum(probs, dim=-1, out=scaled)
    target = uniforms(seeds.to(scores.device), step)[:, None] * cdf[:, -1:]
    return torch.searchsorted(cdf, target).squeeze(-1).clamp(max=scores.shape[-1] - 1)


class SeededSampler(LogitsProcessor):
    """Turns greedy decoding into seeded sampling: every row's scores become 0 at its drawn token (`draw`)
    and -inf elsewhere, so the greedy step picks the draw.

    `seeds` holds one seed per generated row; `prompt_width` is the (left-padded) prompt length, so the
    token index is input_ids.shape[1] - prompt_width.
    """

    def __init__(self, seeds: torch.Tensor, temperature: float, top_p: float, prompt_width: int):
        self.seeds, self.temperature, self.top_p, self.prompt_width = seeds, temperature, top_p, prompt_width

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        token = draw(scores, self.seeds, input_ids.shape[1] - self.prompt_width, self.temperature, self.top_p)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(-1, token[:, None], 0.0)
