"""A fault-injecting OpenAI-compatible chat server on 127.0.0.1 for tests (stdlib only, one thread per connection).

Behaviours are scripted per request, consumed in arrival order; when the script is empty, `default` applies:
  "ok"           200 with a chat.completion whose text is reply(body) (default: "echo: <last message>")
  "429" | "429:S" 429 rate limit, with "Retry-After: S" when S is given
  "500"          500 server error;   "status:N"  any status N with an OpenAI-style error body
  "hang"         never answer; the connection is closed when the server closes
  "malformed"    200 with a body that is not JSON;   "empty"  200 with an empty choice list
  "drop"         200 headers and half a body, then the connection is closed
  "chunked-cut"  200 with a chunked body whose first chunk ends mid-JSON, then the connection is closed
  "reset"        the connection is closed without any response
  "html"         200 with an HTML page (a proxy's error page) instead of JSON
  "error200"     200 whose JSON body is an error object, with no choices
  "badusage"     200 with the answer but non-numeric token counts in `usage`
  "nontext"      200 whose message content is a list of parts instead of a string
`latency` seconds pass before every response. The server records each request body and its headers (names lower-cased),
the connections they came on, the highest number of requests in flight, and per prompt how many "ok" answers it sent
in full.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def last_content(body: dict) -> str:
    return str(body["messages"][-1].get("content", ""))


class LoopbackServer:
    def __init__(self, script: Iterable[str] = (), default: str = "ok", latency: float = 0.0,
                 reply: Callable[[dict], str] | None = None):
        self.script = list(script)
        self.default = default
        self.latency = latency
        self.reply = reply or (lambda body: "echo: " + last_content(body))
        self.received: list[dict] = []
        self.headers: list[dict] = []
        self.answered: Counter[str] = Counter()
        self.connections: set[tuple] = set()  # the client (address, port) pairs requests came from
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd = _QuietServer(("127.0.0.1", 0), _make_handler(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def close(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _next(self, body: dict, headers: dict, peer: tuple) -> str:
        with self._lock:
            self.received.append(body)
            self.headers.append(headers)
            self.connections.add(peer)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            return self.script.pop(0) if self.script else self.default

    def _done(self) -> None:
        with self._lock:
            self._in_flight -= 1


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen backlog is 5: a client opening c > 5 connections at once overflows it, the
    # kernel drops the extra SYNs and the client retransmits them 1 s later (TCP's initial RTO). Real endpoints
    # accept far more; 128 keeps the benchmark measuring the client, not this server's accept queue.
    request_queue_size = 128

    def handle_error(self, request, client_address) -> None:
        pass  # a client that was killed or timed out leaves a broken pipe behind; that is expected here


def _completion(text: str, body: dict) -> dict:
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
    return {
        "id": "chatcmpl-loopback", "object": "chat.completion", "created": 0, "model": body.get("model", ""),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()),
                  "total_tokens": prompt_tokens + len(text.split())},
    }


def _make_handler(srv: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; with Nagle's algorithm on, each reply would wait
        # ~40 ms for the client's delayed ACK, a server artifact that real endpoints do not have.
        disable_nagle_algorithm = True

        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            behaviour = srv._next(body, {k.lower(): v for k, v in self.headers.items()}, self.client_address)
            try:
                if srv._stop.wait(srv.latency):
                    return
                self._act(behaviour, body)
            finally:
                srv._done()

        def _act(self, behaviour: str, body: dict) -> None:
            kind, _, arg = behaviour.partition(":")
            if kind == "ok":
                self._send(200, json.dumps(_completion(srv.reply(body), body)).encode())
                with srv._lock:
                    srv.answered[last_content(body)] += 1
            elif kind == "429":
                self._send(429, _error("rate limited"), {"Retry-After": arg} if arg else {})
            elif kind in ("500", "status"):
                self._send(int(arg or 500), _error(f"scripted status {arg or 500}"))
            elif kind == "hang":
                srv._stop.wait()
                self.close_connection = True
            elif kind == "malformed":
                self._send(200, b'{"id": "x", "choices": [')
            elif kind == "empty":
                self._send(200, json.dumps({**_completion("", body), "choices": []}).encode())
            elif kind == "drop":
                data = json.dumps(_completion(srv.reply(body), body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
            elif kind == "chunked-cut":
                data = json.dumps(_completion(srv.reply(body), body)).encode()[:40]
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                self.close_connection = True
            elif kind == "reset":
                self.close_connection = True
            elif kind == "html":
                self._send(200, b"<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html")
            elif kind == "error200":
                self._send(200, _error("the engine is overloaded"))
            elif kind == "badusage":
                data = _completion(srv.reply(body), body)
                data["usage"] = {"prompt_tokens": "many", "completion_tokens": None}
                self._send(200, json.dumps(data).encode())
            elif kind == "nontext":
                data = _completion("", body)
                data["choices"][0]["message"]["content"] = [{"type": "text", "text": srv.reply(body)}]
                self._send(200, json.dumps(data).encode())
            else:
                raise ValueError(f"unknown loopback behaviour {behaviour!r}")

        def _send(self, status: int, data: bytes, headers: dict | None = None,
                  content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _error(message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "loopback", "code": None}}).encode()
