"""`gadbench bench`: the speed of GAD adversarial steps on a random-initialised student and discriminator.

Nothing is downloaded. The student is a Qwen2 model built from a config (`tiny`, about 1 M parameters
plus embeddings, or shaped like Qwen2.5-0.5B: hidden 896, 24 layers, intermediate 4864, 14 heads / 2 KV
heads, vocabulary 151936, tied embeddings) with random weights; the tokenizer is the synthetic world's
word-level tokenizer with its vocabulary padded by filler words (`t<i>`) to the model's size, so every
sampled id decodes to a word that encodes back to the same id. D is built from the student as in a run
(its backbone plus a scalar head). The prompts and teacher responses are fixed-length filler text.

Each step is `gadbench.methods.gad.adversarial_step` (rollout -> D scores and one D update -> one GRPO
update with a k3 KL reference), with no warmup. CUDA runs under bf16 autocast (fp32 master weights, as
`train.precision: bf16`), CPU in fp32. Printed per step and as medians over the steps after the first:

    step_time_s           wall time of one step
    rollout_tokens_per_s  generated tokens / rollout time
    train_tokens_per_s    (G trained tokens + D trained tokens) / (step time - rollout time)
    achieved_tflops       FLOPs estimated by gadbench.budget (6PT training, 2PT inference) / step time
    mfu                   achieved FLOP/s / peak FLOP/s (--peak-tflops, or a default for the device name)
    peak_memory_mb        CUDA: torch.cuda.max_memory_allocated; CPU: peak RSS of the process (ru_maxrss)
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# Dense bf16 tensor-core peaks (TFLOP/s) by a substring of torch.cuda.get_device_name(); first match wins.
PEAK_TFLOPS_BF16 = (
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("GH200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
)
# CPU: a nominal fp32 peak per thread (2 FMA units x 8 lanes x 2 FLOP x 2.5 GHz, AVX2); pass --peak-tflops.
CPU_PEAK_TFLOPS_PER_THREAD = 0.08

SHAPES = {
    "tiny": {"hidden_size": 128, "num_hidden_layers": 2, "intermediate_size": 512, "num_attention_heads": 4,
             "num_key_value_heads": 2, "vocab_size": 4096},
    "qwen2.5-0.5b": {"hidden_size": 896, "num_hidden_layers": 24, "intermediate_size": 4864,
                     "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936},
}
# prompts per step, samples per prompt, max new tokens, prompt words. For the 0.5B shape, 4 x 8 rows keep the
# fp32 logits token_logprobs materialises (32 rows x ~390 positions x 151936 x 4 B = 7.6 GB per copy, a few
# copies live at once) well inside an 80 GB H100.
DEFAULT_BATCH = {"tiny": (4, 4, 32, 24), "qwen2.5-0.5b": (4, 8, 256, 128)}


# ----------------------------------------------------------------------------------------- building


def build_padded_tokenizer(vocab_size: int):
    """The world's word-level tokenizer (specials, world words, ChatML-like template) padded to `vocab_size`
    with filler words `t<i>`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from gadbench.worlds import student, synthetic

    words = student.SPECIALS + synthetic.vocabulary()
    if vocab_size < len(words):
        raise ValueError(f"vocab_size {vocab_size} is below the world's {len(words)} words")
    words += [f"t{i}" for i in range(vocab_size - len(words))]
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<pad>",
                                   unk_token="<unk>", bos_token=None, additional_special_tokens=["<|im_start|>"])
    fast.chat_template = student.CHAT_TEMPLATE
    return fast


