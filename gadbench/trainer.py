"""The training loop: stages, steps, the budget meter, monitors, evaluation hooks, checkpoints and resume.

A checkpoint (gadbench.state.checkpoint) holds G, D, the reference model, both optimizers, every process's RNG
states and the meter, each process writing its own shards. `--resume` continues from the last complete
checkpoint, with any process count, trims the step log to it, and on CPU ends bitwise-identical to an
uninterrupted run with the same processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
from pathlib import Path

import torch

from gadbench import GadbenchError, dist, runtime
from gadbench.budget import Meter, Spend
from gadbench.capacity.probe import PeakMeter
from gadbench.config import ConfigError, ModelConfig, RunSpec
from gadbench.eval.evaluator import eval_seed
from gadbench.io import append_jsonl, atomic_write_json, kill_point, read_json, read_jsonl, truncate_jsonl
from gadbench.methods import eval_steps, stage_plan, uses_discriminator
from gadbench.methods.context import begin_stage, build_context, timed
from gadbench.methods.updates import d_diagnostics
from gadbench.models import Discriminator, count_params, load_causal_lm, response_tokens
from gadbench.progress import progress_bar
from gadbench.rollout.fanout import FanOutEngine, serve
from gadbench.rundir import CheckpointDamagedError, RunDir
from gadbench.state import checkpoint
from gadbench.state.loading import load_sharded
from gadbench.tracking import flat_means

log = logging.getLogger("gadbench")


class TrainingDiverged(GadbenchError, RuntimeError):
    """A NaN or infinite loss; the checkpoints written before it are kept."""


def global_spend(spend: Spend) -> Spend:
    """This step's spend over all processes: data and FLOP counters are summed; steps, optimizer steps and
    wall-clock are the same step seen from each process (this process's values)."""
    summed = ("prompts", "teacher_responses", "rollouts", "generated_tokens", "g_trained_tokens",
              "d_trained_tokens", "flops")
    totals = dist.all_sum([getattr(spend, k) for k in summed])
    return dataclasses.replace(spend, **{k: type(getattr(spend, k))(v) for k, v in zip(summed, totals, strict=True)})


class Trainer:
    """Trains one run. `on_eval(step, ctx, extra)` is called at every evaluation point (`eval_steps`: step 0,
    every `eval.every` steps and at stage ends from `eval.start` on, and at the end) before the checkpoint of that
    step is written; `extra` holds the
    discriminator diagnostics on the validation split (`d_diagnostics`) when the run has D and a split.
    `tracker` (gadbench.tracking, process 0) gets each metrics.jsonl row and each evaluation's means."""

    def __init__(self, spec: RunSpec, run_dir: Path, data, on_eval=None, steps: int | None = None,
                 progress: bool = True, tracker=None):
        self.spec, self.run, self.data = spec, RunDir(run_dir), data
        self.plan = stage_plan(spec, steps)
        self.total_steps = sum(s.steps for s in self.plan)
        self.eval_at = set(eval_steps(spec, self.plan))
        self.on_eval = on_eval
        self.progress = progress
        self.tracker = tracker
        self.bar = None
        self.meter = Meter()
        self.length_warnings = 0
        self.truncation_warnings = 0
        t = spec.train
        if t.batch_size % dist.world():
            raise ConfigError(f"train.batch_size={t.batch_size} does not split over {dist.world()} processes; "
                              "use a multiple of the process count.")
        device = runtime.setup(t, spec.seed)
        # Sharded (FSDP) models keep an unsharded skeleton on the meta device for the reference and for
        # the full copy that evaluation generates from; with one process, sharding (and CPU offload) is off.
        self.sharded = t.sharding != "none" and dist.world() > 1
        # vLLM engines on every process generate the evaluation answers together (gadbench/rollout/fanout.py)
        self.fan_out = spec.rollout.engine == "vllm" and dist.world() > 1
        offload = spec.student.cpu_offload
        if offload and t.sharding == "none":
            raise ConfigError(f"student {spec.student_name} has cpu_offload, which offloads FSDP shards, but "
                              "train.sharding is none; set train.sharding=fsdp (or hsdp), or cpu_offload to false.")
        self.bf16 = device.type == "cuda" and t.precision == "bf16"
        self.device = device
        self.fsdp_wrap = functools.partial(dist.fsdp_wrap, device=device, bf16=self.bf16, hybrid=t.sharding == "hsdp",
                                           offload=offload)
        memory = PeakMeter(cuda=device.type == "cuda") if t.log_memory else None

        def place(model: torch.nn.Module) -> None:
            body = model.backbone if isinstance(model, Discriminator) else model
            if t.gradient_checkpointing and hasattr(body, "gradient_checkpointing_enable"):
                body.gradient_checkpointing_enable()
            self.fsdp_wrap(model) if self.sharded else model.to(device)

        with memory.measure("load") if memory else contextlib.nullcontext():
            if self.sharded:  # loaded once, by process 0, into shards built on the meta device (gadbench.state.loading)
                m = spec.method
                d_model = ModelConfig(path=m.d_model, template=spec.student.template) if m.d_model else None
                shard_device = torch.device("cpu") if offload else device
                models = load_sharded(spec, d_model, uses_discriminator(spec), place, shard_device, cache=self.run.cache)
                g, self.g_skeleton = models.g, models.g_skeleton
                self.ctx = build_context(spec, device, g=g, d=models.d, place=lambda model: None)
            else:
                g, self.g_skeleton = load_causal_lm(spec.student, cache=self.run.cache), None
                self.ctx = build_context(spec, device, g=g, place=place, cache=self.run.cache)
        self.ctx.memory = memory
        if self.sharded:
            local = sum(p.to_local().numel() for p in g.model.parameters())
            log.info("%s over %d processes%s: this rank holds %d of G's %d parameters", t.sharding.upper(),
                     dist.world(), " with CPU offload" if offload else "", local, count_params(g.model))
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
        self.bar = bar = progress_bar(total=self.total_steps, initial=start, desc=self.spec.run_id,
                                      enabled=self.progress and dist.is_main())
        if start == 0:
            if dist.is_main():
                self.run.metrics.unlink(missing_ok=True)
            self._begin_stage(0)
            self._eval(0)
        for step in range(start + 1, self.total_steps + 1):
            i, k = self._stage_at(step)
            if k == 0 and step > 1:
                self._begin_stage(i)
            stage = self.plan[i].name
            batch = self.data.batch(step, self.spec.train.batch_size)
            metrics, spend = timed(self.plan[i].stage.step, self.ctx, dist.local_part(batch), step, k)
            self._check_finite(step, metrics)
            self.meter.record(stage, global_spend(spend))
            if dist.is_main():
                # this batch's teacher lengths (not a previous step's: that went stale and differed after --resume)
                lengths = [response_tokens(self.ctx.g.tokenizer, ex.teacher_response) for ex in batch]
                metrics["teacher_truncated_frac"] = sum(n > self.spec.train.max_response_tokens
                                                        for n in lengths) / len(lengths)
                self._watch_length(step, metrics, metrics.get("teacher_len") or sum(lengths) / len(lengths))
                self._watch_truncation(step, metrics)
                row = {"step": step, "stage": stage, **_round(metrics)}
                append_jsonl(self.run.metrics, [row])
                kill_point("after-metrics-row", step)
                if self.tracker is not None:
                    self.tracker.log(row, step)
            bar.update(1, metrics)
            at_stage_end = step == self._stage_end(i)
            if step in self.eval_at:
                self._eval(step)
            if step % self.spec.train.checkpoint_every == 0 or at_stage_end:
                self._save(step, keep_stage_end=at_stage_end)
        bar.close()
        if self.ctx.memory is not None:  # every process's peaks, one file (train.log_memory)
            peaks = dist.all_gather_object(self.ctx.memory.peaks)
            if dist.is_main():
                atomic_write_json(self.run.path / "memory.json", {"processes": peaks})
        return self.meter

    def _watch_length(self, step: int, metrics: dict, teacher_len: float) -> None:
        ratio = self.spec.train.length_warning_ratio
        if "response_len" in metrics and teacher_len and metrics["response_len"] > ratio * teacher_len:
            metrics["length_warning"] = True
            self.length_warnings += 1
            if self.length_warnings in (1, 10, 100, 1000):
                log.warning("step %d: mean response length %.1f tokens is over %.1fx the teacher's %.1f "
                        "(possible reward hacking; warning %d)", step, metrics["response_len"], ratio, teacher_len,
                            self.length_warnings)

    def _watch_truncation(self, step: int, metrics: dict) -> None:
        """Flag (`truncation_warning`) and log a step where more than `truncation_warning` of the rollouts
        (`truncated_frac`) or of the batch's teacher responses (`teacher_truncated_frac`) are cut at
        max_response_tokens: the answers trained on and compared then end where the limit is, not where they end."""
        limit = self.spec.train.truncation_warning
        cut = {k: metrics[k] for k in ("truncated_frac", "teacher_truncated_frac") if metrics.get(k, 0.0) > limit}
        if not cut:
            return
        metrics["truncation_warning"] = True
        self.truncation_warnings += 1
        if self.truncation_warnings in (1, 10, 100, 1000):
            shares = ", ".join(f"{'rollouts' if k == 'truncated_frac' else 'teacher responses'} {v:.0%}"
                               for k, v in cut.items())
            log.warning("step %d: %s cut at train.max_response_tokens = %d (over %.0f%%; warning %d): raise it",
                        step, shares, self.spec.train.max_response_tokens, 100 * limit, self.truncation_warnings)

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
        """Evaluation runs on the main process while the others wait: its answers come from every process's
        vLLM engine (`fan_out`), or else from the main process alone (from a gathered full copy of G when
        sharded)."""
        if self.on_eval is None:
            return
        with self.ctx.phase("eval"):
            self._evaluate(step)

    def _evaluate(self, step: int) -> None:
        ctx = self.ctx
        extra = {}
        if ctx.d is not None and self.data.validation:  # every process: D may be sharded
            extra["d"] = d_diagnostics(ctx, self.data.validation, step)
        if self.fan_out and not dist.is_main():
            serve(ctx.engine, ctx.g.model)
        elif self.fan_out:
            ctx = dataclasses.replace(ctx, engine=FanOutEngine(ctx.engine))
        elif self.sharded:
            # in bf16 runs (CPUs too) a bf16 copy, which the hf engine generates from as it is (no second copy)
            full = dist.unsharded_copy(ctx.g.model, self.g_skeleton, self.device, self.spec.train.precision == "bf16")
            ctx = dataclasses.replace(ctx, g=dataclasses.replace(ctx.g, model=full))
        if dist.is_main():
            if self.bar is not None:
                self.bar.status(f"evaluating step {step}")
            with torch.random.fork_rng(devices=[]):  # evaluation never shifts the training RNG stream
                torch.manual_seed(eval_seed(self.spec, step))
                self.on_eval(step, ctx, extra)
            if self.fan_out:  # only after a complete evaluation: on an error the launch stops them all
                ctx.engine.stop()
            if self.tracker is not None and (done := self.run.eval_dir(step) / "metrics.json").exists():
                self.tracker.log(flat_means(read_json(done)), step)
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
        info = {"processes": dist.world(), "sharding": self.spec.train.sharding if self.sharded else "none",
                "meter": self.meter.state()}
        checkpoint.save(self.run, step, self._models(), self._optimizers(), info, keep_stage_end,
                        self.spec.train.keep_checkpoints)

    def _models(self) -> dict[str, torch.nn.Module]:
        ctx = self.ctx
        models = {"g": ctx.g.model}
        if ctx.d is not None:
            models["d"] = ctx.d.model
        if ctx.ref is not None:
            models["ref"] = ctx.ref
        return models

    def _optimizers(self) -> checkpoint.Optimizers:
        ctx = self.ctx
        optimizers = {"g_opt": (ctx.g.model, ctx.g_opt)}
        if ctx.d is not None:
            optimizers["d_opt"] = (ctx.d.model, ctx.d_opt)
        return optimizers

    def _intact_checkpoint(self) -> int | str:
        """RunDir.intact_checkpoint, or the message of its error (process 0 verifies, every process gets the
        answer)."""
        try:
            return self.run.intact_checkpoint()
        except CheckpointDamagedError as e:
            return str(e)

    def _restore(self) -> int:
        step = dist.from_main(self._intact_checkpoint)  # damaged ones are passed over with a warning
        if isinstance(step, str):
            raise CheckpointDamagedError(step)
        if step == 0:
            if self.run.earlier_format_steps():
                raise ConfigError(f"the checkpoints in {self.run.checkpoints} were written by an earlier gadbench "
                                  "version (state.pt), which this one does not read; rerun without --resume, or "
                                  "resume with the version that wrote them.")
            log.info("no checkpoint to resume from in %s; starting from step 0", self.run.checkpoints)
            return 0
        info = checkpoint.read_info(self.run, step)
        i, _ = self._stage_at(step)
        if step == self._stage_end(i) and i + 1 < len(self.plan):
            # a stage hand-off: the next stage starts from these weights with fresh optimizers and reference
            models = {k: m for k, m in self._models().items() if k in ("g", "d")}
            checkpoint.load(self.run, step, models)
            self._begin_stage(i + 1)
        else:
            self._begin_stage(i)
            models = {k: m for k, m in self._models().items() if k in info["parts"]}
            optimizers = {k: o for k, o in self._optimizers().items() if k in info["parts"]}
            checkpoint.load(self.run, step, models, optimizers)
        checkpoint.restore_rng(self.run, step)
        self.meter = Meter.from_state(info["meter"])
        if dist.is_main():
            truncate_jsonl(self.run.metrics, keep=sum(1 for r in read_jsonl(self.run.metrics) if r["step"] <= step))
        log.info("resumed %s from step %d (written by %d process(es))", self.spec.run_id, step, info["processes"])
        return step


def _round(metrics: dict) -> dict:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}
