"""Methods as lists of stages. SeqKD: one `sft` stage. GAD: `warmup` then `adversarial`; its ablations are
switches on the method config (see `gadbench.config.MethodConfig` and docs/methods.md)."""

from __future__ import annotations

from dataclasses import dataclass

from gadbench.config import RunSpec


@dataclass(frozen=True)
class StagePlan:
    name: str  # sft | warmup | adversarial
    steps: int


def stage_plan(spec: RunSpec, steps: int | None = None) -> list[StagePlan]:
    """The stages of a run; `steps` overrides train.steps (FLOP-matched budgets)."""
    total = steps or spec.train.steps
    if spec.method.kind == "seqkd":
        return [StagePlan("sft", total)]
    warm = min(spec.train.warmup_steps, total)
    plan = [StagePlan("warmup", warm), StagePlan("adversarial", total - warm)]
    return [s for s in plan if s.steps > 0]


def uses_discriminator(spec: RunSpec) -> bool:
    return spec.method.kind == "gad" and spec.method.discriminator != "none"
