"""The paper's off-policy discriminator (Fig. 6): SeqKD for `warmup_steps`, then D alone against the frozen SeqKD
student for `offpolicy_d_steps` (G does not train: these steps come on top of G's), then GRPO against that D,
frozen."""

from __future__ import annotations

from gadbench.budget import Spend
from gadbench.methods.base import Identity, Method, Stage, register_method
from gadbench.methods.context import Context
from gadbench.methods.cost import d_fit_cost
from gadbench.methods.gad import ADVERSARIAL_FROZEN_D, rollout_and_d_update
from gadbench.methods.rewards import reward_problem
from gadbench.methods.seqkd import SFT


def d_fit_step(ctx: Context, batch: list, step: int, step_in_stage: int) -> tuple[dict, Spend]:
    """D alone against the rollouts of a G that does not train."""
    metrics, spend = rollout_and_d_update(ctx, batch, step)
    spend.prompts = spend.teacher_responses = len(batch)
    return metrics, spend


D_FIT = Stage("d-fit", d_fit_step, None, False, d_fit_cost)


def offpolicy_stages(spec, steps: int) -> list:
    warm = min(spec.train.warmup_steps, steps)
    return [(SFT, warm), (D_FIT, spec.train.offpolicy_d_steps), (ADVERSARIAL_FROZEN_D, steps - warm)]


def _check(m) -> str | None:
    if m.discriminator != "online" or not (m.generator_warmup and m.discriminator_warmup):
        return ("kind gad-offpolicy fixes its own schedule (SeqKD, then D alone, then RL against the frozen D); "
                "leave discriminator, generator_warmup and discriminator_warmup at their defaults")
    if m.reward != "discriminator":
        return f"reward `{m.reward}` replaces the discriminator, which kind gad-offpolicy trains; remove it"
    return next((f"shaping: {p}" for name in m.shaping if (p := reward_problem(name))), None)


OFFPOLICY = register_method(Method(
    "gad-offpolicy",
    stages=offpolicy_stages,
    uses_d=lambda m: True,
    identity=lambda m, student: Identity("gad:offpolicy", "gad", "GAD, off-policy D (paper)", "frozen discriminator"),
    check=_check,
))
