"""The models, optimizers and engine that the step functions work on, and the one way to build them.

`build_context` is used by the trainer, `gadbench bench` and `gadbench eval`; `begin_stage` gives a
context the optimizers (and reference) of a stage.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gadbench import dist
from gadbench.config import ModelConfig, RunSpec
from gadbench.methods.base import Stage, uses_discriminator
from gadbench.methods.rewards import Reward, make_reward, make_shaping
from gadbench.models import LoadedModel, build_discriminator, count_params, load_causal_lm, prompt_ids
from gadbench.rollout import RolloutEngine, make_engine
from gadbench.sequences import group, pack

GoldFn = Callable[[list[str], list[str]], dict[str, float]]  # (prompts, texts) -> mean gold metrics


@dataclass
class Context:
    """The models, optimizers and engine of a run."""

    spec: RunSpec
    g: LoadedModel
    d: LoadedModel | None
    engine: RolloutEngine
    device: torch.device
    g_params: int
    d_params: int = 0
    ref: torch.nn.Module | None = None
    g_opt: torch.optim.Optimizer | None = None
    d_opt: torch.optim.Optimizer | None = None
    reward_fn: Reward | None = None  # the fixed reward of `discriminator: none`
    shaping: list = field(default_factory=list)  # (name, reward, weight) added to every GRPO reward
    gold_fn: GoldFn | None = None  # the world's gold metrics of rollouts, logged per step
    _prompt_cache: dict = field(default_factory=dict)
    phase_times: dict[str, float] = field(default_factory=dict)  # seconds per phase of the step in progress
    memory: object | None = None  # a gadbench.capacity.PeakMeter when train.log_memory is on

    @contextlib.contextmanager
    def phase(self, name: str):
        """Add the wall time of the block to `phase_times[name]` (CUDA synchronised at both ends, so the time
        is the block's own work), and its peak memory to `memory` when it measures."""
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        sync()
        start = time.perf_counter()
        with self.memory.measure(name) if self.memory is not None else contextlib.nullcontext():
            try:
                yield
            finally:
                sync()
                self.phase_times[name] = self.phase_times.get(name, 0.0) + time.perf_counter() - start

    def prompt_ids(self, prompt: str) -> list[int]:
        if prompt not in self._prompt_cache:
            ids = prompt_ids(self.g.tokenizer, prompt, self.g.template)
            self._prompt_cache[prompt] = ids[-self.spec.train.max_prompt_tokens :]
        return self._prompt_cache[prompt]

    @property
    def shares_prompts(self) -> bool:
        """Whether training forwards compute each prompt once per group (train.shared_prefix; not under FSDP
        or gradient checkpointing, see gadbench.sequences)."""
        t = self.spec.train
        return t.shared_prefix and not t.gradient_checkpointing and not dist.is_sharded(self.g.model)

    def sequences(self, prompts: list[list[int]], responses: list[list[int]], repeats: int, pad_id: int):
        """`repeats` responses per prompt (prompt-major) in the layout forwards use: Groups or Packed."""
        if self.shares_prompts:
            return group(prompts, responses, repeats, pad_id, self.device)
        return pack([p for p in prompts for _ in range(repeats)], responses, pad_id, self.device)

    def autocast(self):
        """bf16 autocast of forwards (on GPUs and CPUs alike) when `train.precision` is bf16."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.spec.train.precision == "bf16")


def _world_gold(prompts: list[str], texts: list[str]) -> dict[str, float]:
    from gadbench.worlds.synthetic import gold_metrics

    m = gold_metrics(prompts, texts)
    return {k: m[k] for k in ("teacher_logprob", "accuracy")}


def build_context(spec: RunSpec, device: torch.device, *, g: LoadedModel | None = None, d: LoadedModel | None = None,
                  with_d: bool = True, reward_fn: Reward | None = None,
                  place: Callable[[torch.nn.Module], None] | None = None, cache: Path | None = None) -> Context:
    """G (the suite's student unless given), D when the method has one and `with_d` (given, or built from G's
    weights or `method.d_model` before G moves), both placed by `place` (default: moved to `device`), the
    rollout engine, the method's fixed reward (`reward_fn` overrides it) and reward shaping, and the world's gold
    metrics of rollouts when the teacher is the world's program. Models load with `cache` (models.load_causal_lm)."""
    g = g or load_causal_lm(spec.student, cache=cache)
    if not (with_d and uses_discriminator(spec)):
        d = None
    elif d is None:
        m = spec.method
        d_cfg = ModelConfig(path=m.d_model, template=spec.student.template) if m.d_model else None
        d = build_discriminator(g, d_cfg, seed=spec.seed, d_loss=m.d_loss, cache=cache)
    for model in (g, d):
        if model is not None:
            place(model.model) if place else model.model.to(device)
    gold = _world_gold if spec.teacher.spec.startswith("program") else None
    return Context(spec=spec, g=g, d=d, engine=make_engine(spec, g.tokenizer), device=device,
                   g_params=count_params(g.model), d_params=count_params(d.model) if d else 0,
                   reward_fn=reward_fn or make_reward(spec), shaping=make_shaping(spec), gold_fn=gold)


def adamw(params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=False)


def begin_stage(ctx: Context, stage: Stage, frozen_copy: Callable[[torch.nn.Module], torch.nn.Module]) -> None:
    """Fresh AdamW for G at the stage's learning rate (0 where G does not train) and for D (verl restarts its
    optimizers between warmup and GAD); the reference, `frozen_copy(G)` as the stage starts, when the stage
    needs one and kl_beta > 0."""
    t = ctx.spec.train
    ctx.g_opt = adamw(ctx.g.model.parameters(), getattr(t, stage.g_lr) if stage.g_lr else 0.0, t.weight_decay)
    if ctx.d is not None:
        ctx.d_opt = adamw(ctx.d.model.parameters(), t.lr_discriminator, t.weight_decay)
    ctx.ref = frozen_copy(ctx.g.model) if stage.reference and t.kl_beta > 0 else None


def timed(fn, ctx: Context, batch, step: int, step_in_stage: int):
    """fn(ctx, batch, step, step_in_stage) with its wall-clock time in the spend and the metrics, and the time
    of each phase (`time/rollout`, `time/ref`, `time/g`: G's forward, backward and update, `time/d`); with
    train.log_memory, each phase's peak memory too (`mem/<phase>`, GiB)."""
    ctx.phase_times.clear()
    start = time.perf_counter()
    metrics, spend = fn(ctx, batch, step, step_in_stage)
    spend.steps = 1
    spend.wall_s = time.perf_counter() - start
    metrics["step_time"] = spend.wall_s
    metrics.update({f"time/{k}": v for k, v in ctx.phase_times.items()})
    if ctx.memory is not None:  # each phase's peak in this step, GiB (train.log_memory)
        metrics.update({f"mem/{k}": v / 2**30 for k, v in ctx.memory.taken().items()})
    return metrics, spend
