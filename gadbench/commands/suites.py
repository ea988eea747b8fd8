"""`gadbench suites`: the suites with their runs and budgets, or `--explain KEY`: what a setting means (with
`--suite NAME`, also that suite's value)."""

from __future__ import annotations

from tabulate import tabulate

from gadbench.commands.run import flops

DESCRIPTION_WIDTH = 42  # the description column wraps here, so the table fits about 100 columns


def add_parser(subparsers) -> None:
    s = subparsers.add_parser("suites", help="list suites with their runs and budgets, or explain settings")
    s.add_argument("--explain", nargs="?", const="", metavar="KEY",
                   help="print what a setting (or group, e.g. train) means, its default and the paper's value")
    s.add_argument("--suite", metavar="NAME", help="with --explain: also show this suite's values (a name or a "
                                                   "YAML path)")
    s.set_defaults(func=run)


def run(args) -> int:
    from gadbench.config import ConfigError, explain
    from gadbench.runner import plan
    from gadbench.suite import get_suite, runs_of, suite_names

    if args.explain is not None:
        print("\n".join(explain(args.explain, get_suite(args.suite) if args.suite else None)))
        return 0
    if args.suite:
        raise ConfigError("--suite goes with --explain KEY (a suite's values); `gadbench run --suite NAME --dry-run` "
                          "prints a suite's plan.")
    rows = []
    for name in suite_names():
        try:
            s = get_suite(name)
        except ConfigError as e:
            rows.append([name, f"(invalid: {e})", "", ""])
            continue
        if s.toy is not None:
            rows.append([name, s.description, len(s.seeds), f"{s.toy.steps} steps/method, seconds"])
            continue
        total = sum(r["flops"] for r in plan(s)["runs"])
        rows.append([name, s.description, len(runs_of(s)), f"{s.train.steps} steps/run, {flops(total)} FLOPs"])
    print(tabulate(rows, headers=["suite", "description", "runs", "budget (whole suite)"], tablefmt="simple",
                   maxcolwidths=[None, DESCRIPTION_WIDTH, None, None]))
    return 0
