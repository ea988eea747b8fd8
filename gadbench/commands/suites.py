"""`gadbench suites`: the suites with their runs and budgets, or `--explain KEY`: what a setting means."""

from __future__ import annotations

from tabulate import tabulate

from gadbench.commands.run import human


def add_parser(subparsers) -> None:
    s = subparsers.add_parser("suites", help="list suites with their runs and budgets, or explain settings")
    s.add_argument("--explain", nargs="?", const="", metavar="KEY",
                   help="print what a setting (or group, e.g. train) means, its default and the paper's value")
    s.set_defaults(func=run)


def run(args) -> int:
    from gadbench.config import ConfigError, explain
    from gadbench.runner import plan
    from gadbench.suite import get_suite, runs_of, suite_names

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
        rows.append([name, s.description, len(runs_of(s)), f"{s.train.steps} steps/run, {human(flops)} FLOPs"])
    print(tabulate(rows, headers=["suite", "description", "runs", "budget"], tablefmt="github"))
    return 0
