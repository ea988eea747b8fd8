"""`gadbench bench`: time GAD steps on a random-initialised student and discriminator (gadbench.bench)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import gadbench.bench


def run(args) -> int:
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gadbench bench: --device cuda but no CUDA GPU is visible", file=sys.stderr)
        return 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = gadbench.bench.run_bench(args.device, args.model_shape, args.steps, args.prompts, args.group_size,
                                      args.max_new_tokens, args.prompt_words, args.threads, args.peak_tflops, args.seed)
    gadbench.bench.print_summary(result)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("bench", help="time GAD steps on a random-initialised student (no download)",
                              description=gadbench.bench.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--model-shape", choices=tuple(gadbench.bench.SHAPES), default="tiny")
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
