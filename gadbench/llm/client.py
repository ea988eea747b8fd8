"""OpenAI-compatible chat client: bounded concurrency, retries with backoff, a crash-safe cache, usage and cost.

`ChatClient.run(requests)` returns one `ChatResult` per request, in order. Transient failures (429, 5xx,
timeouts, dropped connections, malformed bodies, empty choice lists) are retried with exponential backoff and
full jitter, honouring Retry-After; a request that still fails yields `ChatResult(text=None, error=...)`
without aborting the batch. 400/401/403/404 raise `FatalAPIError` at once. Identical requests (same cache key)
are sent once per batch and get the same answer; vary `seed` to draw several samples.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import ipaddress
import json
import os
import random
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx2  # the HTTP library under the openai SDK (openai>=3)
import openai
from tqdm import tqdm

from gadbench import GadbenchError
from gadbench.config.schema import url_problem
from gadbench.llm.cache import CachedResponse, ResponseCache, request_key
from gadbench.llm.pricing import cost_usd, resolve_price
from gadbench.llm.request import ChatRequest

DEFAULT_BASE_URL = "https://api.openai.com/v1"


@dataclass
class ChatResult:
    """`text` is None and `error` says why when the request failed for good; `cached` marks a cache hit."""

    text: str | None
    prompt_tokens: int
    completion_tokens: int
    cached: bool
    error: str | None


@dataclass
class Usage:
    """Totals over the client's lifetime. Tokens and cost count fresh responses only (cache hits are free);
    `requests_sent` counts HTTP attempts, retries included; `cost_usd` is None when no price is known."""

    requests_sent: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None

    def summary(self) -> str:
        cost = "unknown (no price for this model)" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        return (f"{self.requests_sent} requests sent ({self.retries} retries), {self.cache_hits} cache hits, "
                f"{self.failures} failures, {self.prompt_tokens} prompt + {self.completion_tokens} completion "
                f"tokens, estimated cost {cost}")


class FatalAPIError(GadbenchError, RuntimeError):
    """A failure retrying cannot fix (400/401/403/404, or a missing credential); the message is one sentence."""


class _Transient(Exception):
    """A failure worth retrying; `retry_after` is the server's requested wait in seconds, if it gave one."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class ChatClient:
    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 8, timeout: float = 60.0, max_retries: int = 6, backoff_base: float = 1.0,
                 backoff_max: float = 60.0, cache_path: str | Path | None = None, namespace: str = "",
                 price_per_mtok: tuple[float, float] | None = None, progress: bool = True):
        if not model:
            raise ValueError("ChatClient needs a model name; pass model='gpt-4o' or the name your server serves.")
        if concurrency < 1 or max_retries < 0:
            raise ValueError("concurrency must be >= 1 and max_retries >= 0; fix the ChatClient arguments.")
        self.model = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        if problem := url_problem(self.base_url):
            raise FatalAPIError(f"the endpoint's base URL {problem}.")
        self.api_key_env = api_key_env
        self._api_key = os.environ.get(api_key_env)
        if not self._api_key:
            if not _is_loopback(self.base_url):
                raise FatalAPIError(f"the environment variable ${api_key_env} is not set; export your API key "
                                    f"for {self.base_url} in it.")
            self._api_key = "no-key"  # local servers usually ignore the key
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.namespace = namespace
        self.price = resolve_price(model, price_per_mtok)
        self.progress = progress
        self.cache = ResponseCache(cache_path) if cache_path is not None else None
        self.usage = Usage(cost_usd=cost_usd(0, 0, self.price))
        self._thread: threading.Thread | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._sdk: openai.AsyncOpenAI | None = None

    def run(self, requests: Sequence[ChatRequest], desc: str = "requests") -> list[ChatResult]:
        """Answer `requests` in order (cache first, then the endpoint); blocks until all are done.

        Every call runs on the client's own event loop (a daemon thread) with one SDK client, so its
        connections (and TLS sessions) are reused from one call to the next instead of reopened per batch."""
        future = asyncio.run_coroutine_threadsafe(self._run(list(requests), desc), self._loop())
        try:
            return future.result()
        except BaseException:  # Ctrl-C: stop the batch's requests too
            future.cancel()
            raise

    def close(self) -> None:
        """Close the connections, stop the event loop and close the cache."""
        if self._thread is not None and self._thread.is_alive():
            if self._sdk is not None:
                asyncio.run_coroutine_threadsafe(self._sdk.close(), self._event_loop).result(timeout=30)
            self._event_loop.call_soon_threadsafe(self._event_loop.stop)
            self._thread.join(timeout=30)
            self._event_loop.close()
        self._thread = self._event_loop = self._sdk = None
        if self.cache is not None:
            self.cache.close()

    def _loop(self) -> asyncio.AbstractEventLoop:
        """The client's event loop, started on first use (and again in a forked child, where it is gone)."""
        if self._thread is None or not self._thread.is_alive():
            self._event_loop, self._sdk = asyncio.new_event_loop(), None
            self._thread = threading.Thread(target=self._event_loop.run_forever, name="gadbench-llm", daemon=True)
            self._thread.start()
        return self._event_loop

    def _client(self) -> openai.AsyncOpenAI:
        """The SDK client, created on the client's event loop (its connection pool belongs to that loop)."""
        if self._sdk is None:
            # The SDK's default limits (1000 connections, 100 kept alive), raised to the concurrency if above.
            limits = httpx2.Limits(max_connections=max(1000, self.concurrency),
                                  max_keepalive_connections=max(100, self.concurrency))
            http = openai.DefaultAsyncHttpxClient(verify=_tls_context(), timeout=self.timeout, limits=limits)
            self._sdk = openai.AsyncOpenAI(api_key=self._api_key, base_url=self.base_url, max_retries=0,
                                           timeout=self.timeout, http_client=http)
        return self._sdk

    async def _run(self, requests: list[ChatRequest], desc: str) -> list[ChatResult]:
        keys = [self._key(i, r) for i, r in enumerate(requests)]
        done: dict[str, ChatResult] = {}
        todo: dict[str, ChatRequest] = {}
        for key, req in zip(keys, requests, strict=True):
            hit = None if key in todo or self.cache is None else self.cache.get(key)
            if hit is not None:
                done[key] = ChatResult(hit.text, hit.prompt_tokens, hit.completion_tokens, True, None)
                self.usage.cache_hits += 1
            elif key not in done:
                todo[key] = req
        show = self.progress and sys.stderr.isatty()
        with tqdm(total=len(requests), initial=len(requests) - len(todo), desc=desc, disable=not show) as bar:
            if todo:
                queue = iter(list(todo.items()))
                client = self._client()

                async def worker() -> None:  # `concurrency` workers share one queue: the bound
                    for key, req in queue:
                        done[key] = await self._one(client, req, key)
                        bar.update()

                workers = [asyncio.create_task(worker()) for _ in range(min(self.concurrency, len(todo)))]
                try:
                    await asyncio.gather(*workers)
                except BaseException:
                    for w in workers:
                        w.cancel()
                    await asyncio.gather(*workers, return_exceptions=True)
                    raise
        return [dataclasses.replace(done[k]) for k in keys]

    def _key(self, index: int, req: ChatRequest) -> str:
        messages = list(req.messages)
        if not messages or not all(isinstance(m, dict) and "role" in m for m in messages):
            raise ValueError(f"request {index} needs a non-empty list of message dicts with a 'role'; "
                             f"build it as ChatRequest([{{'role': 'user', 'content': ...}}]).")
        return request_key(self.model, self.namespace, messages, req.temperature, req.max_tokens, req.seed,
                           req.choices)

    async def _one(self, client: openai.AsyncOpenAI, req: ChatRequest, key: str) -> ChatResult:
        """Send one request, retrying transient failures; a success is cached before it is returned."""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.usage.retries += 1
            self.usage.requests_sent += 1
            try:
                answer = await self._call(client, req)
            except _Transient as exc:
                last = exc
                if attempt < self.max_retries:
                    await asyncio.sleep(self._delay(attempt, exc.retry_after))
                continue
            if self.cache is not None:
                self.cache.put(key, self.model, answer)
            self._count(answer)
            return ChatResult(answer.text, answer.prompt_tokens, answer.completion_tokens, False, None)
        self.usage.failures += 1
        return ChatResult(None, 0, 0, False, f"gave up after {self.max_retries + 1} attempts; last error: {last}")

    async def _call(self, client: openai.AsyncOpenAI, req: ChatRequest) -> CachedResponse:
        body: dict = {"model": self.model, "messages": list(req.messages), "temperature": req.temperature}
        if req.max_tokens is not None:
            body["max_tokens"] = req.max_tokens
        if req.seed is not None:
            body["seed"] = req.seed
        if req.choices is not None:
            body["guided_choice"] = list(req.choices)
        try:
            # The SDK's plain `post` (its documented way to send a raw body), not `chat.completions.create`:
            # the same auth, headers, status errors and timeouts, without `create`'s walk of the typed
            # parameters, which took about 1.5 of the 4-5 ms of client CPU per request. The body is already
            # plain JSON, and `_parse` reads the reply itself.
            raw = await client.post("/chat/completions", body=body, cast_to=httpx2.Response)
        except openai.APIStatusError as exc:
            status = exc.status_code
            if status in (408, 409, 429) or status >= 500:
                raise _Transient(f"HTTP {status}", _retry_after(exc.response.headers)) from None
            raise FatalAPIError(self._fatal_message(status, exc)) from None
        except openai.APITimeoutError:
            raise _Transient(f"no response within {self.timeout:g} s") from None
        except openai.APIConnectionError as exc:
            raise _Transient(f"connection failed ({exc.__cause__ or exc})") from None
        return _parse(raw.text)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_max)
        return random.uniform(0.0, min(self.backoff_max, self.backoff_base * 2**attempt))

    def _count(self, answer: CachedResponse) -> None:
        u = self.usage
        u.prompt_tokens += answer.prompt_tokens
        u.completion_tokens += answer.completion_tokens
        u.cost_usd = cost_usd(u.prompt_tokens, u.completion_tokens, self.price)

    def _fatal_message(self, status: int, exc: openai.APIStatusError) -> str:
        where, env = self.base_url, self.api_key_env
        if status == 401:
            return f"the endpoint {where} rejected the API key in ${env} (401); set a valid key in ${env}."
        if status == 403:
            return (f"the API key in ${env} may not use model {self.model!r} at {where} (403); "
                    f"use a key with access or another model.")
        if status == 404:
            return (f"the endpoint {where} has no model {self.model!r} or no /chat/completions route (404); "
                    f"check the model name and that the base URL ends in /v1.")
        detail = _server_message(exc).replace(self._api_key, "***")
        return (f"the endpoint {where} rejected the request ({status}: {detail}); "
                f"check the model name, max_tokens and the messages.")


