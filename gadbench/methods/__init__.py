"""Methods, each defined in one place: a `Method` record lists its stages, and a `Stage` record says what one
step of it runs, which learning rate G trains with, whether it needs a frozen reference copy of G, and
what a step is expected to cost (the dry run's plan and FLOP matching read it). The trainer, the dry run
and the runner read these records and nothing else about a method.

    seqkd           sft x steps
    gad             warmup x warmup_steps, then adversarial (online D; D frozen with
                    discriminator: frozen-after-warmup; a fixed reward with discriminator: none)
    gad-offpolicy   the paper's off-policy discriminator (Fig. 6): sft x warmup_steps, then D alone against
                    the frozen SeqKD student x offpolicy_d_steps, then adversarial against that frozen D

The paper's ablations are switches on `gad` (gadbench.config.MethodConfig); a new variant with a new stage
is one more `Method` (and `Stage`) here plus a YAML entry (docs/architecture.md). This module imports no
torch: step functions live in gadbench.methods.steps and are looked up by name when a step runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from gadbench.budget import inference_flops, train_flops

Estimate = Callable[..., dict]  # (spec, params, d_params, step_in_stage) -> expected spend of one step


@dataclass(frozen=True)
class Stage:
    name: str
    step: str  # a function of gadbench.methods.steps: (ctx, batch, step, step_in_stage) -> (metrics, Spend)
    g_lr: str | None  # the TrainConfig field of G's learning rate in this stage; None: G does not train
    reference: bool  # a frozen copy of G as the stage starts, for the KL term (when kl_beta > 0)
    estimate: Estimate

    def run(self):
        return getattr(importlib.import_module("gadbench.methods.steps"), self.step)


@dataclass(frozen=True)
class PlannedStage:
    stage: Stage
    steps: int

    @property
    def name(self) -> str:
        return self.stage.name


@dataclass(frozen=True)
class Method:
    kind: str
    stages: Callable  # (spec, total steps) -> [(Stage, steps)]
    uses_d: Callable  # (MethodConfig) -> bool
    check: Callable = lambda m: None  # (MethodConfig) -> None, or what is wrong with its switches


# ------------------------------------------------------------------------------------ cost estimates


def _shape(spec) -> tuple[int, int, int, int]:
    """(batch, group, tokens per sequence, tokens per response) under the budget's assumed lengths."""
    t, b = spec.train, spec.budget
    response = min(b.assumed_response_tokens, t.max_response_tokens)
    return t.batch_size, t.group_size, b.assumed_prompt_tokens + response, response


def _zero() -> dict:
    return {"generated_tokens": 0, "g_trained_tokens": 0, "d_trained_tokens": 0, "flops": 0.0}


def _add(out: dict, **parts) -> dict:
    for k, v in parts.items():
        out[k] += v
    return out


def _sft_cost(spec, p: int, dp: int, k: int, out: dict | None = None) -> dict:
    B, _, seq, _ = _shape(spec)
    return _add(out or _zero(), g_trained_tokens=B * seq, flops=train_flops(p, B * seq))


def _rollout_cost(spec, p: int, out: dict) -> dict:
    B, N, seq, response = _shape(spec)
    return _add(out, generated_tokens=B * N * response, flops=inference_flops(p, B * N * seq))


def _d_cost(spec, dp: int, update: bool, out: dict) -> dict:
    B, N, seq, _ = _shape(spec)
    tokens = B * (N + 1) * seq
    if update:
        return _add(out, d_trained_tokens=tokens, flops=train_flops(dp, tokens))
    return _add(out, flops=inference_flops(dp, tokens))


def _grpo_cost(spec, p: int, out: dict) -> dict:
    B, N, seq, _ = _shape(spec)
    ref = inference_flops(p, B * N * seq) if spec.train.kl_beta else 0.0
    return _add(out, g_trained_tokens=B * N * seq, flops=train_flops(p, B * N * seq) + ref)


