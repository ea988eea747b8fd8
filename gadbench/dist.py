"""Data parallelism across processes (`accelerate launch` or `torchrun`).

Each rank takes every world-th prompt of the global batch; losses are normalised by global counts and
gradients are summed across ranks before the optimizer step, so every rank applies the same update to
identical weights: G and D stay replicas, and the step equals the single-process step on the global
batch (up to floating-point summation order). With one process every function here is the identity.

With `train.sharding: fsdp` (`fsdp_wrap`) each model is sharded instead (FSDP2: parameters, gradients and
AdamW states split over the processes, like ZeRO-3; `hsdp` shards within a node and replicates across
nodes); FSDP's reduce-scatter then sums the gradients, and the helpers below gather a full copy of G for
evaluation (checkpoints stay sharded: gadbench.state.checkpoint).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import functools
import os

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import (
    CPUOffloadPolicy,
    FSDPModule,
    MixedPrecisionPolicy,
    OffloadPolicy,
    fully_shard,
)


def init() -> None:
    """Join the process group that the launcher described in the environment (gloo on CPU, nccl on GPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        # gloo for CPU tensors (metrics, CPU runs), nccl for GPU ones; process 0 alone may evaluate or ask the
        # teacher for a long time while the others wait, hence a long timeout (GADBENCH_DIST_TIMEOUT_MIN).
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        minutes = float(os.environ.get("GADBENCH_DIST_TIMEOUT_MIN", "240"))
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=minutes))
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))


def close() -> None:
    """Leave the process group once every process is done with collectives. A process that exits while still
    in the group leaves gloo's threads to the interpreter's shutdown, which can abort it ("terminate called
    without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        barrier()
        dist.destroy_process_group()


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


def from_main(fn):
    """`fn()` run by process 0 alone, its (picklable) result sent to every process."""
    if not active():
        return fn()
    box = [fn() if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_to_main(obj) -> list | None:
    """Every process's (picklable) `obj` in rank order on process 0, None on the others (a collective)."""
    if not active():
        return [obj]
    out = [None] * world() if is_main() else None
    dist.gather_object(obj, out, dst=0)
    return out


def all_gather_object(obj, group=None) -> list:
    """Every process's (picklable) `obj` in rank order, on every process: of all processes, or of `group`."""
    if not active():
        return [obj]
    out = [None] * dist.get_world_size(group)
    dist.all_gather_object(out, obj, group=group)
    return out


def consecutive_groups(size: int):
    """This process's group when the processes are split into groups of `size` consecutive ranks (0..size-1,
    size..2 size-1, ...); a collective, called by every process."""
    group, _ = dist.new_subgroups_by_enumeration([list(range(i, i + size)) for i in range(0, world(), size)])
    return group


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sum over ranks of a list of numbers."""
    if not active():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=_device())
    dist.all_reduce(t)
    return t.tolist()


def sync_grads(model: torch.nn.Module) -> None:
    """Sum every parameter's gradient over ranks (one flat all-reduce); sharded models reduced theirs already."""
    if not active() or is_sharded(model):
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


def local_part(items: list) -> list:
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
    """Where small collectives (metrics, checksums) run: the CPU whenever gloo is available."""
    return torch.device("cpu") if "gloo" in dist.get_backend() else torch.device("cuda", torch.cuda.current_device())


# ------------------------------------------------------------------------------------------- sharding


def is_sharded(model: torch.nn.Module) -> bool:
    return isinstance(model, FSDPModule)


