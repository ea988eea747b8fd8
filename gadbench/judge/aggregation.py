"""Dataset-level statistics of stored judgments (`to_json()` dicts), as metrics.json stores them: each metric a
judge's record declares (`judge_statistics`), and the extra statistics its record names:

- `ratio_of_sums` (gad-paper): 100 x sum(student) / sum(student + reference) over valid items, the paper's other
  reading of its score (`score` is the mean of per-item ratios), with an interval;
- `win`, `tie`, `loss` (pairwise): fractions of valid items;
- `position_agreement` (judged in two orders): the share of valid items whose two orders agree, with an
  interval (`gadbench.judge.agreement.position_agreement`); absent when no item was judged in two orders.
"""

from __future__ import annotations

from collections.abc import Sequence

from gadbench.judge.agreement import position_agreement
from gadbench.metrics import ratio_of_sums, summarize


def ratio_of_sums_summary(jsons: Sequence[dict], n_resamples: int) -> dict:
    details = [j.get("details") or {} if j.get("valid") else None for j in jsons]
    student = [None if d is None else 100 * d["student"] for d in details]
    total = [None if d is None else d["student"] + d["reference"] for d in details]
    return {"ratio_of_sums": ratio_of_sums(student, total, n_resamples)}


def outcome_shares(jsons: Sequence[dict]) -> dict:
    valid = [j for j in jsons if j.get("valid")]
    return {o: sum(j["details"]["outcome"] == o for j in valid) / len(valid) if valid else None
            for o in ("win", "tie", "loss")}


def position_summary(jsons: Sequence[dict], n_resamples: int) -> dict:
    if not any(j.get("valid") and "orders_agree" in (j.get("details") or {}) for j in jsons):
        return {}
    return {"position_agreement": position_agreement(list(jsons), n_resamples)}


def judge_statistics(record, judgments: list[dict], n_resamples: int) -> dict:
    """`<judge>/<metric>` for each metric the record declares (a `/*` family: each key of it the judgments
    hold), an invalid judgment counting as missing; then the record's extra statistics."""
    valid = [j for j in judgments if j.get("valid", True)]
    keys = []
    for key in record.metrics:
        if key.endswith("/*"):
            keys += sorted({k for j in valid for k in j if k.startswith(key[:-1])})
        else:
            keys.append(key)
    stats = {f"{record.name}/{k}": summarize([j.get(k) if j.get("valid", True) else None for j in judgments],
                                             n_resamples) for k in keys}
    if record.summary is not None:
        stats.update({f"{record.name}/{k}": v for k, v in record.summary(judgments, n_resamples).items()})
    return stats
