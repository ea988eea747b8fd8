"""Load once: sharded models built on the meta device, their weights read by process 0 alone and broadcast.

Under `train.sharding: fsdp|hsdp` with several processes, process 0 reads the student in the dtype its files
hold (a bf16 hub checkpoint takes 2 bytes per parameter of host memory) and tells the others its config and
tokenizer; every process builds the same model on the meta device (no memory), shards it (FSDP2), allocates
its own shards and receives them from process 0 through torch's `set_model_state_dict(...,
StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))`, one tensor at a time. Copying into the
shards casts to the model's dtype (`ModelConfig.dtype`, fp32 by default): bf16 or fp16 to fp32 is exact, so
the shards hold what every process reading `from_pretrained(dtype=float32)` held before. D's backbone is filled
from the same state dict, so no process copies G; its head is process 0's seeded initialisation. Buffers that
are not in the state dict (rotary frequencies) are computed by each process as it builds the model
(accelerate's `init_empty_weights(include_buffers=False)` leaves them real).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

from gadbench import GadbenchError, dist
from gadbench.config import ModelConfig, RunSpec
from gadbench.models import Discriminator, LoadedModel, load_causal_lm

log = logging.getLogger("gadbench")


@dataclass
class ShardedModels:
    g: LoadedModel
    d: LoadedModel | None
    g_skeleton: nn.Module  # G unsharded on the meta device: for the reference and the evaluation copy


@dataclass
class _Recipe:
    """What process 0 sends the others about a model it has read: enough to build it on the meta device."""

    config: object
    tokenizer: object
    template: str


def load_sharded(spec: RunSpec, d_model: ModelConfig | None, with_d: bool, place: Callable[[nn.Module], None],
                 shard_device: torch.device, cache: Path | None = None) -> ShardedModels:
    """G, and D when `with_d` (from `d_model`, else from G's weights), each sharded by `place` with its shards
    on `shard_device`, weights from process 0 (world students and GGUF conversions cached in `cache`, as
    `load_causal_lm`). A collective: every process calls it."""
    dtype = getattr(torch, spec.student.dtype)
    read: dict[str, LoadedModel] = {}  # process 0's full models, by role
    g_recipe = _read_on_main(spec.student, read, "g", cache)
    g_full = read["g"].model.state_dict() if "g" in read else {}
    g = _meta_causal_lm(g_recipe.config, dtype)
    skeleton = _meta_causal_lm(g_recipe.config, dtype)
    _fill(g, g_full, place, shard_device)
    d = None
    if with_d:
        d_recipe, d_full = g_recipe, g_full
        if d_model is not None:
            d_recipe = _read_on_main(d_model, read, "d", cache)
            d_full = read["d"].model.state_dict() if "d" in read else {}
        body = _meta_causal_lm(d_recipe.config, getattr(torch, (d_model or spec.student).dtype))
        prefix = body.base_model_prefix + "."
        disc = Discriminator(getattr(body, body.base_model_prefix), d_recipe.config.hidden_size, seed=spec.seed,
                             bias=spec.method.d_loss == "ce")
        full = {}
        if dist.is_main():  # the backbone's tensors are G's (or d_model's) own: no copy
            full = {"backbone." + k[len(prefix):]: v for k, v in d_full.items() if k.startswith(prefix)}
            full.update({"head." + k: v.detach().clone() for k, v in disc.head.state_dict().items()})
        _fill(disc, full, place, shard_device)
        d = LoadedModel(disc, d_recipe.tokenizer, d_recipe.template)
    return ShardedModels(LoadedModel(g, g_recipe.tokenizer, g_recipe.template), d, skeleton)


def _read_on_main(cfg: ModelConfig, read: dict[str, LoadedModel], role: str, cache: Path | None) -> _Recipe:
    """Process 0 reads the model `cfg` names (in its stored dtype) into `read[role]`; every process gets its
    recipe, or the error that stopped process 0."""

    def main() -> _Recipe | GadbenchError:
        try:
            loaded = load_causal_lm(cfg, stored_dtype=True, cache=cache)
        except GadbenchError as e:
            return e
        read[role] = loaded
        log.info("process 0 read %s (%s, stored dtype) to send it to %d processes' shards", cfg.path,
                 next(loaded.model.parameters()).dtype, dist.world())
        return _Recipe(loaded.model.config, loaded.tokenizer, loaded.template)

    answer = dist.from_main(main)
    if isinstance(answer, GadbenchError):
        raise answer
    return answer


def _meta_causal_lm(config, dtype: torch.dtype) -> nn.Module:
    """The causal LM of `config` with its parameters on the meta device (no memory) and real buffers, tied
    embeddings tied (the patched constructor re-registers each parameter, which unties them)."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    with init_empty_weights(include_buffers=False):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.tie_weights()
    return model


def _fill(model: nn.Module, full: dict, place: Callable[[nn.Module], None], shard_device: torch.device) -> None:
    """Shard `model` (`place`), allocate its shards on `shard_device`, and load `full` (process 0's full state
    dict; {} elsewhere) into them by broadcast."""
    buffers = {name: b.clone() for name, b in model.named_buffers() if not b.is_meta}
    place(model)
    model.to_empty(device=shard_device)  # also replaces the buffers: restored below
    with torch.no_grad():
        for name, b in buffers.items():
            model.get_buffer(name).copy_(b)
    set_model_state_dict(model, dict(full) if dist.is_main() else {},  # a copy: torch fills it with the shards
                         options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
