"""`gadbench run --suite NAME`: train, evaluate and report a suite, or print its plan (`--dry-run`). When the suite
ends it prints the answer: the findings with their verdicts, the main table, where REPORT.md and report.html
are, and the wall time."""

from __future__ import annotations

import logging
import os
import shlex
import sys
import time
from pathlib import Path

from tabulate import tabulate

log = logging.getLogger("gadbench")


def _scaled(x: float, units: tuple[tuple[str, float], ...]) -> str:
    for unit, div in units:
        if abs(x) >= div:
            return f"{x / div:.1f}{unit}"
    return f"{x:.0f}"


def count(x: float) -> str:
    """A count of parameters or tokens: 3.0e9 -> '3.0B', 1.2e5 -> '120.0k'."""
    return _scaled(x, (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)))


def flops(x: float) -> str:
    """A number of floating-point operations: 3.0e9 -> '3.0G', 8.5e20 -> '850.0E'."""
    return _scaled(x, (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)))


def add_parser(subparsers) -> None:
    r = subparsers.add_parser("run", help="train, evaluate and report a suite")
    r.add_argument("--suite", required=True, help="suite name (see `gadbench suites`) or a YAML path")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting, e.g. train.steps=20")
    r.add_argument("--out", default="results", help="results root (default: results)")
    r.add_argument("--dry-run", action="store_true", help="print the plan without loading models")
    again = r.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue from the last complete checkpoints")
    again.add_argument("--force", action="store_true",
                       help="train the suite's runs again from scratch, deleting their stored results")
    r.add_argument("--skip-locked", action="store_true",
                   help="skip the runs that another process is writing (default: stop at once)")
    r.add_argument("--update-baseline", action="store_true", help="rewrite the suite's regression baseline")
    r.add_argument("--gpus", type=int, metavar="N",
                   help="--dry-run: plan memory (and with --gpu the hours) for N processes, one GPU each")
    r.add_argument("--gpu", metavar="KIND", help="--dry-run: estimate hours on this GPU kind (h100, h200, a100)")
    r.add_argument("--gpu-mem", type=float, metavar="GB", help="--dry-run: memory of each GPU, GiB (e.g. 80)")
    r.add_argument("--accelerate-config", metavar="FILE",
                   help="--dry-run: plan memory for this accelerate config's processes and machines")
    r.add_argument("--no-memory-check", action="store_true",
                   help="start even when the predicted memory exceeds the device (docs/scale.md)")
    r.set_defaults(func=run, interrupted=resume_hint)


def resume_hint(args) -> str:
    """What Ctrl-C prints: the command that continues from the last checkpoints."""
    if args.dry_run:
        return ""
    argv = [a for a in getattr(args, "argv", None) or ["run", "--suite", args.suite] if a != "--force"]
    again = " ".join(shlex.quote(a) for a in argv + ([] if "--resume" in argv else ["--resume"]))
    return f"the checkpoints written so far are kept; continue with `gadbench {again}`"


