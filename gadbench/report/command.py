"""The `gadbench report DIR` subcommand."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gadbench.report.build import build_report


def add_parser(subparsers) -> None:
    """Register `report DIR` on an argparse subparsers object; its func returns an exit code."""
    p = subparsers.add_parser(
        "report",
        help="write REPORT.md, report.html, tables/ and figures/ from stored results (no torch needed)",
        description="Build the report of a run directory or of results/<suite>/ into that directory.",
    )
    p.add_argument("dir", type=Path, help="a run directory or results/<suite>/")
    p.add_argument(
        "--ci", action="store_true", help="show intervals in table cells: [lo, hi] n=.. or seeds=.."
    )
    p.add_argument(
        "--baselines", type=Path, default=None, help="published numbers (default: baselines/paper.json)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        path = build_report(args.dir, ci=args.ci, baselines=args.baselines)
    except (FileNotFoundError, ValueError) as exc:
        print(f"gadbench report: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path} and {path.with_name('report.html')}")
    return 0
