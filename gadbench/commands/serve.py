"""`gadbench serve --model PATH`: a local chat model behind an OpenAI-compatible HTTP API (gadbench.llm.serve)."""

from __future__ import annotations

import argparse
import socket
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


def listen_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on (host, port), found by binding a socket there and closing it; or None."""
    if not 0 <= port <= 65535:
        return f"--port {port} is not a TCP port; pick one in 1-65535 (0: any free port)"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the HTTP server does
            probe.bind(infos[0][4])
    except (OSError, UnicodeError) as e:
        return (f"cannot listen on {host}:{port} ({getattr(e, 'strerror', None) or e}); pick another --port, or "
                "a --host of this machine (127.0.0.1 keeps it local)")
    return None


def run(args: argparse.Namespace) -> int:
    from gadbench import print_error
    from gadbench.config import ModelConfig
    from gadbench.models import ModelUnavailableError, load_causal_lm

    if args.max_batch < 1:
        return print_error("--max-batch must be at least 1.")
    if args.max_new_tokens < 1:
        return print_error("--max-new-tokens must be at least 1.")
    if problem := listen_problem(args.host, args.port):  # before the model loads, which takes a while
        return print_error(problem + ".")
    try:
        loaded = load_causal_lm(ModelConfig(path=args.model), download=False)
    except ModelUnavailableError as exc:
        return print_error(exc)
    model, tokenizer = loaded.model.eval(), loaded.tokenizer
    try:
        server = serve.ChatServer((args.host, args.port), model, tokenizer, args.model, args.max_new_tokens,
                                  args.max_batch)
    except OSError as e:  # taken while the model loaded
        return print_error(f"cannot listen on {args.host}:{args.port} ({e.strerror or e}); pick another --port.")
    host, port = server.server_address[:2]
    print(f"serving {args.model} at http://{host}:{port}/v1 (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
