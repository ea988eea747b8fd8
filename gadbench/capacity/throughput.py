"""How long a suite takes on a stated launch (estimates): hours per run and per suite from the plan's token and
FLOP counts (gadbench.methods.cost, under the budget's assumed lengths) and per-GPU rates, each with its source.

A run's steps run one after the other on all N GPUs of the launch; per run:

    rollout_s  = generated tokens / (N x vLLM tokens/s per GPU at the student's size)
    compute_s  = (FLOPs - rollout FLOPs) / (N x peak FLOP/s x MFU)     training, D scoring, reference
    gpu_s      = (rollout_s + compute_s) x overhead                     refit, log-probs, the longest rollout
    eval_gen_s = evaluation points x items x answer tokens / (N x vLLM tokens/s per GPU)
    judge_s    = judge calls / (judge.concurrency / seconds per call)
    wait_s     = judge_s when judging is synchronous; in the background (eval.judge_in_background), the larger of
                 one evaluation point's judging (the last, which the run waits for) and judge_s - the GPU time
    hours      = rollout_s + compute_s + eval_gen_s (with the overhead) + wait_s

vLLM tokens/s per GPU is taken as inversely proportional to the student's parameters (decoding reads the weights
once per step for the whole batch; an estimate), from a figure at a reference size. `overhead` is what a
published end-to-end GRPO step of NeMo-RL took against what the same formulas give for it (`calibration`),
so the figures below are not fitted to the paper. Checkpoint writes, model loading and engine starts are not
counted; nor is CPU offload's slowdown (the 14B student's `cpu_offload`).
"""

from __future__ import annotations

from dataclasses import dataclass

from gadbench import GadbenchError
from gadbench.budget import inference_flops


class ThroughputPlanError(GadbenchError, ValueError):
    """A launch the throughput model cannot price (an unknown GPU kind, a process count below 1)."""


@dataclass(frozen=True)
class Rate:
    """A number with its unit and where it comes from."""

    value: float
    unit: str
    source: str


@dataclass(frozen=True)
class GpuRates:
    """What one GPU of a kind does: dense bf16 peak, the MFU of FSDP training, vLLM's decoding rate for a model
    of `rollout_params` parameters."""

    kind: str
    peak_tflops: Rate
    train_mfu: Rate
    rollout_tokens_per_s: Rate
    rollout_params: float


FMS_FSDP = ("foundation-model-stack/fms-fsdp README (IBM), FSDP/HSDP training throughput table: "
            "https://github.com/foundation-model-stack/fms-fsdp")
VLLM_8B_H100 = Rate(12_500.0, "output tokens/s per GPU",
                    "Llama-3.1-8B bf16 on 1x H100 80GB with vLLM (FlashInfer, gpu_memory_utilization 0.8), ~12,500 "
                    "output tokens/s: third-party compilation, https://www.morphllm.com/vllm-benchmarks (2026)")

RATES: dict[str, GpuRates] = {
    "h100": GpuRates(
        "h100",
        Rate(989.0, "TFLOP/s", "NVIDIA H100 SXM datasheet, dense BF16 tensor core"),
        Rate(0.30, "MFU", "Llama-2 7B HSDP 7,500 tokens/s/GPU and 34B FSDP with full activation checkpointing "
                          "1,550 tokens/s/GPU on H100 = 0.31 and 0.32 of 989 TFLOP/s at 6 P T; " + FMS_FSDP),
        VLLM_8B_H100, 8.03e9),
    "h200": GpuRates(
        "h200",
        Rate(989.0, "TFLOP/s", "NVIDIA H200 SXM datasheet, dense BF16 tensor core (the H100's compute)"),
        Rate(0.30, "MFU", "the H100's figure (no published FSDP figure on H200 found; its extra memory "
                          "bandwidth is not credited)"),
        Rate(12_500.0, "output tokens/s per GPU", "the H100's figure (no like-for-like H200 vLLM figure found; "
                                                  "H200's 4.8 TB/s against 3.35 would raise it)"), 8.03e9),
    "a100": GpuRates(
        "a100",
        Rate(312.0, "TFLOP/s", "NVIDIA A100 SXM datasheet, dense BF16 tensor core"),
        Rate(0.48, "MFU", "Llama-2 7B HSDP 3,700 tokens/s/GPU on A100 80GB = 0.48 of 312 TFLOP/s at 6 P T; "
                          + FMS_FSDP),
        Rate(6_250.0, "output tokens/s per GPU", "half the H100's figure: the same source's A100 vs H100 ratio "
                                                 "for vLLM, ~2x (LambdaLabsML/vllm-benchmark, benchmark_v0.md)"),
        8.03e9),
}

# A published GRPO step (NeMo-RL v0.4 performance summary, docs/about/performance-summary.md,
# https://docs.nvidia.com/nemo/rl/latest/about/performance-summary.html): Llama-3.1-8B, on-policy, 16 x H100,
# 2,048 samples per step, average sequence 1,060 tokens, 97.7 s per step (generation, policy and reference
# log-probs, training, refit). Its prompt length is not published: all 1,060 tokens are counted as generated,
# which makes the formulas' time for it an upper bound, so the overhead below is a lower bound.
NEMO_RL_STEP = {"gpu": "h100", "gpus": 16, "params": 8.03e9, "samples": 2048, "tokens": 1060, "step_s": 97.7,
                "passes": 2}

