"""Estimated API cost: a small table of list prices in USD per million tokens (input, output).

Prices change; the table is a convenience for estimates. Pass `price_per_mtok` to ChatClient to override.
"""

from __future__ import annotations

# OpenAI list prices (standard tier) as published in 2025; keys are model-name prefixes.
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4": (30.00, 60.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
}


def price_for(model: str) -> tuple[float, float] | None:
    """The price of the longest table prefix of `model` (so 'gpt-4o-mini-2024-07-18' -> gpt-4o-mini), or None."""
    matches = [p for p in PRICES_PER_MTOK if model == p or model.startswith(p + "-")]
    return PRICES_PER_MTOK[max(matches, key=len)] if matches else None


def resolve_price(model: str, per_mtok: tuple[float, ...] | None = None) -> tuple[float, float] | None:
    """`per_mtok` (input, output) when given, else the table price of `model`, else None (unknown)."""
    return (float(per_mtok[0]), float(per_mtok[1])) if per_mtok else price_for(model)


def cost_usd(prompt_tokens: int, completion_tokens: int, price: tuple[float, float] | None) -> float | None:
    if price is None:
        return None
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6
