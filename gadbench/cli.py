"""The `gadbench` command."""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
from pathlib import Path

from tabulate import tabulate

from gadbench import GadbenchError
from gadbench.config import ConfigError


def _human(x: float) -> str:
    for unit, div in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.1f}{unit}"
    return f"{x:.0f}"


PORTABLE_CPU = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}


def pin_portable_cpu_numerics() -> None:
    """Pin x86 CPU kernels to their AVX2 code paths: ATen's kernel dispatch and MKL's conditional numerical
    reproducibility. The same CPU run then gives the same bits on AVX2 and AVX-512 machines (Intel or AMD),
    where otherwise the vector width changes rounding and, compounded over training, the numbers. torch
    reads both settings at its first operation, so this must run before any tensor is made (building the
    parser imports no torch); values already in the environment win."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        for k, v in PORTABLE_CPU.items():
            os.environ.setdefault(k, v)


def cmd_run(args) -> int:
    from gadbench.config import get_suite

    suite = get_suite(args.suite, args.set or [])
    if suite.train.portable_cpu:
        pin_portable_cpu_numerics()
    from gadbench.memory import launch_of, plan_text
    from gadbench.runner import plan, run_suite

    if args.dry_run:
        if suite.toy is not None:
            print(f"suite {suite.name}: the Fig. 5 toy, seeds {list(suite.seeds)}, {suite.toy.steps} steps per method")
            return 0
        print_plan(plan(suite))
        print(plan_text(suite, launch_of(suite.train.device, args.gpus, args.gpu_mem, args.accelerate_config)))
        return 0
    from gadbench import dist

    if args.quiet or not sys.stderr.isatty():  # library progress bars only on a terminal, never with -q
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    dist.init()
    if not dist.is_main():  # one log, from process 0; warnings from every process
        logging.getLogger("gadbench").setLevel(logging.WARNING)
    suite_dir = run_suite(suite, Path(args.out), resume=args.resume, progress=not args.quiet,
                          skip_locked=args.skip_locked, memory_check=not args.no_memory_check)
    main_process = dist.is_main()
    dist.close()
    if not main_process:
        return 0
    from gadbench.report import build_report

    report = build_report(suite_dir)
    print(f"results: {suite_dir}\nreport:  {report}")
    if suite.baseline:
        from gadbench.report.regression import compare_to_baseline

        return compare_to_baseline(suite_dir, Path(suite.baseline), update=args.update_baseline)
    return 0


def print_plan(p: dict) -> None:
    rows = [[r["student"], r["method"], r["seed"], r["stages"], _human(r["params"]), _human(r["generated_tokens"]),
             _human(r["g_trained_tokens"]), _human(r["d_trained_tokens"]), _human(r["flops"])] for r in p["runs"]]
    print(f"suite {p['suite']}: {len(rows)} runs (student x method x seed)\n")
    print(tabulate(rows, headers=["student", "method", "seed", "stages (steps)", "params", "generated tok",
                                  "G trained tok", "D trained tok", "FLOPs"], tablefmt="github"))
    ref = max((r["flops"] for r in p["runs"]), default=0) or 1
    print("\nmatched budget (FLOPs relative to the most expensive run):")
    print(tabulate([[r["run_id"], f"{r['flops'] / ref:.2f}"] for r in p["runs"]], headers=["run", "FLOPs ratio"],
                   tablefmt="github"))
    judges = ", ".join(p["llm_judges"]) or "offline only"
    cost = p["judge_cost_usd"]
    cost = "unknown (no list price for judge.model: set judge.price_per_mtok)" if cost is None else f"${cost:.2f}"
    print(f"\njudge calls: {p['judge_calls']} ({judges}; {p['eval_items']} items x {p['eval_points_per_run']} "
          f"eval points per run), estimated cost {cost}")


def cmd_suites(args) -> int:
    from gadbench.config import explain, get_suite, runs_of, suite_names
    from gadbench.runner import plan

    if args.explain is not None:
        print("\n".join(explain(args.explain)))
        return 0

    rows = []
    for name in suite_names():
        try:
            s = get_suite(name)
        except ConfigError as e:
            rows.append([name, f"(invalid: {e})", "", ""])
            continue
        if s.toy is not None:
            rows.append([name, s.description, len(s.seeds), f"{s.toy.steps} steps/method, seconds on a CPU"])
            continue
        flops = sum(r["flops"] for r in plan(s)["runs"])
        rows.append([name, s.description, len(runs_of(s)), f"{s.train.steps} steps/run, {_human(flops)} FLOPs"])
    print(tabulate(rows, headers=["suite", "description", "runs", "budget"], tablefmt="github"))
    return 0


def cmd_doctor(args) -> int:
    import importlib.util

    import torch

    rows = [["torch", torch.__version__], ["CUDA", f"{torch.cuda.device_count()} GPU(s)" if torch.cuda.is_available() else "not available"]]
    rows.append(["vllm", "installed" if importlib.util.find_spec("vllm") else "not installed (pip install gadbench[vllm])"])
    for pkg in ("transformers", "accelerate", "openai", "lm_eval", "trl"):
        spec = importlib.util.find_spec(pkg)
        rows.append([pkg, getattr(__import__(pkg), "__version__", "installed") if spec else "not installed"])
    key_env = args.api_key_env
    rows.append([f"${key_env}", "set" if os.environ.get(key_env) else "not set"])
    if args.judge_url:
        rows.append(["judge endpoint", _reachable(args.judge_url)])
    print(tabulate(rows, headers=["check", "status"], tablefmt="github"))
    return 0


def _reachable(url: str) -> str:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url.rstrip("/") + "/models", timeout=5) as r:
            return f"reachable (HTTP {r.status})"
    except urllib.error.HTTPError as e:
        return f"reachable (HTTP {e.code})"
    except (urllib.error.URLError, OSError) as e:
        return f"unreachable ({getattr(e, 'reason', e)})"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gadbench", description="Black-box on-policy distillation benchmark (GAD, SeqKD, ablations).")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="train, evaluate and report a suite")
    r.add_argument("--suite", required=True, help="suite name (see `gadbench suites`) or a YAML path")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting, e.g. train.steps=20")
    r.add_argument("--out", default="results", help="results root (default: results)")
    r.add_argument("--dry-run", action="store_true", help="print the plan without loading models")
    r.add_argument("--resume", action="store_true", help="continue from the last complete checkpoints")
    r.add_argument("--skip-locked", action="store_true",
                   help="skip the runs that another process is writing (default: stop at once)")
    r.add_argument("--update-baseline", action="store_true", help="rewrite the suite's regression baseline")
    r.add_argument("--gpus", type=int, metavar="N", help="--dry-run: plan memory for N processes, one GPU each")
    r.add_argument("--gpu-mem", type=float, metavar="GB", help="--dry-run: memory of each GPU, GiB (e.g. 80)")
    r.add_argument("--accelerate-config", metavar="FILE",
                   help="--dry-run: plan memory for this accelerate config's processes and machines")
    r.add_argument("--no-memory-check", action="store_true",
                   help="start even when the predicted memory exceeds the device (docs/scale.md)")
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("suites", help="list suites with their runs and budgets, or explain settings")
    s.add_argument("--explain", nargs="?", const="", metavar="KEY",
                   help="print what a setting (or group, e.g. train) means, its default and the paper's value")
    s.set_defaults(func=cmd_suites)

    d = sub.add_parser("doctor", help="check torch, CUDA, vllm, judge endpoint and API key (never printed)")
    d.add_argument("--judge-url", help="an OpenAI-compatible base URL to probe, e.g. http://127.0.0.1:8000/v1")
    d.add_argument("--api-key-env", default="OPENAI_API_KEY")
    d.set_defaults(func=cmd_doctor)

    from gadbench import bench, report
    from gadbench.eval import cli as eval_cli
    from gadbench.llm import serve
    from gadbench.teachers import collect

    for module in (report, collect, serve, eval_cli, bench):  # each imports its heavy parts when it runs
        module.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "httpx2", "transformers", "urllib3", "openai"):  # httpx2: the HTTP client of openai>=3
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (GadbenchError, FileNotFoundError) as e:  # the errors gadbench raises on purpose: one line
        print(f"gadbench: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