def build_student(shape: str, tokenizer, device: torch.device, seed: int = 0):
    """A random-initialised fp32 Qwen2 causal LM of `shape`, created directly on `device`."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    s = SHAPES[shape]
    config = Qwen2Config(**s, tie_word_embeddings=True, max_position_embeddings=4096,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def make_spec(kind: str = "gad", discriminator: str = "online", *, prompts: int, group: int, max_new: int,
              max_prompt: int = 2048, device: str = "cpu", precision: str = "fp32", lr: float = 1e-6):
    """A RunSpec with the paper's GRPO settings (beta 0.001, clip 0.2, grad clip 0.2, temperature 0.8) and
    the given batch shape; one micro-batch per update."""
    from gadbench import config as c

    train = c.build(c.TrainConfig, dict(  # type- and range-checked like a suite's (a group of 1 is refused)
        steps=1000, warmup_steps=0, d_only_steps=0, batch_size=prompts, micro_batch_size=0, group_size=group,
        temperature=0.8, max_prompt_tokens=max_prompt, max_response_tokens=max_new, lr_sft=lr, lr_generator=lr,
        lr_warmup=lr, lr_discriminator=lr, kl_beta=0.001, clip_ratio=0.2, grad_clip=0.2, device=device,
        precision=precision), "bench (--prompts, --group-size, --max-new-tokens)", "train")
    return c.RunSpec(suite="bench", student_name="bench", student=c.ModelConfig(path="bench"), method_name=kind,
                     method=c.MethodConfig(kind=kind, discriminator=discriminator), seed=0,
                     teacher=c.TeacherConfig(), data=c.DataConfig(train=c.DatasetConfig(source="world")),
                     train=train, rollout=c.RolloutConfig(), eval=c.EvalConfig(), judge=c.JudgeConfig(),
                     budget=c.BudgetConfig())


def filler_batch(prompts: int, prompt_words: int, response_words: int, seed: int = 0) -> list:
    """`prompts` examples of fixed-length filler prompts and teacher responses (world words and `t<i>`)."""
    import random

    from gadbench.data.base import Example

    rng = random.Random(seed)
    words = lambda n: " ".join(f"t{rng.randrange(1000)}" for _ in range(n))  # noqa: E731
    return [Example(prompt=words(prompt_words), teacher_response=words(response_words), meta={"id": str(i)})
            for i in range(prompts)]


def bench_context(spec, model, tokenizer, device: torch.device, *, with_d: bool, reward_fn=None):
    """The context a run has in its method's last stage (adversarial for gad, SFT for seqkd): `build_context` on
    the given G, then that stage's optimizers and reference (`begin_stage`)."""
    from gadbench.methods import stage_plan
    from gadbench.methods.context import begin_stage, build_context
    from gadbench.models import LoadedModel

    ctx = build_context(spec, device, g=LoadedModel(model, tokenizer, "chat"), with_d=with_d, reward_fn=reward_fn)
    begin_stage(ctx, stage_plan(spec)[-1].stage, lambda g: copy.deepcopy(g).eval().requires_grad_(False))
    return ctx


class TimedEngine:
    """Wraps a rollout engine and records the wall time of its last `generate` (synchronising CUDA)."""

    def __init__(self, inner, device: torch.device):
        self.inner, self.device, self.last_s = inner, device, 0.0

    def _sync(self):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def generate(self, *args, **kwargs):
        self._sync()
        start = time.perf_counter()
        out = self.inner.generate(*args, **kwargs)
        self._sync()
        self.last_s = time.perf_counter() - start
        return out

    def update_weights(self, model) -> None:
        self.inner.update_weights(model)

    def close(self) -> None:
        self.inner.close()


def peak_tflops(device: torch.device, threads: int) -> tuple[float | None, str]:
    """(peak TFLOP/s, where it came from) for `device`; None when the GPU is not in the table."""
    import torch

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, value in PEAK_TFLOPS_BF16:
            if key in name:
                return value, f"{name}, dense bf16"
        return None, f"{name} not in the table; pass --peak-tflops"
    return CPU_PEAK_TFLOPS_PER_THREAD * threads, f"nominal CPU fp32, {threads} thread(s) x 0.08"


# ---------------------------------------------------------------------------------------------- run