@functools.cache
def _tls_context():
    """The HTTP library's default verifying TLS context, built once per process rather than by every per-batch
    SDK client: loading the CA store took about 50 ms of CPU per `run` call."""
    return httpx2.create_ssl_context()


def _parse(body: str) -> CachedResponse:
    """Text and token usage of a chat.completion body; a malformed or empty body is transient."""
    try:
        data = json.loads(body)
        choices = data["choices"]
    except (json.JSONDecodeError, TypeError, KeyError):
        raise _Transient("malformed JSON body") from None
    if not choices:
        raise _Transient("response has an empty choice list")
    try:
        text = choices[0]["message"]["content"] or ""
    except (TypeError, KeyError):
        raise _Transient("response choice has no message content") from None
    if not isinstance(text, str):
        raise _Transient(f"response message content is a {type(text).__name__}, not text")
    try:
        usage = data.get("usage") or {}
        tokens = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    except (AttributeError, TypeError, ValueError):
        raise _Transient("malformed token usage in the body") from None
    return CachedResponse(text, *tokens)


def _retry_after(headers) -> float | None:
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        try:
            return max(0.0, float(headers[name]) * scale)
        except (KeyError, TypeError, ValueError):
            continue
    return None


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        body = body.get("error", body)
        if isinstance(body, dict):
            body = body.get("message", body)
    return str(body)[:200].replace("\n", " ")


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
