"""Counter-based sampling (gadbench.rollout.sampling): exact draws from softmax(logits / T), the nucleus
respected, and each row's draw a function of its own seed, step and logits only."""

from __future__ import annotations

import math

import pytest
import torch

from gadbench.rollout.sampling import SeededSampler, draw, sequence_seed, uniforms

LOGITS = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0])


def _frequencies(logits: torch.Tensor, temperature: float, top_p: float, rows: int = 40_000) -> torch.Tensor:
    seeds = torch.arange(rows)
    tokens = draw(logits.expand(rows, -1), seeds, step=3, temperature=temperature, top_p=top_p)
    return torch.bincount(tokens, minlength=len(logits)).double() / rows


@pytest.mark.parametrize("temperature", [0.8, 1.0, 2.0])
def test_draws_follow_softmax_of_scaled_logits(temperature):
    p = torch.softmax(LOGITS.double() / temperature, dim=-1)
    f = _frequencies(LOGITS, temperature, 1.0)
    sigma = (p * (1 - p) / 40_000).sqrt()
    assert ((f - p).abs() <= 4 * sigma + 1e-12).all(), (f.tolist(), p.tolist())


def test_top_p_keeps_the_nucleus_and_renormalises():
    p = torch.softmax(LOGITS.double() / 0.8, dim=-1)  # 0.599, 0.171, 0.094, 0.051, 0.014 (rounded)
    # top_p 0.75: the smallest set reaching 0.75 is tokens {0, 1}; renormalised 0.778, 0.222
    f = _frequencies(LOGITS, 0.8, 0.75)
    assert f[2:].sum() == 0.0
    keep = p[:2] / p[:2].sum()
    assert (f[:2] - keep).abs().max() < 4 * math.sqrt(0.25 / 40_000), (f.tolist(), keep.tolist())


def test_a_rows_draw_depends_on_its_seed_step_and_logits_only():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(6, 50, generator=g)
    seeds = torch.tensor([sequence_seed(7, i) for i in range(6)])
    together = draw(scores, seeds, step=4, temperature=0.8)
    alone = torch.cat([draw(scores[i : i + 1], seeds[i : i + 1], 4, 0.8) for i in range(6)])
    shuffled = draw(scores.flip(0), seeds.flip(0), 4, 0.8).flip(0)
    assert torch.equal(together, alone) and torch.equal(together, shuffled)
    assert not torch.equal(draw(scores, seeds, 5, 0.8), together) or not torch.equal(
        draw(scores, seeds, 6, 0.8), together)  # another step, other draws
    u = uniforms(seeds, 4)
    assert ((u > 0) & (u < 1)).all() and len(set(u.tolist())) == 6


def test_the_logits_processor_makes_greedy_pick_the_draw():
    scores = torch.randn(3, 11)
    seeds = torch.tensor([1, 2, 3])
    sampler = SeededSampler(seeds, 0.8, 1.0, prompt_width=5)
    ids = torch.zeros(3, 9, dtype=torch.long)  # token index 9 - 5 = 4
    out = sampler(ids, scores)
    assert torch.equal(out.argmax(dim=-1), draw(scores, seeds, 4, 0.8))
    assert (out == 0).sum() == 3 and torch.isinf(out).sum() == 3 * 10


@pytest.mark.parametrize(("temperature", "top_p"), [(0.8, 1.0), (1.0, 0.9), (0.3, 1.0), (1.5, 0.5)])
def test_draw_is_the_formula_bit_for_bit(temperature, top_p):
    """`draw` against the module docstring's formula written out plainly: the first v with F(v) >= U * F(V-1)."""
    g = torch.Generator().manual_seed(3)
    scores = torch.randn(64, 1000, generator=g) * 4
    seeds = torch.randint(0, 2**31 - 1, (64,), generator=g)
    for step in (0, 7, 100):
        scaled = scores.double() / temperature
        p = torch.softmax(scaled, dim=-1)
        order = p.argsort(dim=-1, descending=True)
        sorted_p = p.gather(-1, order)
        outside = torch.zeros_like(p, dtype=torch.bool).scatter(-1, order, sorted_p.cumsum(-1) - sorted_p >= top_p)
        cdf = p.masked_fill(outside, 0.0).cumsum(dim=-1)
        want = (cdf >= uniforms(seeds, step)[:, None] * cdf[:, -1:]).int().argmax(dim=-1)
        got = draw(scores, seeds, step, temperature, top_p)
        assert torch.equal(got, want), (got != want).nonzero().tolist()
