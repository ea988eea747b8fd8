"""`gadbench serve --model PATH`: a local chat model behind an OpenAI-compatible HTTP API (gadbench.llm.serve)."""

from __future__ import annotations

import argparse
import sys

from gadbench.llm import serve


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("serve", help="serve a local chat model over an OpenAI-compatible HTTP API",
                              description=serve.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="local folder, .gguf file, or Hub id in the local HF cache")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-new-tokens", type=int, default=256, help="when a request gives no max_tokens")
    p.add_argument("--max-batch", type=int, default=8, help="most waiting requests generated together")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gadbench.config import ModelConfig
    from gadbench.models import ModelUnavailableError, load_causal_lm

    try:
        loaded = load_causal_lm(ModelConfig(path=args.model), download=False)
    except ModelUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    model, tokenizer = loaded.model.eval(), loaded.tokenizer
    if args.max_batch < 1:
        print("error: --max-batch must be at least 1.", file=sys.stderr)
        return 2
    server = serve.ChatServer((args.host, args.port), model, tokenizer, args.model, args.max_new_tokens, args.max_batch)
    host, port = server.server_address[:2]
    print(f"serving {args.model} at http://{host}:{port}/v1 (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
