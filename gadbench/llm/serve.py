"""`gadbench serve`: an OpenAI-compatible HTTP server over a local transformers chat model.

Routes: POST /v1/chat/completions (messages, temperature [default 1; 0 = greedy], top_p, max_tokens or
max_completion_tokens, seed, n, guided_choice [vLLM's: the reply is one of these strings]; no streaming),
GET /v1/models, GET /health. Any model name in a request is accepted; the API key is ignored. There is no
authentication, so bind to 127.0.0.1 unless the network is trusted.

One thread generates. Requests that wait together with the same settings (max_tokens, temperature, top_p, n,
guided_choice) are generated as one left-padded batch of at most `max_batch` conversations, so concurrent
clients (a judge pass) share each decoding step. A seeded request is generated alone, since its samples would
depend on its batch. A batch that fails is retried one request at a time, so one bad request fails alone.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _BadRequest(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    max_tokens: int
    temperature: float
    top_p: float
    n: int
    seed: int | None
    choices: tuple[str, ...] | None = None


@dataclass(eq=False)
class _Pending:
    messages: list[dict]
    settings: Settings
    done: threading.Event = field(default_factory=threading.Event)
    result: list | None = None
    error: Exception | None = None


class Batcher:
    """The generation thread: each batch is the oldest waiting request plus the later ones with equal settings
    (none for a seeded request), at most `max_batch`; `generate(conversations, settings)` returns one list of
    completions per conversation. `batches` records each batch's size."""

    def __init__(self, generate, max_batch: int):
        self.generate, self.max_batch = generate, max_batch
        self.waiting: deque[_Pending] = deque()
        self.cond = threading.Condition()
        self.batches: list[int] = []
        self.closed = False
        self.thread = threading.Thread(target=self._loop, name="gadbench-serve-generate", daemon=True)
        self.thread.start()

    def submit(self, messages: list[dict], settings: Settings) -> list:
        item = _Pending(messages, settings)
        with self.cond:
            self.waiting.append(item)
            self.cond.notify()
        item.done.wait()
        if item.error is not None:
            raise item.error
        return item.result

    def close(self) -> None:
        """Stop after the batch in progress; requests still waiting fail."""
        with self.cond:
            self.closed = True
            for item in self.waiting:
                item.error = RuntimeError("the server is shutting down")
                item.done.set()
            self.waiting.clear()
            self.cond.notify()
        self.thread.join()

    def _take(self) -> list[_Pending] | None:
        with self.cond:
            while not self.waiting and not self.closed:
                self.cond.wait()
            if self.closed:
                return None
            batch = [self.waiting.popleft()]
            if batch[0].settings.seed is None:
                for item in list(self.waiting):
                    if len(batch) == self.max_batch:
                        break
                    if item.settings == batch[0].settings:
                        self.waiting.remove(item)
                        batch.append(item)
            return batch

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            self.batches.append(len(batch))
            self._run(batch)
            if len(batch) > 1 and any(item.error for item in batch):
                for item in batch:  # one request's fault must not fail the others
                    item.error = None
                    self._run([item])
            for item in batch:
                item.done.set()

    def _run(self, batch: list[_Pending]) -> None:
        try:
            results = self.generate([item.messages for item in batch], batch[0].settings)
            for item, result in zip(batch, results, strict=True):
                item.result = result
        except Exception as exc:  # noqa: BLE001 - reported to the request as a 500
            for item in batch:
                item.error = exc


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, model, tokenizer, model_name: str, max_new_tokens: int, max_batch: int = 8):
        super().__init__(address, _Handler)
        self.model, self.tokenizer = model, tokenizer
        self.model_name = model_name
        self.max_new_tokens = max_new_tokens
        self.batcher = Batcher(self._generate, max_batch)

    def _generate(self, conversations: list[list[dict]], s: Settings) -> list[list]:
        from gadbench.llm.local import generate_chat  # torch loads on first use, not on `gadbench --help`

        return generate_chat(self.model, self.tokenizer, conversations, max_new_tokens=s.max_tokens,
                             temperature=s.temperature, top_p=s.top_p, seed=s.seed, n=s.n, choices=s.choices)

    def server_close(self) -> None:
        super().server_close()
        self.batcher.close()

    def complete(self, body: dict) -> dict:
        """The chat.completion object for one request body; raises _BadRequest on invalid input."""
        messages = _messages(body.get("messages"))
        if body.get("stream"):
            raise _BadRequest("streaming is not supported; send stream=false")
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or self.max_new_tokens
        temperature = body.get("temperature")
        top_p = body.get("top_p")
        n, seed = body.get("n") or 1, body.get("seed")
        if not (isinstance(max_tokens, int) and max_tokens > 0 and isinstance(n, int) and 1 <= n <= 16):
            raise _BadRequest("max_tokens must be a positive integer and n an integer from 1 to 16")
        temperature = 1.0 if temperature is None else float(temperature)
        top_p = 1.0 if top_p is None else float(top_p)
        if temperature < 0 or not 0 < top_p <= 1:
            raise _BadRequest("temperature must be >= 0 and top_p in (0, 1]")
        if seed is not None and not isinstance(seed, int):
            raise _BadRequest("seed must be an integer")
        choices = body.get("guided_choice")
        if choices is not None and not (isinstance(choices, list) and choices
                                        and all(isinstance(c, str) and c for c in choices)):
            raise _BadRequest("guided_choice must be a non-empty list of non-empty strings")
        settings = Settings(max_tokens, temperature, top_p, n, seed, tuple(choices) if choices else None)
        outs = self.batcher.submit(messages, settings)
        completion_tokens = sum(o.completion_tokens for o in outs)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model") or self.model_name,
            "choices": [{"index": j, "message": {"role": "assistant", "content": o.text},
                         "finish_reason": o.finish_reason} for j, o in enumerate(outs)],
            "usage": {"prompt_tokens": outs[0].prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": outs[0].prompt_tokens + completion_tokens},
        }


