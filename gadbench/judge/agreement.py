"""How far judgments agree: the two orders of one judge (position agreement), and two judges on the same items.

- `position_agreement(judgments)`: the share of valid judgments judged in both orders whose two orders gave
  the same outcome (details["orders_agree"], set by the pairwise protocol and by gad-paper with swap=True),
  with a bootstrap interval (`gadbench.metrics.summarize`). A judge free of position bias agrees with itself
  on every item; a judge that always prefers the first answer agrees on none, except its ties.
- `judge_agreement(a, b, center)`: for two judges' scores of the same items (item id -> score), over the ids
  valid in both: Spearman's rho and Kendall's tau-b (scipy.stats, tau-b corrects for ties), and with
  `center` (50 for pairwise and gad-paper, where 50 is parity with the opponent) the agreement rate, the
  share of items on which both put the student on the same side of `center` (above, equal, below). For
  pairwise judges (scores 100 / 50 / 0) that is the share of items with the same verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from gadbench.metrics import summarize


def item_scores(rows: Sequence[dict], judge: str) -> dict[str, float | None]:
    """Item id -> score of `judge` in stored eval rows (row["judgments"][judge]); None where it is invalid."""
    out = {}
    for r in rows:
        j = (r.get("judgments") or {}).get(judge)
        if j is not None:
            out[str(r["id"])] = j.get("score") if j.get("valid", True) else None
    return out


def position_agreement(judgments: Sequence[dict], n_resamples: int = 2000, seed: int = 0) -> dict:
    """Share (0-1) of valid two-order judgments (stored dicts, `Judgment.to_json()`) whose orders agree:
    `summarize` keys (mean, ci_low, ci_high, n_valid = items judged in two orders, n_total = all given)."""
    values = [float(j["details"]["orders_agree"]) if j.get("valid") and "orders_agree" in j.get("details", {})
              else None for j in judgments]
    return summarize(values, n_resamples, seed)


def _ok(v: float | None) -> bool:
    return v is not None and not math.isnan(v)


def judge_agreement(a: Mapping[str, float | None], b: Mapping[str, float | None],
                    center: float | None = None) -> dict:
    """spearman, kendall (None with fewer than 2 shared items or a constant side), agreement (None without
    `center`) and n, the number of item ids valid under both judges."""
    from scipy import stats  # here, not at module level: `import gadbench.judge` stays light

    ids = sorted(k for k in a.keys() & b.keys() if _ok(a[k]) and _ok(b[k]))
    x, y = [float(a[k]) for k in ids], [float(b[k]) for k in ids]
    out = {"spearman": None, "kendall": None, "agreement": None, "n": len(ids)}
    if len(ids) >= 2 and len(set(x)) > 1 and len(set(y)) > 1:
        out["spearman"] = float(stats.spearmanr(x, y).statistic)
        out["kendall"] = float(stats.kendalltau(x, y).statistic)
    if center is not None and ids:
        side = [((u > center) - (u < center), (v > center) - (v < center)) for u, v in zip(x, y, strict=True)]
        out["agreement"] = sum(s == t for s, t in side) / len(ids)
    return out
