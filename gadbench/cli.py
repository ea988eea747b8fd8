"""The `gadbench` command: the parser of gadbench.commands and one-line errors."""

from __future__ import annotations

import argparse
import logging
import sys

from gadbench import GadbenchError, print_error
from gadbench.commands import COMMANDS


class Parser(argparse.ArgumentParser):
    """argparse with gadbench's one-line errors (argparse prints its usage lines, then the error)."""

    def error(self, message: str):
        print_error(f"{message}; see `{self.prog} --help`.")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="gadbench", description="Black-box on-policy distillation benchmark (GAD, SeqKD, ablations).")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "httpx2", "transformers", "urllib3", "openai"):  # httpx2: the HTTP client of openai>=3
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (GadbenchError, FileNotFoundError) as e:  # the errors gadbench raises on purpose: one line
        return print_error(e)


if __name__ == "__main__":
    sys.exit(main())