# GPT-4o through OpenAI's API: 0.39 s to the first token and 81 output tokens/s (Artificial Analysis, GPT-4o
# (May '24) providers page, https://artificialanalysis.ai/models/gpt-4o-2024-05-13/providers, medians).
JUDGE_TTFT_S = Rate(0.39, "s", "GPT-4o on OpenAI, Artificial Analysis (median)")
JUDGE_TOKENS_PER_S = Rate(81.0, "output tokens/s", "GPT-4o on OpenAI, Artificial Analysis (median)")


def rates_of(kind: str) -> GpuRates:
    if kind not in RATES:
        raise ThroughputPlanError(f"--gpu {kind!r} has no rates; give one of {', '.join(RATES)}.")
    return RATES[kind]


def rollout_rate(rates: GpuRates, params: float) -> float:
    """vLLM output tokens/s per GPU for a model of `params` parameters: the reference figure x reference size / size."""
    return rates.rollout_tokens_per_s.value * rates.rollout_params / params


def flop_rate(rates: GpuRates) -> float:
    """Achieved training FLOP/s per GPU: peak x MFU."""
    return rates.peak_tflops.value * 1e12 * rates.train_mfu.value


def raw_step_s(rates: GpuRates, gpus: int, params: float, generated: float, other_flops: float) -> float:
    """Rollout plus compute seconds of one step, before the overhead."""
    return generated / (gpus * rollout_rate(rates, params)) + other_flops / (gpus * flop_rate(rates))


def calibration(step: dict = NEMO_RL_STEP, rates: GpuRates | None = None) -> float:
    """The published step time over the formulas' time for it: train 6 P T plus `passes` inference passes 2 P T
    (policy and reference log-probs), and every token generated."""
    tokens = step["samples"] * step["tokens"]
    flops = (6 + 2 * step["passes"]) * step["params"] * tokens
    return step["step_s"] / raw_step_s(rates or RATES[step["gpu"]], step["gpus"], step["params"], tokens, flops)


def judge_seconds_per_call(completion_tokens: int) -> float:
    return JUDGE_TTFT_S.value + completion_tokens / JUDGE_TOKENS_PER_S.value


def run_hours(spec, row: dict, rates: GpuRates, gpus: int, overhead: float, judge_calls: int,
              judge_completion_tokens: int) -> dict:
    """Seconds of one run's phases (see the module docstring) and its hours; `row` is the plan's row for it."""
    from gadbench.methods.cost import shape

    if gpus < 1:
        raise ThroughputPlanError(f"--gpus {gpus}: a launch needs at least 1 process; give --gpus N with N >= 1.")
    _, _, seq, response = shape(spec)
    p = row["params"]
    rollout_flops = inference_flops(p, row["generated_tokens"] * seq // response)
    rollout_s = row["generated_tokens"] / (gpus * rollout_rate(rates, p))
    compute_s = (row["flops"] - rollout_flops) / (gpus * flop_rate(rates))
    answer = min(spec.budget.assumed_response_tokens, spec.eval.max_new_tokens)
    eval_tokens = row["eval_answers"] * answer
    eval_s = eval_tokens / (gpus * rollout_rate(rates, p))
    judge_s = judge_calls * judge_seconds_per_call(judge_completion_tokens) / spec.judge.concurrency
    gpu_s = (rollout_s + compute_s + eval_s) * overhead
    points = max(row["eval_points"], 1)
    # in the background, judging waits on the GPUs only for the last point, or where it cannot keep up
    waits = max(judge_s / points, judge_s - gpu_s) if spec.eval.judge_in_background else judge_s
    phases = {"rollout_s": rollout_s * overhead, "compute_s": compute_s * overhead, "eval_gen_s": eval_s * overhead,
              "judge_s": judge_s, "judge_wait_s": waits if judge_s else 0.0}
    total = gpu_s + phases["judge_wait_s"]
    return {**phases, "step_s": (rollout_s + compute_s) * overhead / max(row["steps"], 1), "hours": total / 3600,
            "gpu_hours": total / 3600 * gpus}


def suite_hours(suite, p: dict, gpu: str, gpus: int, judge_completion_tokens: int) -> dict:
    """Per run and for the whole suite (runs one after the other on the same GPUs): the phases' estimated
    seconds, hours and GPU-hours, the overhead and every rate with its source."""
    from gadbench.judge.records import JUDGES
    from gadbench.suite import runs_of

    rates, overhead = rates_of(gpu), calibration()
    specs = {r.run_id: r for r in runs_of(suite)}
    per_item = sum(JUDGES[j].calls_per_item for j in p["llm_judges"])
    runs = []
    for row in p["runs"]:
        spec = specs[row["run_id"]]
        answers = p["eval_items"] * len(row["eval_steps"])
        est = run_hours(spec, {**row, "eval_answers": answers, "eval_points": len(row["eval_steps"])}, rates, gpus,
                        overhead, per_item * answers, judge_completion_tokens)
        runs.append({"run_id": row["run_id"], **est})
    hours = sum(r["hours"] for r in runs)
    return {"gpu": gpu, "gpus": gpus, "overhead": overhead, "runs": runs, "hours": hours, "gpu_hours": hours * gpus,
            "rates": rates, "judge_s_per_call": judge_seconds_per_call(judge_completion_tokens)}
