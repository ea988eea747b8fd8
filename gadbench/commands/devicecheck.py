"""The device check's two halves (`scripts/gpu_check.sh` runs them around a real `gadbench run`):

    python -m gadbench.commands.devicecheck prepare DIR [--shape qwen2.5-0.5b] [--device cuda] [--processes N] ...
    python -m gadbench.commands.devicecheck report DIR

`prepare` writes, with nothing downloaded: a student with random weights (`gadbench bench`'s shapes and padded
word-level tokenizer, so every filler word `t<i>` is one token and the lengths are exact), a JSONL of filler
prompts and teacher responses at the paper's lengths (prompts close to train.max_prompt_tokens 2,048; random
weights almost never emit EOS, so every rollout runs to its 1,536 new tokens), and a suite of GAD adversarial
steps on them with the paper suite's settings (group 8, bf16, FSDP, colocated vLLM when `vllm` imports, else
the `hf` engine, which the report then says) scaled to `--prompts-per-process` prompts per process.

`report` reads the run's metrics.jsonl and prints the measured medians over the steps after the first: step
time, rollout and training tokens/s, MFU against the GPU's dense bf16 peak, and each phase's peak memory where
the run recorded it (train.log_memory, when this version has it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

PROMPT_TOKENS, RESPONSE_TOKENS, GROUP = 2048, 1536, 8
TEMPLATE_TOKENS = 16  # room left for the chat template's own tokens (prompts) and EOS (teacher responses)


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def filler(rng, words: int) -> str:
    """`words` filler words `t0`..`t999`, one token each in the padded tokenizer of every shape."""
    return " ".join(f"t{rng.randrange(1000)}" for _ in range(words))


def prepare(out: Path, shape: str, device: str, processes: int, prompts_per_process: int, steps: int,
            prompt_tokens: int, response_tokens: int, micro_batch: int, engine: str | None) -> dict:
    """Write DIR/model, DIR/train.jsonl, DIR/eval.jsonl and DIR/check.yaml; return what was chosen."""
    import random

    import torch
    import yaml

    from gadbench.commands.bench import SHAPES, build_padded_tokenizer, build_student
    from gadbench.config.schema import TrainConfig

    out.mkdir(parents=True, exist_ok=True)
    tok = build_padded_tokenizer(SHAPES[shape]["vocab_size"])
    model = build_student(shape, tok, torch.device("cpu"))
    model.save_pretrained(out / "model")
    tok.save_pretrained(out / "model")
    rng = random.Random(0)
    prompt_words = prompt_tokens - TEMPLATE_TOKENS
    batch = prompts_per_process * processes
    for name, rows in (("train", batch * (steps + 1)), ("eval", processes)):
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for i in range(rows):
                f.write(json.dumps({"id": f"{name}-{i}", "prompt": filler(rng, prompt_words),
                                    "response": filler(rng, max(response_tokens // 2, response_tokens - TEMPLATE_TOKENS))}) + "\n")
    engine = engine or ("vllm" if vllm_available() else "hf")
    cuda = device == "cuda"
    train = {"steps": steps, "warmup_steps": 0, "d_only_steps": 0, "batch_size": batch, "group_size": GROUP,
             "micro_batch_size": micro_batch, "temperature": 0.8, "max_prompt_tokens": prompt_tokens,
             "max_response_tokens": response_tokens, "lr_generator": 1.0e-6, "lr_discriminator": 1.0e-6,
             "kl_beta": 0.001, "clip_ratio": 0.2, "grad_clip": 0.2, "checkpoint_every": 10_000, "device": device,
             "precision": "bf16" if cuda else "fp32", "gradient_checkpointing": cuda,
             "sharding": "fsdp"}  # as the paper suite: a no-op on one process
    if "log_memory" in TrainConfig.__dataclass_fields__:
        train["log_memory"] = True
    rollout = {"engine": engine, "tensor_parallel_size": 1, "sleep": True}
    if engine == "vllm" and not cuda:
        rollout["enforce_eager"] = True
    suite = {
        "name": "device-check",
        "description": "GAD adversarial steps at the paper's lengths on a random-weight student (scripts/gpu_check.sh)",
        "seeds": [0],
        "students": {"random": {"path": str((out / "model").resolve()), "template": "chat"}},
        "teacher": {"spec": "dataset"},
        "methods": {"gad": {"kind": "gad", "description": "adversarial steps only"}},
        "data": {"train": {"source": "jsonl", "path": str((out / "train.jsonl").resolve())},
                 "eval": {"check": {"source": "jsonl", "path": str((out / "eval.jsonl").resolve())}},
                 "validation_size": processes},
        "train": train,
        "rollout": rollout,
        "eval": {"every": 10_000, "start": 10_000, "max_new_tokens": 16, "judges": ["rouge-l"],
                 "selection": "last"},
        "budget": {"match": "steps", "assumed_prompt_tokens": prompt_tokens,
                   "assumed_response_tokens": response_tokens},
    }
    (out / "check.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    return {"engine": engine, "batch": batch, "params": sum(p.numel() for p in model.parameters())}


def measured(rows: list[dict], totals: dict, peak_tflops: float | None) -> dict:
    """Medians over the training rows after the first (which includes compilation and the engine's first wake)
    of the step time and the rollout time; per step, the run's totals (budget.json, summed over the processes)
    over its steps, which are equal here (every rollout runs to its limit). From them: rollout tokens/s
    (generated / rollout time), training tokens/s (G and D trained tokens / the rest of the step), achieved
    TFLOP/s (the budget's FLOP estimate / step time), MFU (against `peak_tflops`, of all the GPUs), and each
    `mem/<phase>` peak (GiB, process 0)."""
    steps = [r for r in rows if "step_time" in r]
    if not steps:
        raise ValueError("metrics.jsonl has no training step rows")
    later = steps[1:] or steps
    step_s = statistics.median(r["step_time"] for r in later)
    rollout_s = statistics.median(r["time/rollout"] for r in later)
    per_step = {k: totals[k] / totals["steps"] for k in ("generated_tokens", "g_trained_tokens",
                                                          "d_trained_tokens", "flops")}
    out = {"steps": len(steps), "measured_steps": len(later), "step_time_s": step_s, "rollout_s": rollout_s,
           "rollout_tokens_per_s": per_step["generated_tokens"] / rollout_s,
           "train_tokens_per_s": (per_step["g_trained_tokens"] + per_step["d_trained_tokens"]) / (step_s - rollout_s),
           "achieved_tflops": per_step["flops"] / step_s / 1e12}
    if peak_tflops:
        out["mfu"] = out["achieved_tflops"] / peak_tflops
    mem = sorted({k for r in later for k in r if k.startswith("mem/")})
    out["memory_gib"] = {k[4:]: max(r[k] for r in later if k in r) for k in mem}
    return out


def peak_of(device: str) -> tuple[float | None, str]:
    """Dense bf16 peak TFLOP/s of GPU 0 (gadbench bench's table); on CPU, none."""
    if device != "cuda":
        return None, "cpu: no peak, no MFU"
    import torch

    from gadbench.commands.bench import PEAK_TFLOPS_BF16

    name = torch.cuda.get_device_name(0)
    return next((v for k, v in PEAK_TFLOPS_BF16 if k in name), None), name


def report(out: Path, device: str, file=None, gpu: tuple[float | None, str] | None = None) -> dict:
    """Print and return the measured summary of the check's run under DIR/results; `gpu` (peak TFLOP/s, name)
    defaults to GPU 0's."""
    from gadbench.io import read_json, read_jsonl

    file = file or sys.stdout
    run_dirs = [p.parent for p in (out / "results").glob("*/*/metrics.jsonl")]
    if len(run_dirs) != 1:
        raise FileNotFoundError(f"expected one run with metrics.jsonl under {out / 'results'}, found {len(run_dirs)}")
    run = run_dirs[0]
    budget = read_json(run / "budget.json")
    peak, name = gpu or peak_of(device)
    config = read_json(out / "chosen.json")
    m = measured(read_jsonl(run / "metrics.jsonl"), budget["totals"], peak and peak * config["processes"])
    print(f"\nMEASURED ({name}; engine {config['engine']}; {config['processes']} process(es); median of "
          f"{m['measured_steps']} step(s) after the first):", file=file)
    print(f"  step_time_s          {m['step_time_s']:.2f}", file=file)
    print(f"  rollout_s            {m['rollout_s']:.2f}", file=file)
    print(f"  rollout_tokens_per_s {m['rollout_tokens_per_s']:.0f} (all processes)", file=file)
    print(f"  train_tokens_per_s   {m['train_tokens_per_s']:.0f} (G and D, all processes)", file=file)
    print(f"  achieved_tflops      {m['achieved_tflops']:.3f} (all processes)", file=file)
    mfu = f"{m['mfu']:.3f} (of {peak:g} TFLOP/s dense bf16 per GPU)" if "mfu" in m else f"n/a ({name})"
    print(f"  mfu                  {mfu}", file=file)
    if m["memory_gib"]:
        print("  peak memory, process 0 (GiB): " + ", ".join(f"{k} {v:.2f}" for k, v in m["memory_gib"].items()),
              file=file)
    else:
        print("  peak memory per phase: not recorded (this version has no train.log_memory)", file=file)
    kind = next((k for k in ("h100", "h200", "a100") if k in name.lower()), None) if device == "cuda" else None
    if device != "cuda":
        print("PREDICTED: none on CPU (the throughput model prices GPUs)", file=file)
    elif kind:
        m["predicted"] = predicted(out, kind, config["processes"])
        p = m["predicted"]
        print(f"PREDICTED by the throughput model (gadbench/capacity/throughput.py, {config['processes']} x {kind}, vLLM rates"
              f"{'' if config['engine'] == 'vllm' else '; this run used hf'}): step_time_s {p['step_s']:.2f} "
              f"(rollout {p['rollout_s']:.2f}, the rest {p['compute_s']:.2f}; overhead x{p['overhead']:.2f} "
              f"included), measured / predicted {m['step_time_s'] / p['step_s']:.2f}", file=file)
    else:
        print(f"PREDICTED: the throughput model has no rates for {name}", file=file)
    (out / "measured.json").write_text(json.dumps(m, indent=2) + "\n")
    return m


def predicted(out: Path, kind: str, processes: int) -> dict:
    """The throughput model's seconds per step of the check's own suite (rollout, the rest, both with the
    overhead) on `processes` GPUs of `kind`."""
    from gadbench.capacity.throughput import suite_hours
    from gadbench.config import read_suite_file
    from gadbench.runner import ASSUMED_JUDGE_TOKENS, plan

    suite = read_suite_file(out / "check.yaml", [])
    p = plan(suite)
    t = suite_hours(suite, p, kind, processes, ASSUMED_JUDGE_TOKENS[1])
    run, steps = t["runs"][0], p["runs"][0]["steps"]
    return {"step_s": run["step_s"], "rollout_s": run["rollout_s"] / steps, "compute_s": run["compute_s"] / steps,
            "overhead": t["overhead"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gadbench.commands.devicecheck", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    a = sub.add_parser("prepare")
    a.add_argument("dir", type=Path)
    a.add_argument("--shape", default="qwen2.5-0.5b")
    a.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    a.add_argument("--processes", type=int, default=1)
    a.add_argument("--prompts-per-process", type=int, default=8)
    a.add_argument("--steps", type=int, default=3)
    a.add_argument("--prompt-tokens", type=int, default=PROMPT_TOKENS)
    a.add_argument("--response-tokens", type=int, default=RESPONSE_TOKENS)
    a.add_argument("--micro-batch", type=int, default=2)
    a.add_argument("--engine", choices=("vllm", "hf"), default=None, help="default: vllm when it imports, else hf")
    r = sub.add_parser("report")
    r.add_argument("dir", type=Path)
    r.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    args = p.parse_args(argv)
    if args.what == "prepare":
        chosen = prepare(args.dir, args.shape, args.device, args.processes, args.prompts_per_process, args.steps,
                         args.prompt_tokens, args.response_tokens, args.micro_batch, args.engine)
        chosen["processes"] = args.processes
        (args.dir / "chosen.json").write_text(json.dumps(chosen) + "\n")
        print(f"device check: {args.shape} ({chosen['params'] / 1e6:.0f}M parameters, random weights), "
              f"{chosen['batch']} prompts x {GROUP} samples per step over {args.processes} process(es), prompts of "
              f"{args.prompt_tokens} tokens, {args.response_tokens} new tokens, engine {chosen['engine']}"
              + ("" if chosen["engine"] == "vllm" else " (vllm does not import here: the hf path runs instead)"))
        return 0
    report(args.dir, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
