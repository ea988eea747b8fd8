"""Data parallelism across processes (`accelerate launch` or `torchrun`).

Each rank takes every world-th prompt of the global batch; losses are normalised by global counts and
gradients are summed across ranks before the optimizer step, so every rank applies the same update to
identical weights: G and D stay replicas, and the step equals the single-process step on the global
batch (up to floating-point summation order). With one process every function here is the identity.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init() -> None:
    """Join the process group that the launcher described in the environment (gloo on CPU, nccl on GPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if active():
        dist.barrier()


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sum over ranks of a list of numbers."""
    if not active():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=_device())
    dist.all_reduce(t)
    return t.tolist()


def sync_grads(model: torch.nn.Module) -> None:
    """Sum every parameter's gradient over ranks (one flat all-reduce)."""
    if not active():
        return
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def shard(items: list) -> list:
    """This rank's share of a global batch: items rank, rank + world, ..."""
    return items[rank() :: world()]


def checksums(model: torch.nn.Module) -> list[float]:
    """Every rank's sum of its parameters (float64); equal entries mean the replicas agree."""
    local = sum(float(p.detach().double().sum()) for p in model.parameters())
    if not active():
        return [local]
    out = [torch.zeros(1, dtype=torch.float64, device=_device()) for _ in range(world())]
    dist.all_gather(out, torch.tensor([local], dtype=torch.float64, device=_device()))
    return [float(t) for t in out]


def _device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