def run_bench(device: str = "cpu", shape: str = "tiny", steps: int = 3, prompts: int | None = None,
              group: int | None = None, max_new: int | None = None, prompt_words: int | None = None,
              threads: int = 0, peak: float | None = None, seed: int = 0, log=print) -> dict:
    """Build, run `steps` GAD adversarial steps and return the summary (medians over steps after the first)."""
    import torch

    from gadbench.methods.gad import adversarial_step
    from gadbench.runtime import pick_device

    dev = pick_device(device)
    if dev.type == "cpu" and threads:
        torch.set_num_threads(threads)
    P, G, L, W = (a if a else b for a, b in zip((prompts, group, max_new, prompt_words), DEFAULT_BATCH[shape],
                                                strict=True))
    precision = "bf16" if dev.type == "cuda" else "fp32"
    t0 = time.perf_counter()
    tok = build_padded_tokenizer(SHAPES[shape]["vocab_size"])
    model = build_student(shape, tok, dev, seed)
    spec = make_spec(prompts=P, group=G, max_new=L, device=dev.type, precision=precision)
    ctx = bench_context(spec, model, tok, dev, with_d=True)
    ctx.engine = TimedEngine(ctx.engine, dev)
    batch = filler_batch(P, W, L, seed)
    setup_s = time.perf_counter() - t0
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    peak_value, peak_src = (peak, "--peak-tflops") if peak else peak_tflops(dev, torch.get_num_threads())
    log(f"gadbench bench: {shape} on {dev.type} ({precision}), G {ctx.g_params / 1e6:.1f}M params, "
        f"D {ctx.d_params / 1e6:.1f}M params, {P} prompts x {G} samples, <= {L} new tokens, "
        f"threads {torch.get_num_threads()}, setup {setup_s:.1f} s")
    rows = []
    for k in range(steps):
        start = time.perf_counter()
        metrics, spend = adversarial_step(ctx, batch, k + 1, k)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        wall = time.perf_counter() - start
        roll = ctx.engine.last_s
        trained = spend.g_trained_tokens + spend.d_trained_tokens
        row = {"step": k + 1, "step_time_s": wall, "rollout_s": roll,
               "rollout_tokens_per_s": spend.generated_tokens / roll,
               "train_tokens_per_s": trained / max(wall - roll, 1e-9),
               "achieved_tflops": spend.flops / wall / 1e12, "generated_tokens": spend.generated_tokens,
               "trained_tokens": trained, "flops": spend.flops, "pg_loss": metrics["pg_loss"],
               "d_loss": metrics["d_loss"]}
        if peak_value:
            row["mfu"] = row["achieved_tflops"] / peak_value
        rows.append(row)
        log(f"step {k + 1}: {wall:.3f} s (rollout {roll:.3f} s, {spend.generated_tokens} tokens generated, "
            f"{trained} trained), {row['achieved_tflops']:.4g} TFLOP/s")
    measured = rows[1:] if len(rows) > 1 else rows
    summary = {k: statistics.median(r[k] for r in measured) for k in
               ("step_time_s", "rollout_s", "rollout_tokens_per_s", "train_tokens_per_s", "achieved_tflops")}
    if peak_value:
        summary["mfu"] = statistics.median(r["mfu"] for r in measured)
    if dev.type == "cuda":
        summary["peak_memory_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
        memory_src = "torch.cuda.max_memory_allocated"
    else:
        summary["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        memory_src = "peak RSS of the process (ru_maxrss)"
    return {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "shape": shape,
            "precision": precision, "prompts": P, "group_size": G, "max_new_tokens": L, "prompt_words": W,
            "threads": torch.get_num_threads(), "g_params": ctx.g_params, "d_params": ctx.d_params,
            "peak_tflops": peak_value, "peak_source": peak_src, "memory_source": memory_src,
            "measured_steps": f"median of steps {measured[0]['step']}..{measured[-1]['step']}",
            "setup_s": setup_s, "summary": summary, "steps": rows}


def print_summary(result: dict, out=None) -> None:
    out = out or sys.stdout
    s = result["summary"]
    print(f"\n{result['measured_steps']} ({result['device']}, {result['precision']}):", file=out)
    print(f"step_time_s: {s['step_time_s']:.4f}", file=out)
    print(f"rollout_tokens_per_s: {s['rollout_tokens_per_s']:.1f}", file=out)
    print(f"train_tokens_per_s: {s['train_tokens_per_s']:.1f}", file=out)
    print(f"achieved_tflops: {s['achieved_tflops']:.6g}", file=out)
    if "mfu" in s:
        print(f"mfu: {s['mfu']:.6f} (peak {result['peak_tflops']:g} TFLOP/s, {result['peak_source']})", file=out)
    else:
        print(f"mfu: n/a ({result['peak_source']})", file=out)
    print(f"peak_memory_mb: {s['peak_memory_mb']:.1f} ({result['memory_source']})", file=out)


def bad_option(args) -> str | None:
    """The first option outside its range, as a sentence naming it and the fix; None when all are fine."""
    from gadbench.io import file_problem

    if args.steps < 1:
        return "--steps must be at least 1."
    for name in ("prompts", "max_new_tokens", "prompt_words", "threads"):
        if getattr(args, name) < 0:
            return f"--{name.replace('_', '-')} must be 0 (the default) or more."
    if args.group_size == 1 or args.group_size < 0:
        return "--group-size must be 0 (the default) or at least 2 (GRPO compares samples within a group)."
    if args.peak_tflops is not None and not (math.isfinite(args.peak_tflops) and args.peak_tflops > 0):
        return "--peak-tflops must be a number above 0."
    if args.json and (problem := file_problem(args.json)):
        return f"--json {args.json}: {problem}; pass a file path in a folder you can write to."
    return None


def run(args) -> int:
    import torch

    from gadbench import print_error

    if problem := bad_option(args):
        return print_error(problem)
    if args.device == "cuda" and not torch.cuda.is_available():
        return print_error("--device cuda, but no CUDA GPU is visible; run it on a GPU machine, or use --device cpu.")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = run_bench(args.device, args.model_shape, args.steps, args.prompts, args.group_size,
                       args.max_new_tokens, args.prompt_words, args.threads, args.peak_tflops, args.seed)
    print_summary(result)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("bench", help="time GAD steps on a random-initialised student (no download)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--model-shape", choices=tuple(SHAPES), default="tiny")
    p.add_argument("--steps", type=int, default=3, help="GAD steps; the first is excluded from the medians")
    p.add_argument("--prompts", type=int, default=0, help="prompts per step (default per shape)")
    p.add_argument("--group-size", type=int, default=0, help="samples per prompt (default per shape)")
    p.add_argument("--max-new-tokens", type=int, default=0, help="rollout length limit (default per shape)")
    p.add_argument("--prompt-words", type=int, default=0, help="prompt length in words (default per shape)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    p.add_argument("--peak-tflops", type=float, default=None, help="peak device TFLOP/s for the MFU")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the result to this JSON file")
    p.set_defaults(func=run)
