"""`gadbench teacher collect`: answer every prompt of a data file (or a named dataset) with a black-box teacher
and write the pairs as JSONL (gadbench.teachers.collect)."""

from __future__ import annotations

import argparse
import math
import sys

from gadbench.teachers import collect


def add_parser(subparsers) -> None:
    teacher = subparsers.add_parser("teacher", help="black-box teachers: collect responses")
    sub = teacher.add_subparsers(dest="teacher_command", required=True)
    p = sub.add_parser("collect", help="answer every prompt of a data file with a teacher", description=collect.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True, help="openai:MODEL[@BASE_URL], hf:PATH or dataset")
    p.add_argument("--data", required=True,
                   help="JSONL file with one prompt per row, or a dataset name: NAME[:SPLIT], e.g. mtbench, sharegpt:test")
    p.add_argument("--limit", type=int, default=None, help="use only the first N prompts")
    p.add_argument("--out", required=True, help="output JSONL (the cache goes to OUT.cache.sqlite)")
    p.add_argument("--concurrency", type=int, default=8, help="parallel API requests (hf: batch size)")
    p.add_argument("--prompt-field", default="prompt")
    p.add_argument("--temperature", type=float, default=None, help="default: 1.0, the teacher's distribution")
    p.add_argument("--max-tokens", type=int, default=None)
    p.add_argument("--max-retries", type=int, default=None, help="API teachers: retries per request (default 6)")
    p.add_argument("--timeout", type=float, default=None,
                   help="API teachers: seconds to wait for one answer before retrying (default 60)")
    p.set_defaults(func=run)


def _bad_option(args: argparse.Namespace) -> str | None:
    """The first option outside its range, as a sentence naming it and the fix; None when all are fine."""
    positive = lambda v: v is not None and not (math.isfinite(v) and v > 0)  # noqa: E731
    if args.limit is not None and args.limit < 1:
        return "--limit must be at least 1."
    if args.concurrency < 1:
        return "--concurrency must be at least 1."
    if args.max_retries is not None and args.max_retries < 0:
        return "--max-retries must be 0 or more."
    if positive(args.timeout):
        return "--timeout must be a number of seconds above 0."
    if args.temperature is not None and not (math.isfinite(args.temperature) and args.temperature >= 0):
        return "--temperature must be a number of 0 or more (0: greedy, 1: the teacher's own distribution)."
    if args.max_tokens is not None and args.max_tokens < 1:
        return "--max-tokens must be at least 1."
    return None


def run(args: argparse.Namespace) -> int:
    from gadbench import GadbenchError, print_error
    from gadbench.teachers import TeacherError

    if problem := _bad_option(args):
        return print_error(problem)
    given = {"temperature": args.temperature, "max_tokens": args.max_tokens, "max_retries": args.max_retries,
             "timeout": args.timeout}
    try:
        t, rows = collect.prepare(args.teacher, args.data, args.out, concurrency=args.concurrency,
                                  prompt_field=args.prompt_field, limit=args.limit,
                                  teacher_opts={k: v for k, v in given.items() if v is not None})
    except (GadbenchError, ValueError) as exc:  # bad input, refused credentials, model not available
        return print_error(exc)
    spent = (lambda: print(f"usage: {t.usage.summary()}", file=sys.stderr)) if hasattr(t, "usage") else (lambda: None)
    try:
        collect.answer(t, rows, args.teacher, args.out, args.prompt_field)
    except TeacherError as exc:  # requests that still failed after their retries: rerun to ask them again
        spent()  # what was spent is printed whether or not every prompt got its answer; the error stays last
        print_error(exc)
        return 1
    except (GadbenchError, ValueError) as exc:
        spent()
        return print_error(exc)
    print(f"wrote {args.out}", file=sys.stderr)
    spent()
    return 0
