"""Process setup, done one way for training, `gadbench eval` and `gadbench bench`: portable CPU numerics, seeds,
the device and the CPU thread count."""

from __future__ import annotations

import os
import platform
import random

from gadbench.config import ConfigError, TrainConfig

PORTABLE_CPU = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}


def pin_portable_cpu_numerics() -> None:
    """Pin x86 CPU kernels to their AVX2 code paths: ATen's kernel dispatch and MKL's conditional numerical
    reproducibility. The same CPU run then gives the same bits on AVX2 and AVX-512 machines (Intel or AMD),
    where otherwise the vector width changes rounding and, compounded over training, the numbers. torch
    reads both settings at its first operation, so this must run before any tensor is made; values already in
    the environment win."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        for k, v in PORTABLE_CPU.items():
            os.environ.setdefault(k, v)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is `cuda` but no CUDA GPU is visible; set train.device=cpu or run on a "
                          "GPU machine.")
    return torch.device(name)


def setup(train: TrainConfig, seed: int):
    """Seed every RNG with `seed`, pick `train.device` and set `train.cpu_threads`; returns the device. Call
    `pin_portable_cpu_numerics` before torch is imported when `train.portable_cpu` is set."""
    import torch

    seed_everything(seed)
    device = pick_device(train.device)
    if device.type == "cpu" and train.cpu_threads:
        torch.set_num_threads(train.cpu_threads)
    return device
