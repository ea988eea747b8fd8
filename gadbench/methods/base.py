"""The method and stage records, and the registry every part of gadbench reads methods from.

A `Method` lists its stages (with their lengths), says whether it has a discriminator, checks its switches, and
names itself for reports (`Identity`, written into each run's summary.json so the report infers nothing). A
`Stage` holds the function one step of it runs, the learning rate G trains with, whether it needs a frozen
reference copy of G, and what a step is expected to cost (the dry run's plan and FLOP matching add these up).
The trainer, the plan, the runner and the report read these records and nothing else about a method.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass

from gadbench.config import ConfigError, MethodConfig, ModelConfig, RunSpec
from gadbench.methods.cost import add, zero

StepFn = Callable[..., tuple]  # (ctx, batch, step, step_in_stage) -> (metrics, Spend)
Estimate = Callable[..., dict]  # (spec, params, d_params, step_in_stage) -> expected spend of one step


@dataclass(frozen=True)
class Stage:
    name: str
    step: StepFn
    g_lr: str | None  # the TrainConfig field of G's learning rate in this stage; None: G does not train
    reference: bool  # a frozen copy of G as the stage starts, for the KL term (when kl_beta > 0)
    estimate: Estimate


@dataclass(frozen=True)
class PlannedStage:
    stage: Stage
    steps: int

    @property
    def name(self) -> str:
        return self.stage.name


@dataclass(frozen=True)
class Identity:
    """What a run is in reports. `key` matches baselines/paper.json (`gad`, `gad:d_loss=ce`, ...); `family` is the
    base method the main table and findings compare (seqkd, gad); `label` is the row's name; `group` is None for
    a main-table method, else the ablation it belongs to (warmup, discriminator loss, ...)."""

    key: str
    family: str
    label: str
    group: str | None = None

    def to_json(self, description: str = "") -> dict:
        return {**asdict(self), "description": description}


@dataclass(frozen=True)
class Method:
    kind: str
    stages: Callable[[RunSpec, int], list[tuple[Stage, int]]]  # (spec, G's steps) -> [(stage, its steps)]
    uses_d: Callable[[MethodConfig], bool]
    identity: Callable[[MethodConfig, ModelConfig], Identity]  # (its switches, the student) -> report identity
    check: Callable[[MethodConfig], str | None] = lambda m: None  # what is wrong with its switches, or None
    fixed_reward: Callable[[MethodConfig], bool] = lambda m: False  # GRPO on `method.reward` instead of a D


METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Add `method` to the registry under its kind; a kind registers once."""
    if method.kind in METHODS:
        raise ValueError(f"method kind {method.kind!r} is registered twice")
    METHODS[method.kind] = method
    return method


def method_of(spec: RunSpec) -> Method:
    try:
        return METHODS[spec.method.kind]
    except KeyError:
        raise ConfigError(f"method `{spec.method_name}`: kind `{spec.method.kind}` is not a method; use one of "
                          f"{', '.join(METHODS)}.") from None


def stage_plan(spec: RunSpec, steps: int | None = None) -> list[PlannedStage]:
    """The stages of a run with their lengths (stages of length 0 dropped); `steps` overrides train.steps
    (FLOP-matched budgets). `steps` counts G's training steps; a stage in which G does not train (d-fit)
    comes on top."""
    total = steps or spec.train.steps
    return [PlannedStage(s, n) for s, n in method_of(spec).stages(spec, total) if n > 0]


def eval_steps(spec: RunSpec, plan: list[PlannedStage]) -> list[int]:
    """The steps a run evaluates (the trainer and the plan's judge cost read this): step 0 (the `before` row),
    the last step, and from `eval.start` on every `eval.every` steps and each stage end."""
    total = sum(s.steps for s in plan)
    ends = set(itertools.accumulate(s.steps for s in plan))
    e = spec.eval
    return [0] + [k for k in range(1, total + 1) if k == total or (k >= e.start and (k % e.every == 0 or k in ends))]


def uses_discriminator(spec: RunSpec) -> bool:
    return method_of(spec).uses_d(spec.method)


def identity_of(spec: RunSpec) -> Identity:
    return method_of(spec).identity(spec.method, spec.student)


def estimate_run(spec: RunSpec, plan: list[PlannedStage], params: int, d_params: int) -> dict:
    """Expected spend of a stage plan: the sum of its stages' per-step estimates, and its steps."""
    total = {**zero(), "steps": 0}
    for planned in plan:
        for k in range(planned.steps):
            add(total, **planned.stage.estimate(spec, params, d_params, k))
        total["steps"] += planned.steps
    return total