@functools.cache
def _mesh(device_type: str, hybrid: bool):
    """All processes in one shard group, or (hybrid) shard groups of one node's processes (LOCAL_WORLD_SIZE,
    set by torchrun), replicated across nodes."""
    from torch.distributed.device_mesh import init_device_mesh

    if not hybrid:
        return init_device_mesh(device_type, (world(),))
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world()))
    return init_device_mesh(device_type, (world() // local, local), mesh_dim_names=("replicate", "shard"))


def fsdp_wrap(model: torch.nn.Module, device: torch.device, bf16: bool, hybrid: bool = False,
              offload: bool = False) -> torch.nn.Module:
    """Shard `model` over all processes in place (FSDP2) and move the shards (and buffers) to `device`; with
    `hybrid` (HSDP), shard within each node and replicate across nodes. Each transformer block (the classes in
    the transformers models' `_no_split_modules`) is one unit and the root holds the rest, so tied embeddings
    stay in one unit. Gradients are summed across ranks, not averaged: losses are already normalised by
    global counts. With bf16, parameters are gathered and used in bf16 and gradients reduced in fp32; the
    sharded master weights and AdamW states stay fp32. With `offload` (FSDP2's CPUOffloadPolicy) the shards,
    their gradients and so the AdamW states live in host memory and the optimizer steps on the CPU; each unit's
    parameters are copied to `device` to be gathered (pinned host memory on GPUs; on a CPU the policy changes
    nothing)."""
    mesh = _mesh(device.type, hybrid)
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else MixedPrecisionPolicy()
    policy = CPUOffloadPolicy(pin_memory=device.type == "cuda") if offload else OffloadPolicy()
    blocks = set().union(*(getattr(m, "_no_split_modules", None) or () for m in model.modules()))
    for m in [m for m in model.modules() if type(m).__name__ in blocks]:
        fully_shard(m, mesh=mesh, mp_policy=mp, offload_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=mp, offload_policy=policy)
    for m in model.modules():
        if isinstance(m, FSDPModule):  # a plain SUM (gloo has no pre-multiplied sum)
            m.set_gradient_divide_factor(1.0)
            m.set_force_sum_reduction_for_comms(True)
    return model


def compute_device(model: torch.nn.Module) -> torch.device:
    """Where `model` computes: its parameters' device, or for a sharded model the device of its mesh (its
    shards may sit in host memory under CPU offload)."""
    p = next(model.parameters())
    if not is_sharded(model):
        return p.device
    kind = p.device_mesh.device_type
    return torch.device(kind, torch.cuda.current_device()) if kind == "cuda" else torch.device(kind)


@contextlib.contextmanager
def gathered(model: torch.nn.Module):
    """Inside the block a sharded model keeps its parameters gathered between forward passes (generation:
    one all-gather per block for the whole sequence, not one per token), at the memory of a full copy of G;
    at exit it is resharded, the root kept gathered after forward as FSDP does by default. Replicas: no-op."""
    if not is_sharded(model):
        yield
        return
    model.set_reshard_after_forward(False)
    try:
        yield
    finally:
        for m in model.modules():
            if isinstance(m, FSDPModule):
                m.reshard()
        model.set_reshard_after_forward(True)
        model.set_reshard_after_forward(False, recurse=False)


def full_state_dict(model: torch.nn.Module) -> dict:
    """The model's full (unsharded) state dict: a collective for sharded models, whose full tensors land on
    the CPU of rank 0 only."""
    if not is_sharded(model):
        return model.state_dict()
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def frozen_copy(model: torch.nn.Module, skeleton: torch.nn.Module | None = None, wrap=None) -> torch.nn.Module:
    """A frozen copy of `model` in eval mode. A sharded model is copied shard by shard into `wrap(...)` (the
    model's own sharding) of `skeleton`, the unsharded model on the meta device: no gather."""
    if not is_sharded(model):
        return copy.deepcopy(model).eval().requires_grad_(False)
    clone = wrap(copy.deepcopy(skeleton))
    clone.to_empty(device=next(model.parameters()).device)
    with torch.no_grad():
        for (_, a), (_, b) in zip(clone.named_parameters(), model.named_parameters(), strict=True):
            a.to_local().copy_(b.to_local())
        for (_, a), (_, b) in zip(clone.named_buffers(), model.named_buffers(), strict=True):
            a.copy_(b)
    return clone.eval().requires_grad_(False)


def unsharded_copy(model: torch.nn.Module, skeleton: torch.nn.Module, device: torch.device,
                   bf16: bool = False) -> torch.nn.Module | None:
    """A plain (unsharded) copy of a sharded `model` on rank 0's `device` (in bf16 with `bf16`, halving its
    memory), None elsewhere (a collective)."""
    state = full_state_dict(model)
    if not is_main():
        return None
    clone = copy.deepcopy(skeleton)
    for p in clone.parameters() if bf16 else ():  # parameters only: buffers such as RoPE's stay fp32
        p.data = p.data.to(torch.bfloat16)  # on the meta device: free
    clone.to_empty(device=device)
    if hasattr(clone, "tie_weights"):  # to_empty gives each module its own tensor; transformers models re-tie
        clone.tie_weights()
    clone.load_state_dict(state)  # parameters and persistent buffers
    with torch.no_grad():
        for (_, a), (_, b) in zip(clone.named_buffers(), model.named_buffers(), strict=True):
            a.copy_(b)
    return clone.eval()
