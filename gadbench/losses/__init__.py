"""Pure loss functions of GAD and its baselines; each states its formula in its docstring."""

from gadbench.losses.discriminator import bradley_terry_loss, cross_entropy_d_loss, discriminator_accuracy
from gadbench.losses.grpo import group_advantages, grpo_loss, k3_kl
from gadbench.losses.sft import sft_loss

__all__ = [
    "bradley_terry_loss", "cross_entropy_d_loss", "discriminator_accuracy",
    "group_advantages", "grpo_loss", "k3_kl", "sft_loss",
]