def run(args) -> int:
    started = time.monotonic()
    from gadbench.config import read_suite_file
    from gadbench.runtime import pin_portable_cpu_numerics
    from gadbench.suite import check_suite, experiments_dir, suite_path

    path = suite_path(args.suite)
    suite = read_suite_file(path, args.set or [], search_dir=experiments_dir())
    if suite.train.portable_cpu:  # before torch is imported (checking the suite's methods imports it)
        pin_portable_cpu_numerics()
    check_suite(suite, str(path))
    from gadbench.capacity import launch_of, plan_text
    from gadbench.runner import plan, run_suite

    if suite.baseline and not args.dry_run:  # before any training: a missing baseline would compare nothing
        from gadbench.report.regression import check_baseline

        check_baseline(Path(suite.baseline), args.update_baseline)
    if args.dry_run:
        if suite.toy is not None:
            print(f"suite {suite.name}: the Fig. 5 toy, seeds {list(suite.seeds)}, {suite.toy.steps} steps per method")
            return 0
        launch = launch_of(suite.train.device, args.gpus, args.gpu_mem, args.accelerate_config)  # checked first
        p = plan(suite)
        print_plan(p)
        print(plan_text(suite, launch))
        if args.gpu:
            print_hours(suite, p, args.gpu, launch.processes if args.gpus or args.accelerate_config else None)
        if suite.description:  # where a suite states its time (an estimate unless measured)
            print(f"\nsuite {suite.name}: {suite.description}")
        return 0
    from gadbench import dist

    dist.init()
    if not dist.is_main():  # one log, from process 0; warnings from every process
        logging.getLogger("gadbench").setLevel(logging.WARNING)
    suite_dir = run_suite(suite, Path(args.out), resume=args.resume, progress=not args.quiet,
                          skip_locked=args.skip_locked, force=args.force, memory_check=not args.no_memory_check)
    main_process = dist.is_main()
    dist.close()
    if not main_process:
        exit_now(0)
    from gadbench.report import build_report

    log.info("writing the report of %s", suite_dir)
    built = build_report(suite_dir)
    print_answer(suite.name, built, suite_dir, time.monotonic() - started)
    if suite.baseline:
        from gadbench.report.regression import compare_to_baseline
        from gadbench.runner import incomplete_runs

        if missing := incomplete_runs(suite, suite_dir):  # others still train them (--skip-locked), or were killed
            print(f"regression check not run: {len(missing)} run(s) of the suite are not complete ({missing[0]}, ...); "
                  f"the process that completes the suite compares it with {suite.baseline}")
            return 0
        return compare_to_baseline(suite_dir, Path(suite.baseline), update=args.update_baseline)
    return 0


def exit_now(code: int) -> None:
    """End a process other than process 0 once its part is done (logs flushed), skipping the interpreter's
    shutdown: there, after leaving the process group while process 0 still writes the report, torch's
    distributed threads could abort the process ("terminate called without an active exception", exit -6),
    which fails the whole launch although every result is written."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def plain_table(table, wrap: dict[int, int] | None = None) -> str:
    """A report table (gadbench.report.typeset.Table) as terminal text: columns aligned, the cells of column i
    wrapped at `wrap[i]` characters, a bold (best) value marked `*`."""
    from gadbench.report.typeset import cell_parts

    def text(cell) -> str:
        if isinstance(cell, str):
            return cell
        value, rest = cell_parts(cell, False)
        return value + ("*" if cell.bold else "") + rest

    widths = [(wrap or {}).get(i) for i in range(len(table.header))]
    return tabulate([[text(c) for c in row] for row in table.rows], headers=table.header, tablefmt="simple",
                    maxcolwidths=widths, disable_numparse=True)


def print_answer(suite: str, built, suite_dir: Path, seconds: float, out=None) -> None:
    """The end of a run: the findings with their verdicts and the main table as the report holds them
    (gadbench.report.BuiltReport, never its Markdown), the report's two files and the wall time."""
    from gadbench.progress import duration

    out = out or sys.stdout
    findings, main = built.table("findings"), built.table("main")
    if findings is not None:
        print(f"\n{findings.title}\n\n{plain_table(findings, {0: 34, 1: 56})}", file=out)
    if main is not None:
        print(f"\n{main.title}\n\n{plain_table(main)}\n* best per student", file=out)
    print(f"\nsuite {suite} done in {duration(seconds)}\nreport:  {built.markdown}\n         {built.html}\n"
          f"results: {suite_dir}", file=out)