def _warmup_cost(spec, p: int, dp: int, k: int) -> dict:
    m, out = spec.method, _zero()
    d_trains = m.discriminator != "none" and m.discriminator_warmup
    if d_trains:
        _d_cost(spec, dp, True, _rollout_cost(spec, p, out))
    if m.generator_warmup and not (d_trains and k < spec.train.d_only_steps):
        _sft_cost(spec, p, dp, k, out)
    return out


def _d_fit_cost(spec, p: int, dp: int, k: int) -> dict:
    return _d_cost(spec, dp, True, _rollout_cost(spec, p, _zero()))


def _adversarial_cost(update_d: bool) -> Estimate:
    def cost(spec, p: int, dp: int, k: int) -> dict:
        out = _rollout_cost(spec, p, _zero())
        if spec.method.discriminator != "none":
            _d_cost(spec, dp, update_d, out)
        return _grpo_cost(spec, p, out)

    return cost


# ---------------------------------------------------------------------------------------------- stages

SFT = Stage("sft", "sft_step", "lr_sft", False, _sft_cost)
WARMUP = Stage("warmup", "warmup_step", "lr_warmup", False, _warmup_cost)
D_FIT = Stage("d-fit", "d_fit_step", None, False, _d_fit_cost)
ADVERSARIAL = Stage("adversarial", "adversarial_step", "lr_generator", True, _adversarial_cost(update_d=True))
ADVERSARIAL_FROZEN_D = Stage("adversarial", "adversarial_frozen_d_step", "lr_generator", True,
                             _adversarial_cost(update_d=False))


def _gad_stages(spec, steps: int) -> list:
    warm = min(spec.train.warmup_steps, steps)
    online = spec.method.discriminator in ("online", "none")  # `none`: a fixed reward, no D to update
    return [(WARMUP, warm), (ADVERSARIAL if online else ADVERSARIAL_FROZEN_D, steps - warm)]


def _offpolicy_stages(spec, steps: int) -> list:
    warm = min(spec.train.warmup_steps, steps)
    return [(SFT, warm), (D_FIT, spec.train.offpolicy_d_steps), (ADVERSARIAL_FROZEN_D, steps - warm)]


def _offpolicy_check(m) -> str | None:
    if m.discriminator != "online" or not (m.generator_warmup and m.discriminator_warmup):
        return ("kind gad-offpolicy fixes its own schedule (SeqKD, then D alone, then RL against the frozen D); "
                "leave discriminator, generator_warmup and discriminator_warmup at their defaults")
    return None


METHODS = {
    "seqkd": Method("seqkd", lambda spec, steps: [(SFT, steps)], lambda m: False),
    "gad": Method("gad", _gad_stages, lambda m: m.discriminator != "none"),
    "gad-offpolicy": Method("gad-offpolicy", _offpolicy_stages, lambda m: True, _offpolicy_check),
}


def method_of(spec) -> Method:
    return METHODS[spec.method.kind]


def stage_plan(spec, steps: int | None = None) -> list[PlannedStage]:
    """The stages of a run with their lengths (stages of length 0 dropped); `steps` overrides train.steps
    (FLOP-matched budgets). `steps` counts G's training steps; a stage in which G does not train (d-fit)
    comes on top."""
    total = steps or spec.train.steps
    return [PlannedStage(s, n) for s, n in method_of(spec).stages(spec, total) if n > 0]


def uses_discriminator(spec) -> bool:
    return method_of(spec).uses_d(spec.method)


def estimate_run(spec, plan: list[PlannedStage], params: int, d_params: int) -> dict:
    """Expected spend of a stage plan: the sum of its stages' per-step estimates, and its steps."""
    total = {**_zero(), "steps": 0}
    for planned in plan:
        for k in range(planned.steps):
            _add(total, **planned.stage.estimate(spec, params, d_params, k))
        total["steps"] += planned.steps
    return total
