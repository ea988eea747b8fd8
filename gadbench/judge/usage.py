"""Adding up judge usage (the `usage` of a JudgeRun) over judges, datasets and `gadbench eval` passes."""

from __future__ import annotations

_DERIVED = ("cost_usd", "parse_failure_rate")


def add_usage(held: dict, new: dict) -> dict:
    """`held` + `new`: counts summed; cost_usd unknown (None) when either side's is unknown, else the sum;
    parse_failure_rate recomputed as parse_failures / parsed (None when nothing parsed). An empty side is
    no usage at all."""
    if not held or not new:
        return dict(held or new)
    out = {k: (held.get(k) or 0) + (new.get(k) or 0) for k in {*held, *new} if k not in _DERIVED}
    costs = [held.get("cost_usd"), new.get("cost_usd")]
    out["cost_usd"] = None if None in costs else sum(costs)
    out["parse_failure_rate"] = out.get("parse_failures", 0) / out["parsed"] if out.get("parsed") else None
    return out
