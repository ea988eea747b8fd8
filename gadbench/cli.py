"""The `gadbench` command: the parser of gadbench.commands, one-line errors, Ctrl-C and closed pipes."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from gadbench import GadbenchError, __version__, print_error
from gadbench.commands import COMMANDS

QUIET_HELP = "no progress bars"
SIGPIPE_EXIT = 141  # 128 + SIGPIPE: what a shell reports for a command whose reader went away


def _add_quiet(parser: argparse.ArgumentParser) -> None:
    """-q/--quiet on every subcommand too (`gadbench run -q`), without overriding a -q given before it."""
    parser.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=QUIET_HELP)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _add_quiet(sub)


class Parser(argparse.ArgumentParser):
    """argparse with gadbench's one-line errors (argparse prints its usage lines, then the error)."""

    def error(self, message: str):
        print_error(f"{message}; see `{self.prog} --help`.")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="gadbench", description="Black-box on-policy distillation benchmark (GAD, SeqKD, ablations).")
    p.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    p.add_argument("--version", action="version", version=f"gadbench {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    for command_parser in sub.choices.values():
        _add_quiet(command_parser)
    return p


def silence_libraries() -> None:
    """Library chatter off: transformers' "Loading weights" bars and its info logging, HTTP clients' logs."""
    for noisy in ("httpx", "httpx2", "transformers", "urllib3", "openai"):  # httpx2: the HTTP client of openai>=3
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if "transformers" in sys.modules or "torch" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_warning()
    else:  # set before transformers is imported: it reads these when it loads
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "warning")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    silence_libraries()
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as given, for the resume hint of Ctrl-C
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except (GadbenchError, FileNotFoundError) as e:  # the errors gadbench raises on purpose: one line
        return print_error(e)
    except KeyboardInterrupt:
        hint = args.interrupted(args) if hasattr(args, "interrupted") else ""
        print(f"\ngadbench: interrupted{'; ' + hint if hint else '.'}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `gadbench ... | head`: the reader has all it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush of stdout must not fail again
        return SIGPIPE_EXIT


if __name__ == "__main__":
    sys.exit(main())
