"""`gadbench teacher collect`: answer every prompt of a data file (or a named dataset) with a black-box teacher
and write the pairs as JSONL (gadbench.teachers.collect)."""

from __future__ import annotations

import argparse
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gadbench.llm import FatalAPIError  # imported here: it loads openai
    from gadbench.teachers import TeacherError

    if args.limit is not None and args.limit < 1:
        print("error: --limit must be at least 1.", file=sys.stderr)
        return 2
    if args.concurrency < 1:
        print("error: --concurrency must be at least 1.", file=sys.stderr)
        return 2
    given = {"temperature": args.temperature, "max_tokens": args.max_tokens, "max_retries": args.max_retries}
    try:
        t = collect.collect(args.teacher, args.data, args.out, concurrency=args.concurrency, prompt_field=args.prompt_field,
                    teacher_opts={k: v for k, v in given.items() if v is not None}, limit=args.limit)
    except TeacherError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (FatalAPIError, ValueError) as exc:  # bad input, refused credentials, model not available
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}", file=sys.stderr)
    if hasattr(t, "usage"):
        print(f"usage: {t.usage.summary()}", file=sys.stderr)
    return 0
