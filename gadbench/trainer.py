"""The training loop: stages, steps, the budget meter, monitors, evaluation hooks, checkpoints and resume.

A checkpoint (`RunDir.write_checkpoint`) holds G, D, the reference model, both optimizers, every RNG
state and the meter. `--resume` continues from the last complete checkpoint, trims the step log to it,
and on CPU ends bitwise-identical to an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import random
from pathlib import Path

import numpy as np
import torch

from gadbench import GadbenchError, dist
from gadbench.budget import Meter, Spend
from gadbench.config import ConfigError, RunSpec
from gadbench.eval.evaluator import eval_seed
from gadbench.io import append_jsonl, atomic_write_json, read_jsonl, truncate_jsonl
from gadbench.memory.probe import PeakMeter
from gadbench.methods import stage_plan
from gadbench.methods.context import begin_stage, build_context
from gadbench.methods.steps import d_diagnostics, timed
from gadbench.models import Discriminator, count_params, load_causal_lm, response_tokens
from gadbench.progress import progress_bar
from gadbench.rundir import RunDir

log = logging.getLogger("gadbench")


class TrainingDiverged(GadbenchError, RuntimeError):
    """A NaN or infinite loss; the checkpoints written before it are kept."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is `cuda` but no CUDA GPU is visible; set train.device=cpu or run on a "
                          "GPU machine.")
    return torch.device(name)


def global_spend(spend: Spend) -> Spend:
    """This step's spend over all processes: data and FLOP counters are summed; steps, optimizer steps and
    wall-clock are the same step seen from each process (this process's values)."""
    summed = ("prompts", "teacher_responses", "rollouts", "generated_tokens", "g_trained_tokens",
              "d_trained_tokens", "flops")
    totals = dist.all_sum([getattr(spend, k) for k in summed])
    return dataclasses.replace(spend, **{k: type(getattr(spend, k))(v) for k, v in zip(summed, totals, strict=True)})