def print_plan(p: dict) -> None:
    rows = [[r["student"], r["method"], r["seed"], r["stages"], count(r["params"]), count(r["generated_tokens"]),
             count(r["g_trained_tokens"]), count(r["d_trained_tokens"]), flops(r["flops"])] for r in p["runs"]]
    print(f"suite {p['suite']}: {len(rows)} runs (student x method x seed)\n")
    print(tabulate(rows, headers=["student", "method", "seed", "stages (steps)", "params", "generated tok",
                                  "G trained tok", "D trained tok", "FLOPs"], tablefmt="github"))
    ref = max((r["flops"] for r in p["runs"]), default=0) or 1
    print("\nmatched budget (FLOPs relative to the most expensive run):")
    print(tabulate([[r["run_id"], f"{r['flops'] / ref:.2f}"] for r in p["runs"]], headers=["run", "FLOPs ratio"],
                   tablefmt="github"))
    longest = max(p["runs"], key=lambda r: len(r["eval_steps"]), default=None)
    if longest:
        shown = longest["eval_steps"]
        shown = ", ".join(map(str, shown if len(shown) <= 8 else shown[:4] + ["..."] + shown[-2:]))
        print(f"\nevaluation points: step 0, then from step {p['eval_start']} (eval.start) every {p['eval_every']} "
              f"steps and at stage ends, and the last step: up to {len(longest['eval_steps'])} per run ({shown})")
    if not p["llm_judges"]:
        print("judge calls: 0 (offline judges only)")
        return
    cost = p["judge_cost_usd"]
    cost = "unknown (no list price for judge.model: set judge.price_per_mtok)" if cost is None else f"${cost:.2f}"
    print(f"judge calls: {p['judge_calls']} ({', '.join(p['llm_judges'])}; {p['eval_items']} items), estimated cost "
          f"{cost}:\n"
          f"  {p['judge_item_calls']} judgments: the items at each evaluation point of each run, step 0 once per "
          f"student and seed (its answers are the same for every method, and the judge cache is shared)\n"
          f"  {p['judge_reference_calls']} reference answers written by the judge: one per item for the whole "
          "suite (cached across runs)")


def print_hours(suite, p: dict, gpu: str, gpus: int | None) -> None:
    """The throughput model's estimate (gadbench.capacity.throughput): hours per run and for the suite, with the rates and
    their sources."""
    from gadbench.capacity.throughput import ThroughputPlanError, suite_hours
    from gadbench.runner import ASSUMED_JUDGE_TOKENS

    if not gpus:
        raise ThroughputPlanError(f"--gpu {gpu} needs the launch's process count: add --gpus N (e.g. --gpus 8).")
    t = suite_hours(suite, p, gpu, gpus, ASSUMED_JUDGE_TOKENS[1])
    rows = [[r["run_id"], f"{r['step_s']:.1f}", f"{r['rollout_s'] / 3600:.1f}", f"{r['compute_s'] / 3600:.1f}",
             f"{r['eval_gen_s'] / 3600:.1f}", f"{r['judge_s'] / 3600:.1f}", f"{r['judge_wait_s'] / 3600:.1f}",
             f"{r['hours']:.1f}", f"{r['gpu_hours']:.0f}"] for r in t["runs"]]
    print(f"\nESTIMATED time on {gpus} x {gpu} (estimates, not measurements; gadbench/capacity/throughput.py):\n")
    print(tabulate(rows, headers=["run", "s / step", "rollout h", "train h", "eval gen h", "judge h",
                                  "GPUs wait for judge h", "hours", "GPU-hours"], tablefmt="github"))
    print(f"\nsuite {p['suite']}: ESTIMATED {t['hours']:.1f} h, {t['gpu_hours']:.0f} GPU-hours "
          f"(runs one after the other on the same {gpus} GPUs)")
    r = t["rates"]
    judging = ("in the background (eval.judge_in_background): the GPUs wait for the last evaluation point, or "
               "where judging cannot keep up" if suite.eval.judge_in_background else "synchronous: the GPUs wait")
    print(f"rates (estimates, with sources):\n"
          f"  peak {r.peak_tflops.value:g} TFLOP/s: {r.peak_tflops.source}\n"
          f"  MFU {r.train_mfu.value:g}: {r.train_mfu.source}\n"
          f"  vLLM {r.rollout_tokens_per_s.value:,.0f} tokens/s per GPU at {r.rollout_params / 1e9:.2f}B, scaled by "
          f"size: {r.rollout_tokens_per_s.source}\n"
          f"  overhead x{t['overhead']:.2f} on GPU phases: a published NeMo-RL GRPO step (Llama-3.1-8B, 16 x H100, "
          "97.7 s) over these formulas' time for it\n"
          f"  judge {t['judge_s_per_call']:.1f} s per call at judge.concurrency {suite.judge.concurrency}: GPT-4o's "
          "median first-token time and output speed (Artificial Analysis), for 300 completion tokens\n"
          f"  judging {judging}\n"
          "  not counted: checkpoint writes, model loading, engine starts, CPU offload's slowdown")
