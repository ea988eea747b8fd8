"""Dataset-level numbers from judgments; invalid judgments are excluded and counted.

- every judge: `score` = mean item score with a bootstrap interval (`gadbench.metrics.summarize`), plus
  `parse_failure_rate` (parse failures / items judged with complete replies; None when there were none);
- gad-paper also: `ratio_of_sums` = 100 x sum(student) / sum(student + reference) over valid items
  (`score` is then the paper's other reading, the mean of per-item ratios);
- pairwise also: `win`, `tie`, `loss` = fractions of valid items (`score` = win rate with ties counted half);
- judged in two orders (pairwise; gad-paper with swap=True): `position_agreement`, the share of valid items
  whose two orders agree, with an interval (`gadbench.judge.agreement.position_agreement`).
"""

from __future__ import annotations

from collections.abc import Sequence

from gadbench.judge.agreement import position_agreement
from gadbench.judge.protocols import PARSE_FAILURE
from gadbench.judge.types import Judgment
from gadbench.metrics import ratio_of_sums, summarize


def aggregate(judgments: Sequence[Judgment], judge_name: str, n_resamples: int = 2000, seed: int = 0) -> dict:
    valid = [j for j in judgments if j.valid]
    failures = sum(j.details.get("error") == PARSE_FAILURE for j in judgments)
    parsed = len(valid) + failures
    out = {
        "score": summarize([j.score if j.valid else None for j in judgments], n_resamples, seed),
        "parse_failure_rate": failures / parsed if parsed else None,
    }
    if judge_name == "gad-paper":
        student = [j.details["student"] if j.valid else None for j in judgments]
        total = [j.details["student"] + j.details["reference"] if j.valid else None for j in judgments]
        out["ratio_of_sums"] = ratio_of_sums([None if s is None else 100 * s for s in student], total, n_resamples, seed)
    if judge_name == "pairwise":
        for outcome in ("win", "tie", "loss"):
            out[outcome] = sum(j.details["outcome"] == outcome for j in valid) / len(valid) if valid else None
    if any("orders_agree" in j.details for j in valid):
        out["position_agreement"] = position_agreement([j.to_json() for j in judgments], n_resamples, seed)
    return out