def _messages(raw) -> list[dict]:
    if not isinstance(raw, list) or not raw:
        raise _BadRequest("messages must be a non-empty list of {role, content} objects")
    out = []
    for m in raw:
        if not isinstance(m, dict) or "role" not in m:
            raise _BadRequest("each message must be an object with a role and a content")
        content = m.get("content") or ""
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        out.append({"role": m["role"], "content": str(content)})
    return out


class _Handler(BaseHTTPRequestHandler):
    server: ChatServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/health":
            self._json(200, {"status": "ok"})
        elif self.path.rstrip("/") == "/v1/models":
            self._json(200, {"object": "list", "data": [
                {"id": self.server.model_name, "object": "model", "created": 0, "owned_by": "gadbench"}]})
        else:
            self._error(404, f"no route {self.path}; use /v1/chat/completions, /v1/models or /health")

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._error(404, f"no route {self.path}; use /v1/chat/completions")
            return
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise _BadRequest("the request body must be a JSON object")
            self._json(200, self.server.complete(body))
        except (json.JSONDecodeError, UnicodeDecodeError):
            self._error(400, "the request body is not valid JSON")
        except _BadRequest as exc:
            self._error(400, str(exc))
        except Exception as exc:  # a generation failure must not kill the server
            self._error(500, f"generation failed: {type(exc).__name__}: {exc}")

    def _error(self, status: int, message: str) -> None:
        kind = "invalid_request_error" if status < 500 else "server_error"
        self._json(status, {"error": {"message": message, "type": kind, "code": status}})

    def _json(self, status: int, obj: dict) -> None:
        data = json.dumps(obj).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def start_server(model, tokenizer, host: str = "127.0.0.1", port: int = 0, *, model_name: str = "local",
                 max_new_tokens: int = 256, max_batch: int = 8) -> tuple[ChatServer, threading.Thread]:
    """Serve in a daemon thread (port 0 picks a free port: see server.server_address); stop with
    server.shutdown(); server.server_close()."""
    server = ChatServer((host, port), model, tokenizer, model_name, max_new_tokens, max_batch)
    thread = threading.Thread(target=server.serve_forever, name="gadbench-serve", daemon=True)
    thread.start()
    return server, thread
