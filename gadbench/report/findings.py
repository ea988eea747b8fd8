"""Does each paper finding reproduce? A verdict per finding for suites with the synthetic world's gold metrics.

| finding | test |
|---|---|
| GAD beats SeqKD (in distribution) | mean `gold/teacher_logprob` on world-id: GAD > SeqKD |
| GAD generalises better | the same on world-ood |
| SeqKD covers modes, GAD seeks them | entropy of the style shares (sampled answers if any): GAD < SeqKD |
| a frozen D gets exploited | over the frozen-D run's adversarial steps, D's reward rises while the rollouts' gold log-probability falls |

"yes" needs the difference's sign only; the evidence adds a paired bootstrap interval of the per-prompt
difference (first seed of each method, selected checkpoints) when the per-item results are stored. Means are
over seeds when there are several.
"""

from __future__ import annotations

import math

import numpy as np

from gadbench.metrics import paired_bootstrap
from gadbench.report.cells import eval_of
from gadbench.report.load import Run, Suite
from gadbench.report.typeset import Table

STYLE_PREFIXES = ("gold-sampled/style_share/", "gold/style_share/")  # sampled answers first, else greedy


def _mean(runs: list[Run], dataset: str, metric: str) -> float | None:
    values = [(eval_of(r, dataset).get(metric) or {}).get("mean") for r in runs]
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _style_entropy(runs: list[Run], dataset: str) -> float | None:
    """Entropy (nats) of the mean style shares, from sampled answers when the runs have them."""
    for prefix in STYLE_PREFIXES:
        shares = {}
        for r in runs:
            for k, s in eval_of(r, dataset).items():
                if k.startswith(prefix) and (s or {}).get("mean") is not None:
                    shares.setdefault(k, []).append(s["mean"])
        if shares:
            p = [float(np.mean(v)) for v in shares.values()]
            return -sum(x * math.log(x) for x in p if x > 0)
    return None


def _slope(rows: list[dict], key: str) -> float | None:
    pts = [(r["step"], r[key]) for r in rows if r.get("stage") == "adversarial" and r.get(key) is not None]
    if len(pts) < 3:
        return None
    x, y = np.array(pts, dtype=float).T
    return float(np.polyfit(x, y, 1)[0])


def _item_scores(run: Run, dataset: str) -> dict[str, float]:
    step = ((run.summary or {}).get("selection") or {}).get("checkpoint")
    items = (run.evals.get(step) or {}).get(dataset) or []
    out = {}
    for it in items:
        v = ((it.get("judgments") or {}).get("gold") or {}).get("teacher_logprob")
        if v is not None:
            out[str(it["id"])] = v
    return out


def _paired(gad: Run, seqkd: Run, dataset: str) -> str:
    a, b = _item_scores(gad, dataset), _item_scores(seqkd, dataset)
    if not a.keys() & b.keys():
        return ""
    r = paired_bootstrap(a, b)
    return f"; paired difference {r['diff']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}], n={r['n']}"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "no")


def findings_table(suite: Suite, base=None) -> Table | str:
    by_method: dict[str, list[Run]] = {}
    for r in suite.runs:
        by_method.setdefault(r.method, []).append(r)
    gad, seqkd = by_method.get("gad", []), by_method.get("seqkd", [])
    if not gad or not seqkd or _mean(gad, "world-id", "gold/teacher_logprob") is None:
        return "Findings table skipped: it needs `gad` and `seqkd` runs with the synthetic world's gold metrics."
    rows = []
    for dataset, finding in (("world-id", "GAD beats SeqKD (in distribution)"), ("world-ood", "GAD generalises better")):
        g, s = _mean(gad, dataset, "gold/teacher_logprob"), _mean(seqkd, dataset, "gold/teacher_logprob")
        ok = None if g is None or s is None else g > s
        evidence = f"gold/teacher_logprob on {dataset}: GAD {_fmt(g)} vs SeqKD {_fmt(s)}" + _paired(gad[0], seqkd[0], dataset)
        rows.append([finding, evidence, _verdict(ok)])
    hg, hs = _style_entropy(gad, "world-id"), _style_entropy(seqkd, "world-id")
    ok = None if hg is None or hs is None else hg < hs
    rows.append(["SeqKD covers modes, GAD seeks them",
                 f"entropy of answer styles on world-id: GAD {_fmt(hg)} vs SeqKD {_fmt(hs)} nats", _verdict(ok)])
    frozen = [r for r in suite.runs if r.variant.group == "frozen discriminator"]
    if frozen:
        reward = [_slope(r.metrics, "reward_mean") for r in frozen]
        gold = [_slope(r.metrics, "gold/teacher_logprob") for r in frozen]
        known = [(a, b) for a, b in zip(reward, gold, strict=True) if a is not None and b is not None]
        ok = None if not known else all(a > 0 and b < 0 for a, b in known)
        evidence = "; ".join(f"reward slope {a:+.3g}/step, gold slope {b:+.3g}/step" for a, b in known) or "no curves"
        rows.append(["A frozen discriminator gets exploited", evidence, _verdict(ok)])
    return Table(
        name="findings",
        title="Paper findings in this suite",
        header=["Finding", "Evidence", "Reproduced"],
        rows=rows,
        note="Verdicts compare means only; see the main table's intervals (and more seeds) before drawing conclusions.",
    )


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"
