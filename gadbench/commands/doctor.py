"""`gadbench doctor`: torch, CUDA, vLLM and the other libraries, a judge endpoint, an API key's presence.
Exit status 1 when the judge endpoint it was asked to probe cannot be reached, else 0."""

from __future__ import annotations

import importlib.util
import os
import sys

from tabulate import tabulate


def add_parser(subparsers) -> None:
    d = subparsers.add_parser("doctor", help="check torch, CUDA, vllm, judge endpoint and API key (never printed)")
    d.add_argument("--judge-url", help="an OpenAI-compatible base URL to probe, e.g. http://127.0.0.1:8000/v1")
    d.add_argument("--api-key-env", default="OPENAI_API_KEY")
    d.set_defaults(func=run)


def run(args) -> int:
    import torch

    from gadbench import print_error
    from gadbench.config.schema import url_problem

    if args.judge_url and (problem := url_problem(args.judge_url)):
        return print_error(f"--judge-url {problem}.")
    if not args.api_key_env or "=" in args.api_key_env or "\0" in args.api_key_env:
        return print_error(f"--api-key-env {args.api_key_env!r} is not an environment variable name; pass e.g. "
                           "OPENAI_API_KEY.")

    rows = [["torch", torch.__version__], ["CUDA", f"{torch.cuda.device_count()} GPU(s)" if torch.cuda.is_available() else "not available"]]
    rows.append(["vllm", "installed" if importlib.util.find_spec("vllm") else "not installed (pip install gadbench[vllm])"])
    for pkg in ("transformers", "accelerate", "openai", "lm_eval", "trl"):
        spec = importlib.util.find_spec(pkg)
        rows.append([pkg, getattr(__import__(pkg), "__version__", "installed") if spec else "not installed"])
    key_env = args.api_key_env
    rows.append([f"${key_env}", "set" if os.environ.get(key_env) else "not set"])
    endpoint = reachable(args.judge_url) if args.judge_url else None
    if endpoint is not None:
        rows.append(["judge endpoint", endpoint])
    print(tabulate(rows, headers=["check", "status"], tablefmt="github"))
    if endpoint is not None and endpoint.startswith("unreachable"):
        print(f"gadbench doctor: the judge endpoint {args.judge_url} is {endpoint}; start the server or fix "
              "--judge-url.", file=sys.stderr)
        return 1
    return 0


def reachable(url: str) -> str:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url.rstrip("/") + "/models", timeout=5) as r:
            return f"reachable (HTTP {r.status})"
    except urllib.error.HTTPError as e:
        return f"reachable (HTTP {e.code})"
    except (urllib.error.URLError, OSError) as e:
        return f"unreachable ({getattr(e, 'reason', e)})"
