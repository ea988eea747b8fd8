"""`gadbench run --suite NAME`: train, evaluate and report a suite, or print its plan (`--dry-run`)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from tabulate import tabulate


def human(x: float) -> str:
    """3.0e9 -> '3.0G'."""
    for unit, div in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.1f}{unit}"
    return f"{x:.0f}"


def add_parser(subparsers) -> None:
    r = subparsers.add_parser("run", help="train, evaluate and report a suite")
    r.add_argument("--suite", required=True, help="suite name (see `gadbench suites`) or a YAML path")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting, e.g. train.steps=20")
    r.add_argument("--out", default="results", help="results root (default: results)")
    r.add_argument("--dry-run", action="store_true", help="print the plan without loading models")
    r.add_argument("--resume", action="store_true", help="continue from the last complete checkpoints")
    r.add_argument("--skip-locked", action="store_true",
                   help="skip the runs that another process is writing (default: stop at once)")
    r.add_argument("--update-baseline", action="store_true", help="rewrite the suite's regression baseline")
    r.set_defaults(func=run)


def run(args) -> int:
    from gadbench.config import read_suite_file
    from gadbench.runtime import pin_portable_cpu_numerics
    from gadbench.suite import check_suite, experiments_dir, suite_path

    path = suite_path(args.suite)
    suite = read_suite_file(path, args.set or [], search_dir=experiments_dir())
    if suite.train.portable_cpu:  # before torch is imported (checking the suite's methods imports it)
        pin_portable_cpu_numerics()
    check_suite(suite, str(path))
    from gadbench.runner import plan, run_suite

    if suite.baseline and not args.dry_run:  # before any training: a missing baseline would compare nothing
        from gadbench.report.regression import check_baseline

        check_baseline(Path(suite.baseline), args.update_baseline)
    if args.dry_run:
        if suite.toy is not None:
            print(f"suite {suite.name}: the Fig. 5 toy, seeds {list(suite.seeds)}, {suite.toy.steps} steps per method")
            return 0
        print_plan(plan(suite))
        return 0
    from gadbench import dist

    if args.quiet or not sys.stderr.isatty():  # library progress bars only on a terminal, never with -q
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    dist.init()
    if not dist.is_main():  # one log, from process 0; warnings from every process
        logging.getLogger("gadbench").setLevel(logging.WARNING)
    suite_dir = run_suite(suite, Path(args.out), resume=args.resume, progress=not args.quiet,
                          skip_locked=args.skip_locked)
    main_process = dist.is_main()
    dist.close()
    if not main_process:
        return 0
    from gadbench.report import build_report

    report = build_report(suite_dir)
    print(f"results: {suite_dir}\nreport:  {report}")
    if suite.baseline:
        from gadbench.report.regression import compare_to_baseline
        from gadbench.runner import incomplete_runs

        if missing := incomplete_runs(suite, suite_dir):  # others still train them (--skip-locked), or were killed
            print(f"regression check not run: {len(missing)} run(s) of the suite are not complete ({missing[0]}, ...); "
                  f"the process that completes the suite compares it with {suite.baseline}")
            return 0
        return compare_to_baseline(suite_dir, Path(suite.baseline), update=args.update_baseline)
    return 0


def print_plan(p: dict) -> None:
    rows = [[r["student"], r["method"], r["seed"], r["stages"], human(r["params"]), human(r["generated_tokens"]),
             human(r["g_trained_tokens"]), human(r["d_trained_tokens"]), human(r["flops"])] for r in p["runs"]]
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
