"""`gadbench report DIR`: REPORT.md, report.html, tables and figures from stored results (no torch)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    """Register `report DIR` on an argparse subparsers object; its func returns an exit code."""
    p = subparsers.add_parser(
        "report",
        help="write REPORT.md, report.html, tables/ and figures/ from stored results (no torch needed)",
        description="Build the report of a run directory or of results/<suite>/ into that directory.",
    )
    p.add_argument("dir", type=Path, help="a run directory, results/<suite>/, or an --out folder of suites")
    p.add_argument(
        "--ci", action="store_true", help="show intervals in table cells: [lo, hi] n=.. or seeds=.."
    )
    p.add_argument(
        "--baselines", type=Path, default=None, help="published numbers (default: baselines/paper.json)"
    )
    p.set_defaults(func=run)


def report_dirs(path: Path) -> list[Path]:
    """The directories to report: `path` itself when it is a run or a suite, else the suites under it (the
    `--out` root of `gadbench run`, holding <suite>/ folders)."""
    from gadbench.report.load import is_run

    if is_run(path) or (path / "suite.json").exists() or any(is_run(p) for p in path.iterdir() if p.is_dir()):
        return [path]
    return sorted(p for p in path.iterdir() if p.is_dir() and ((p / "suite.json").exists() or
                                                              any(is_run(q) for q in p.iterdir() if q.is_dir())))


def run(args: argparse.Namespace) -> int:
    from gadbench import print_error
    from gadbench.report.build import build_report

    try:
        if args.baselines is not None:  # checked even where no suite is the paper's, which alone reads it
            from gadbench.report.baselines import load_baselines

            load_baselines(args.baselines)
        if not args.dir.is_dir():
            raise FileNotFoundError(f"{args.dir} is not a directory; pass a run directory, results/<suite>/ or "
                                    "the --out folder of a run.")
        dirs = report_dirs(args.dir)
        if not dirs:
            raise ValueError(f"no runs or suites under {args.dir}; pass a run directory, results/<suite>/ or the "
                             "--out folder of a run.")
        for d in dirs:
            built = build_report(d, ci=args.ci, baselines=args.baselines)
            print(f"wrote {built.markdown} and {built.html}")
    except (FileNotFoundError, ValueError) as exc:  # ValueError: gadbench's DamagedFileError among them
        return print_error(exc)
    return 0
