"""Crash-safe SQLite cache of chat responses: one row per request key, committed as soon as it arrives."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created REAL NOT NULL
)"""


@dataclass(frozen=True)
class CachedResponse:
    text: str
    prompt_tokens: int
    completion_tokens: int


def request_key(model: str, namespace: str, messages: list[dict], temperature: float,
                max_tokens: int | None, seed: int | None, choices: tuple[str, ...] | None = None) -> str:
    """sha256 over the canonical JSON of everything that determines an answer (never the API key); `choices`
    enters only when set, so keys of unconstrained requests are those of earlier versions."""
    payload = {"model": model, "namespace": namespace, "messages": messages,
               "temperature": float(temperature), "max_tokens": max_tokens, "seed": seed}
    if choices is not None:
        payload["choices"] = list(choices)
    canon = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


class ResponseCache:
    """Successful responses only, each committed as its own transaction as soon as it arrives.

    WAL journal with synchronous=NORMAL: a commit has reached the OS (the WAL file) when `put` returns, so a
    killed process (kill -9, OOM) loses no committed row. Only an OS crash or power cut can lose the last
    commits, and those are re-asked on the next run. synchronous=FULL would add an fsync to every commit: about
    4 ms here, paid on the client's event loop for every response.

    Several processes may share one file; within a process, calls are serialised by a lock.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def get(self, key: str) -> CachedResponse | None:
        with self._lock:
            row = self._db.execute(
                "SELECT text, prompt_tokens, completion_tokens FROM responses WHERE key = ?", (key,)
            ).fetchone()
        return CachedResponse(*row) if row else None

    def put(self, key: str, model: str, response: CachedResponse) -> None:
        """Insert and commit at once (autocommit mode: each statement is its own transaction)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, model, text, prompt_tokens, completion_tokens, created)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (key, model, response.text, response.prompt_tokens, response.completion_tokens, time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
