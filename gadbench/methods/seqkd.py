"""SeqKD: supervised fine-tuning of G on the teacher's responses, every step (the paper's baseline)."""

from __future__ import annotations

from gadbench.budget import Spend
from gadbench.methods.base import Identity, Method, Stage, register_method
from gadbench.methods.context import Context
from gadbench.methods.cost import sft_cost
from gadbench.methods.updates import sft_update


def sft_step(ctx: Context, batch: list, step: int, step_in_stage: int) -> tuple[dict, Spend]:
    return sft_update(ctx, batch)


SFT = Stage("sft", sft_step, "lr_sft", False, sft_cost)


def _check(m) -> str | None:
    if m.reward != "discriminator" or m.shaping:
        return "kind seqkd trains on the teacher's responses and has no reward; remove reward and shaping"
    return None


SEQKD = register_method(Method(
    "seqkd",
    stages=lambda spec, steps: [(SFT, steps)],
    uses_d=lambda m: False,
    identity=lambda m, student: Identity("seqkd", "seqkd", "SeqKD"),
    check=_check,
))