class Trainer:
    """Trains one run. `on_eval(step, ctx, extra)` is called at every evaluation point (every `eval.every`
    steps, at stage ends and at the end) before the checkpoint of that step is written; `extra` holds the
    discriminator diagnostics on the validation split (`d_diagnostics`) when the run has D and a split."""

    def __init__(self, spec: RunSpec, run_dir: Path, data, reward_fn=None, on_eval=None, steps: int | None = None,
                 progress: bool = True):
        self.spec, self.run, self.data = spec, RunDir(run_dir), data
        self.plan = stage_plan(spec, steps)
        self.total_steps = sum(s.steps for s in self.plan)
        self.on_eval = on_eval
        self.progress = progress
        self.meter = Meter()
        self.length_warnings = 0
        t = spec.train
        if t.batch_size % dist.world():
            raise ConfigError(f"train.batch_size={t.batch_size} does not split over {dist.world()} processes; "
                              "use a multiple of the process count.")
        seed_everything(spec.seed)
        device = pick_device(t.device)
        if device.type == "cpu" and t.cpu_threads:
            torch.set_num_threads(t.cpu_threads)
        # Sharded (FSDP) models keep an unsharded skeleton on the meta device for the reference and for
        # the full copy that evaluation generates from.
        self.sharded = t.sharding != "none" and dist.world() > 1
        if spec.rollout.engine == "vllm" and self.sharded:
            raise ConfigError("rollout.engine=vllm needs a full replica of G on each process; use train.sharding: none "
                              "or rollout.engine: hf with FSDP.")
        self.bf16 = device.type == "cuda" and t.precision == "bf16"
        self.fsdp_wrap = functools.partial(dist.fsdp_wrap, device=device, bf16=self.bf16, hybrid=t.sharding == "hsdp")
        memory = PeakMeter(cuda=device.type == "cuda") if t.log_memory else None

        def place(model: torch.nn.Module) -> None:
            body = model.backbone if isinstance(model, Discriminator) else model
            if t.gradient_checkpointing and hasattr(body, "gradient_checkpointing_enable"):
                body.gradient_checkpointing_enable()
            self.fsdp_wrap(model) if self.sharded else model.to(device)

        with memory.measure("load") if memory else contextlib.nullcontext():
            g = load_causal_lm(spec.student)
            self.g_skeleton = dist.meta_copy(g.model) if self.sharded else None
            self.ctx = build_context(spec, device, g=g, reward_fn=reward_fn, place=place)
        self.ctx.memory = memory
        if self.sharded:
            local = sum(p.to_local().numel() for p in g.model.parameters())
            log.info("%s over %d processes: this rank holds %d of G's %d parameters", t.sharding.upper(),
                     dist.world(), local, count_params(g.model))
        elif dist.world() > 1:
            log.info("data parallel over %d processes: each holds a replica of G and D", dist.world())
        if spec.rollout.engine == "vllm":
            self.ctx.engine.update_weights(g.model)  # start it now, on every rank together (collective under torchrun)

    # ------------------------------------------------------------------------------------------ stages

    def _stage_at(self, step: int) -> tuple[int, int]:
        """(stage index, 0-based step within the stage) of global step `step` (1-based)."""
        before = 0
        for i, s in enumerate(self.plan):
            if step <= before + s.steps:
                return i, step - before - 1
            before += s.steps
        raise IndexError(step)

    def _stage_end(self, i: int) -> int:
        return sum(s.steps for s in self.plan[: i + 1])

    def _begin_stage(self, i: int) -> None:
        begin_stage(self.ctx, self.plan[i].stage, lambda g: dist.frozen_copy(g, self.g_skeleton, self.fsdp_wrap))

    # ------------------------------------------------------------------------------------------- loop

    def train(self, resume: bool = False) -> Meter:
        start = self._restore() if resume else 0
        if start == 0:
            if dist.is_main():
                self.run.metrics.unlink(missing_ok=True)
            self._begin_stage(0)
            self._eval(0)
        bar = progress_bar(total=self.total_steps, initial=start, desc=self.spec.run_id,
                           enabled=self.progress and dist.is_main())
        for step in range(start + 1, self.total_steps + 1):
            i, k = self._stage_at(step)
            if k == 0 and step > 1:
                self._begin_stage(i)
            stage = self.plan[i].name
            batch = self.data.batch(step, self.spec.train.batch_size)
            metrics, spend = timed(self.plan[i].stage.run(), self.ctx, dist.local_part(batch), step, k)
            self._check_finite(step, metrics)
            self.meter.record(stage, global_spend(spend))
            if dist.is_main():
                # this batch's teacher length (not a previous step's: that went stale and differed after --resume)
                teacher_len = metrics.get("teacher_len") or self._teacher_len(batch)
                self._watch_length(step, metrics, teacher_len)
                append_jsonl(self.run.metrics, [{"step": step, "stage": stage, **_round(metrics)}])
            bar.update(1, metrics)
            at_stage_end = step == self._stage_end(i)
            if step % self.spec.eval.every == 0 or at_stage_end:
                self._eval(step)
            if step % self.spec.train.checkpoint_every == 0 or at_stage_end:
                self._save(step, keep_stage_end=at_stage_end)
        bar.close()
        if self.ctx.memory is not None:  # every process's peaks, one file (train.log_memory)
            peaks = dist.all_gather(self.ctx.memory.peaks)
            if dist.is_main():
                atomic_write_json(self.run.path / "memory.json", {"processes": peaks})
        return self.meter

    def _teacher_len(self, batch) -> float:
        return sum(response_tokens(self.ctx.g.tokenizer, ex.teacher_response) for ex in batch) / len(batch)

    def _watch_length(self, step: int, metrics: dict, teacher_len: float) -> None:
        ratio = self.spec.train.length_warning_ratio
        if "response_len" in metrics and teacher_len and metrics["response_len"] > ratio * teacher_len:
            metrics["length_warning"] = True
            self.length_warnings += 1
            if self.length_warnings in (1, 10, 100, 1000):
                log.warning("step %d: mean response length %.1f tokens is over %.1fx the teacher's %.1f "
                        "(possible reward hacking; warning %d)", step, metrics["response_len"], ratio, teacher_len,
                            self.length_warnings)

    def _check_finite(self, step: int, metrics: dict) -> None:
        for key in ("sft_loss", "pg_loss", "d_loss"):
            if key in metrics and not math.isfinite(metrics[key]):
                last = self.run.latest_checkpoint()
                kept = f"the last checkpoint written before it (step {last}) is kept" if last else "no checkpoint was written yet"
                raise TrainingDiverged(
                    f"{key} became {metrics[key]} at step {step}, so training stopped; {kept}. Lower the learning "
                    "rate or check the data, then run again."
                )

    def _eval(self, step: int) -> None:
        """Evaluation runs on the main process (from a gathered full copy of G when sharded); the others wait."""
        if self.on_eval is None:
            return
        with self.ctx.phase("eval"):
            self._evaluate(step)

    def _evaluate(self, step: int) -> None:
        ctx = self.ctx
        extra = {}
        if ctx.d is not None and self.data.validation:  # every process: D may be sharded
            extra["d"] = d_diagnostics(ctx, self.data.validation, step)
        if self.sharded:
            # in bf16 runs a bf16 copy, which the hf engine generates from as it is (no second copy)
            full = dist.unsharded_copy(ctx.g.model, self.g_skeleton, self.spec.train.precision == "bf16")
            ctx = dataclasses.replace(ctx, g=dataclasses.replace(ctx.g, model=full))
        if dist.is_main():
            with torch.random.fork_rng(devices=[]):  # evaluation never shifts the training RNG stream
                torch.manual_seed(eval_seed(self.spec, step))
                self.on_eval(step, ctx, extra)
        dist.barrier()

    # ------------------------------------------------------------------------------------- checkpoints

    def _check_replicas(self, step: int) -> None:
        """Every rank must hold the same G and D; a difference means the data-parallel update is broken."""
        for name, model in (("generator", self.ctx.g.model), ("discriminator", self.ctx.d and self.ctx.d.model)):
            if model is None or dist.is_sharded(model):
                continue
            sums = dist.checksums(model)
            if max(sums) != min(sums):
                raise RuntimeError(f"the {name} replicas differ across processes at step {step} (parameter sums "
                                   f"{sums}); please report this with the suite file.")

    def _save(self, step: int, keep_stage_end: bool) -> None:
        with self.ctx.phase("checkpoint"):
            self._write_checkpoint(step, keep_stage_end)

    def _write_checkpoint(self, step: int, keep_stage_end: bool) -> None:
        self._check_replicas(step)
        state = self._state(step)  # a collective when sharded
        if dist.is_main():
            self.run.write_checkpoint(state, step, keep_stage_end, self.spec.train.keep_checkpoints)
        dist.barrier()

    def _state(self, step: int) -> dict:
        """Full (unsharded) tensors, so a checkpoint is the same whatever the process count."""
        ctx = self.ctx
        g, d = ctx.g.model, ctx.d and ctx.d.model
        return {
            "step": step,
            "g": dist.full_state_dict(g),
            "g_opt": dist.optimizer_state_dict(g, ctx.g_opt),
            "d": dist.full_state_dict(d) if d else None,
            "d_opt": dist.optimizer_state_dict(d, ctx.d_opt) if d else None,
            "ref": dist.full_state_dict(ctx.ref) if ctx.ref is not None else None,
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
            "meter": self.meter.state(),
        }

    def _restore(self) -> int:
        step = self.run.latest_checkpoint()
        if step == 0:
            log.info("no checkpoint to resume from in %s; starting from step 0", self.run.checkpoints)
            return 0
        state = self.run.load_checkpoint(step)
        ctx = self.ctx
        i, k = self._stage_at(step)
        g, d = ctx.g.model, ctx.d and ctx.d.model
        if step == self._stage_end(i) and i + 1 < len(self.plan):
            dist.load_full_state_dict(g, state["g"])
            if d is not None:
                dist.load_full_state_dict(d, state["d"])
            self._begin_stage(i + 1)
        else:
            self._begin_stage(i)
            dist.load_full_state_dict(g, state["g"])
            dist.load_optimizer_state_dict(g, ctx.g_opt, state["g_opt"])
            if d is not None:
                dist.load_full_state_dict(d, state["d"])
                dist.load_optimizer_state_dict(d, ctx.d_opt, state["d_opt"])
            if ctx.ref is not None and state["ref"] is not None:
                dist.load_full_state_dict(ctx.ref, state["ref"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.meter = Meter.from_state(state["meter"])
        if dist.is_main():
            truncate_jsonl(self.run.metrics, keep=sum(1 for r in read_jsonl(self.run.metrics) if r["step"] <= step))
        log.info("resumed %s from step %d", self.spec.run_id, step)
        return step


def _round(metrics: dict) -> dict:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}
