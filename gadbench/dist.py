"""Data parallelism across processes (`accelerate launch` or `torchrun`).

Each rank takes every world-th prompt of the global batch; losses are normalised by global counts and
gradients are summed across ranks before the optimizer step, so every rank applies the same update to
identical weights: G and D stay replicas, and the step equals the single-process step on the global
batch (up to floating-point summation order). With one process every function here is the identity.

With `train.sharding: fsdp` (`fsdp_wrap`) each model is sharded instead (FSDP2: parameters, gradients and
AdamW states split over the processes, like ZeRO-3; `hsdp` shards within a node and replicates across
nodes); FSDP's reduce-scatter then sums the gradients, and the state-dict helpers below gather full
tensors for checkpoints and evaluation.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import functools
import os

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

from gadbench.config import ConfigError


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


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sum over ranks of a list of numbers."""
    if not active():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=_device())
    dist.all_reduce(t)
    return t.tolist()


def all_max(value: int) -> int:
    """The largest of the ranks' values."""
    if not active():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def all_gather(obj) -> list:
    """Every rank's (picklable) `obj`, in rank order, on every rank."""
    if not active():
        return [obj]
    out = [None] * world()
    dist.all_gather_object(out, obj)
    return out


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


def fsdp_wrap(model: torch.nn.Module, device: torch.device, bf16: bool, hybrid: bool = False) -> torch.nn.Module:
    """Shard `model` over all processes in place (FSDP2) and move the shards (and buffers) to `device`; with
    `hybrid` (HSDP), shard within each node and replicate across nodes. Each transformer block (the classes in
    the transformers models' `_no_split_modules`) is one unit and the root holds the rest, so tied embeddings
    stay in one unit. Gradients are summed across ranks, not averaged: losses are already normalised by
    global counts. With bf16, parameters are gathered and used in bf16 and gradients reduced in fp32; the
    sharded master weights and AdamW states stay fp32."""
    mesh = _mesh(device.type, hybrid)
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else MixedPrecisionPolicy()
    blocks = set().union(*(getattr(m, "_no_split_modules", None) or () for m in model.modules()))
    for m in [m for m in model.modules() if type(m).__name__ in blocks]:
        fully_shard(m, mesh=mesh, mp_policy=mp)
    fully_shard(model, mesh=mesh, mp_policy=mp)
    for m in model.modules():
        if isinstance(m, FSDPModule):  # a plain SUM (gloo has no pre-multiplied sum)
            m.set_gradient_divide_factor(1.0)
            m.set_force_sum_reduction_for_comms(True)
    return model


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


def load_full_state_dict(model: torch.nn.Module, state: dict) -> None:
    if is_sharded(model):
        set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True))
    else:
        model.load_state_dict(state)


def optimizer_state_dict(model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict | None:
    """As `full_state_dict`, for the optimizer of `model` (a collective when sharded); None before its first
    step (gathering would initialise a sharded optimizer's state with a zero step and shift its step count)."""
    if not opt.state:
        return None
    if not is_sharded(model):
        return opt.state_dict()
    return get_optimizer_state_dict(model, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_optimizer_state_dict(model: torch.nn.Module, opt: torch.optim.Optimizer, state: dict | None) -> None:
    """Restore what `optimizer_state_dict` saved, from a checkpoint written with the same `train.sharding`."""
    if state is None:
        return
    by_name = isinstance(next(iter(state["state"]), None), str)  # sharded: parameter names; else positions
    if by_name != is_sharded(model):
        raise ConfigError("the checkpoint's optimizer states were written with another train.sharding (or a "
                          "sharded run on one process); resume with the sharding and process count it was written with.")
    if is_sharded(model):
        set_optimizer_state_dict(model, opt, state, options=StateDictOptions(full_state_dict=True))
    else:
        opt.load_state_dict(state)


def meta_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model`'s structure on the meta device (no memory), tied parameters still tied."""
    memo = {id(p): torch.nn.Parameter(torch.empty_like(p, device="meta"), p.requires_grad) for p in model.parameters()}
    memo.update({id(b): torch.empty_like(b, device="meta") for b in model.buffers()})
    return copy.deepcopy(model, memo)


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


def unsharded_copy(model: torch.nn.Module, skeleton: torch.nn.Module, bf16: bool = False) -> torch.nn.Module | None:
    """A plain (unsharded) copy of a sharded `model` on rank 0's device (in bf16 with `bf16`, halving its
    memory), None elsewhere (a collective)."""
    state = full_state_dict(model)
    if not is_main():
        return None
    clone = copy.deepcopy(skeleton)
    for p in clone.parameters() if bf16 else ():  # parameters only: buffers such as RoPE's stay fp32
        p.data = p.data.to(torch.bfloat16)  # on the meta device: free
    clone.to_empty(device=next(model.parameters()).device)
    if hasattr(clone, "tie_weights"):  # to_empty gives each module its own tensor; transformers models re-tie
        clone.tie_weights()
    clone.load_state_dict(state)  # parameters and persistent buffers
    with torch.no_grad():
        for (_, a), (_, b) in zip(clone.named_buffers(), model.named_buffers(), strict=True):
            a.copy_(b)
    return clone.eval()
