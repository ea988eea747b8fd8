"""Discriminator losses: Bradley-Terry (GAD) and the GAN cross-entropy (the loss ablation)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _pairs(teacher: torch.Tensor, student: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Broadcast teacher scores [B] against student scores [B, N] (or [B*N])."""
    s = student.view(teacher.shape[0], -1)
    return teacher[:, None].expand_as(s), s


def bradley_terry_loss(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    """L = mean over prompts b and samples i of -log sigmoid(D(y_t^b) - D(y_s^{b,i})).

    teacher: [B] scores of the teacher responses; student: [B, N] or [B*N] scores of the N student samples
    that share each teacher response.
    """
    t, s = _pairs(teacher, student)
    return -F.logsigmoid(t - s).mean()


def cross_entropy_d_loss(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    """L = mean over pairs of -log sigmoid(D(y_t)) - log(1 - sigmoid(D(y_s))), the standard GAN classifier loss.

    log(1 - sigmoid(x)) is computed as logsigmoid(-x) for stability.
    """
    t, s = _pairs(teacher, student)
    return (-F.logsigmoid(t) - F.logsigmoid(-s)).mean()


def discriminator_accuracy(teacher: torch.Tensor, student: torch.Tensor) -> float:
    """Fraction of (teacher, student-sample) pairs with D(teacher) > D(student)."""
    t, s = _pairs(teacher, student)
    return float((t > s).float().mean())
