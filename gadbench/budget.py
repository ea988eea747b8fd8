"""What a run spent, counted on every step, and the suite-level check that methods were matched.

FLOPs are the usual estimates: training a model of P parameters on T tokens costs about 6 * P * T
(forward + backward), inference (rollouts, scoring, reference log-probs) about 2 * P * T.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


def train_flops(params: int, tokens: int) -> float:
    return 6.0 * params * tokens


def inference_flops(params: int, tokens: int) -> float:
    return 2.0 * params * tokens


@dataclass
class Spend:
    steps: int = 0
    prompts: int = 0
    teacher_responses: int = 0
    rollouts: int = 0
    generated_tokens: int = 0
    g_trained_tokens: int = 0
    d_trained_tokens: int = 0
    g_optimizer_steps: int = 0
    d_optimizer_steps: int = 0
    flops: float = 0.0
    wall_s: float = 0.0

    def add(self, other: Spend) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


class Meter:
    """Totals and per-stage sums of `Spend`, restorable from a checkpoint."""

    def __init__(self):
        self.totals = Spend()
        self.per_stage: dict[str, Spend] = {}

    def record(self, stage: str, spend: Spend) -> None:
        self.totals.add(spend)
        self.per_stage.setdefault(stage, Spend()).add(spend)

    def state(self) -> dict:
        return {"totals": asdict(self.totals), "per_stage": {k: asdict(v) for k, v in self.per_stage.items()}}

    @classmethod
    def from_state(cls, state: dict) -> Meter:
        m = cls()
        m.totals = Spend(**state["totals"])
        m.per_stage = {k: Spend(**v) for k, v in state["per_stage"].items()}
        return m


def check_matched(budgets: dict[str, dict], match: str, tolerance: float) -> dict[str, dict]:
    """Per run (`budgets`: run -> budget.json): {match, tolerance, ratio, within[, extra_d_fit_steps]}. The
    reference is the largest spend among the runs.

    `steps` compares training steps (each step sees one batch of prompts, whatever it updates), except the
    off-policy baseline's D-fit stage: the paper trains that D for two extra epochs on top of the schedule,
    so those steps are reported (`extra_d_fit_steps`) and not matched. `flops` compares estimated FLOPs,
    everything included. A run is within budget when |ratio - 1| <= tolerance.
    """
    def extra(b: dict) -> int:
        return int(b.get("per_stage", {}).get("d-fit", {}).get("steps", 0)) if match == "steps" else 0

    def amount(b: dict) -> float:
        return b["totals"]["flops"] if match == "flops" else b["totals"]["steps"] - extra(b)

    ref = max((amount(b) for b in budgets.values()), default=0.0) or 1.0
    out = {}
    for run, b in budgets.items():
        ratio = amount(b) / ref
        out[run] = {"match": match, "tolerance": tolerance, "ratio": round(ratio, 4), "within": abs(ratio - 1) <= tolerance}
        if extra(b):
            out[run]["extra_d_fit_steps"] = extra(b)
    return out


# ------------------------------------------------------------------------------------------- estimates


def estimate_params(model) -> int:
    """Parameters of a student without loading it: the world's sizes, a local config.json, or the size in
    a hub id's name (e.g. `Qwen2.5-7B-Instruct` -> 7e9)."""
    import json
    import re
    from pathlib import Path

    path = model.path
    if path.startswith("world:"):
        from gadbench.worlds.student import SIZES
        from gadbench.worlds.synthetic import vocabulary

        s = SIZES[path.split(":", 1)[1]]
        h, L, i, v = s["hidden_size"], s["num_hidden_layers"], s["intermediate_size"], len(vocabulary()) + 6
        return v * h + L * (4 * h * h + 3 * h * i)
    cfg = Path(path) / "config.json"
    if cfg.exists():
        c = json.loads(cfg.read_text())
        h, L = c.get("hidden_size", 0), c.get("num_hidden_layers", 0)
        return c.get("vocab_size", 0) * h + L * (4 * h * h + 3 * h * c.get("intermediate_size", 4 * h))
    m = re.search(r"(\d+(?:\.\d+)?)\s*([BM])\b", path.replace("-", " "), re.IGNORECASE)
    if m:
        return int(float(m.group(1)) * (1e9 if m.group(2).upper() == "B" else 1e6))
    return 0
