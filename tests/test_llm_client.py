"""ChatClient against a real fault-injecting HTTP server on 127.0.0.1: retries, fatal errors, cache, concurrency."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from loopback import LoopbackServer

from gadbench.llm import ChatClient, ChatRequest, FatalAPIError

SECRET = "sk-test-DO-NOT-LEAK-4f9a7c"


def ask(text: str, **kw) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": text}], **kw)


def client(server: LoopbackServer, **kw) -> ChatClient:
    opts = dict(model="m", base_url=server.url, backoff_base=0.01, backoff_max=0.05, timeout=5.0, progress=False)
    return ChatClient(**{**opts, **kw})


@pytest.fixture()
def server():
    with LoopbackServer() as s:
        yield s


@pytest.mark.parametrize("fault", ["429", "500", "status:503", "malformed", "empty", "drop", "hang"])
def test_each_transient_fault_is_retried_until_success(server, fault):
    server.script = [fault, fault]
    c = client(server, timeout=0.5 if fault == "hang" else 5.0)
    [res] = c.run([ask("hello")])
    assert res.text == "echo: hello" and res.error is None and not res.cached
    assert len(server.received) == 3
    assert (c.usage.requests_sent, c.usage.retries, c.usage.failures) == (3, 2, 0)


def test_retry_after_header_is_honoured(server):
    server.script = ["429:0.6"]
    c = client(server, backoff_max=5.0)
    t0 = time.monotonic()
    [res] = c.run([ask("x")])
    assert res.text == "echo: x"
    assert time.monotonic() - t0 >= 0.6  # jittered backoff alone would wait at most 0.01 s


def test_rate_limit_storm_is_ridden_out(server):
    server.script = ["429"] * 20
    c = client(server, concurrency=4, max_retries=30)
    results = c.run([ask(f"q{i}") for i in range(6)])
    assert [r.text for r in results] == [f"echo: q{i}" for i in range(6)]
    assert c.usage.retries == 20 and c.usage.failures == 0 and len(server.received) == 26


def test_exhausted_retries_yield_an_error_result_and_the_batch_goes_on(server):
    server.script = ["500"] * 3
    c = client(server, concurrency=1, max_retries=2)
    first, second = c.run([ask("a"), ask("b")])
    assert first.text is None and "3 attempts" in first.error and "HTTP 500" in first.error
    assert second.text == "echo: b" and second.error is None
    assert c.usage.failures == 1


@pytest.mark.parametrize("status,needle", [(401, "$GB_TEST_KEY"), (400, "400"), (403, "403"), (404, "404")])
def test_fatal_statuses_are_not_retried(server, monkeypatch, status, needle):
    monkeypatch.setenv("GB_TEST_KEY", SECRET)
    server.script = [f"status:{status}"]
    c = client(server, api_key_env="GB_TEST_KEY")
    with pytest.raises(FatalAPIError) as err:
        c.run([ask("x")])
    message = str(err.value)
    assert needle in message and SECRET not in message and "\n" not in message
    assert len(server.received) == 1


def test_missing_key_for_a_remote_endpoint_names_the_variable(monkeypatch):
    monkeypatch.delenv("GB_ABSENT_KEY", raising=False)
    with pytest.raises(FatalAPIError, match=r"\$GB_ABSENT_KEY is not set"):
        ChatClient("gpt-4o", base_url="https://api.example.com/v1", api_key_env="GB_ABSENT_KEY")


def test_loopback_endpoint_needs_no_key(server, monkeypatch):
    monkeypatch.delenv("GB_ABSENT_KEY", raising=False)
    [res] = client(server, api_key_env="GB_ABSENT_KEY").run([ask("x")])
    assert res.text == "echo: x"


def test_cache_hit_sends_zero_requests_and_key_never_reaches_the_file(server, monkeypatch, tmp_path):
    monkeypatch.setenv("GB_TEST_KEY", SECRET)
    path = tmp_path / "cache.sqlite"
    reqs = [ask(f"q{i}", max_tokens=8, seed=1) for i in range(5)] + [ask("q0", max_tokens=8, seed=1)]
    first = client(server, api_key_env="GB_TEST_KEY", cache_path=path)
    out1 = first.run(reqs)
    assert len(server.received) == 5  # the duplicate is sent once
    assert server.headers[0]["authorization"] == f"Bearer {SECRET}"
    assert server.received[0]["max_tokens"] == 8 and server.received[0]["seed"] == 1
    first.close()

    again = client(server, api_key_env="GB_TEST_KEY", cache_path=path)
    out2 = again.run(reqs)
    assert len(server.received) == 5 and again.usage.requests_sent == 0 and again.usage.cache_hits == 6
    assert [r.text for r in out2] == [r.text for r in out1] and all(r.cached for r in out2)
    assert [r.completion_tokens for r in out2] == [r.completion_tokens for r in out1]
    again.close()

    changed = client(server, cache_path=path, namespace="judge-v2")
    changed.run([ask("q0", max_tokens=8, seed=1)])
    assert len(server.received) == 6  # a different namespace is a different key
    changed.close()

    for f in tmp_path.iterdir():
        assert SECRET.encode() not in f.read_bytes(), f.name


def test_failures_are_not_cached(server, tmp_path):
    server.script = ["500", "500"]
    c = client(server, max_retries=1, cache_path=tmp_path / "c.sqlite")
    [res] = c.run([ask("x")])
    assert res.error is not None
    [res] = c.run([ask("x")])
    assert res.text == "echo: x" and not res.cached
    assert len(server.received) == 3


def test_each_answer_is_committed_as_soon_as_it_arrives(server, tmp_path):
    path = tmp_path / "c.sqlite"
    server.script = ["ok", "hang"]
    c = client(server, concurrency=1, max_retries=0, timeout=1.0, cache_path=path)
    worker = threading.Thread(target=c.run, args=([ask("a"), ask("b")],))
    worker.start()
    rows = []
    while not rows and worker.is_alive():
        rows = sqlite3.connect(path).execute("SELECT text FROM responses").fetchall() if path.exists() else []
        time.sleep(0.02)
    assert rows == [("echo: a",)] and worker.is_alive()  # seen by another connection while "b" still hangs
    worker.join()


def test_concurrency_bound_is_respected(server):
    server.latency = 0.2
    c = client(server, concurrency=3)
    results = c.run([ask(f"q{i}") for i in range(10)])
    assert [r.text for r in results] == [f"echo: q{i}" for i in range(10)]
    assert server.max_in_flight == 3


def test_many_simultaneous_connections_are_served_without_a_stall(server):
    # socketserver's default listen backlog of 5 dropped the SYNs of a burst of 16 connections; each dropped one
    # came back only after TCP's 1 s retransmit, long after the others (0.2 s) had finished, so fewer than 16
    # were ever in flight together.
    server.latency = 0.2
    c = client(server, concurrency=16)
    results = c.run([ask(f"q{i}") for i in range(16)])
    assert all(r.error is None for r in results) and server.max_in_flight == 16


def test_batches_reuse_the_clients_connections(server):
    """One event loop and one connection pool per client: later batches go over the connections the first
    opened (no new TCP or TLS handshakes per batch), and close() ends them."""
    server.latency = 0.05
    c = client(server, concurrency=2)
    for batch in range(3):
        assert all(r.error is None for r in c.run([ask(f"b{batch}-q{i}") for i in range(4)]))
    assert len(server.received) == 12 and len(server.connections) == 2
    c.close()
    assert c.run([ask("after close")])[0].text == "echo: after close"  # a closed client's next batch opens a new connection
    assert len(server.connections) == 3


def test_usage_and_cost_are_counted(server):
    c = client(server, price_per_mtok=(1.0, 2.0))
    c.run([ask("one two three")])
    u = c.usage
    assert (u.prompt_tokens, u.completion_tokens) == (3, 4)  # words of "one two three" / "echo: one two three"
    assert u.cost_usd == pytest.approx((3 * 1.0 + 4 * 2.0) / 1e6)
    assert ChatClient("gpt-4o-mini-2024-07-18", base_url=server.url).price == (0.15, 0.60)
    assert ChatClient("my-local-model", base_url=server.url).usage.cost_usd is None


def test_a_suite_judge_is_priced_by_its_own_model(server, tmp_path):
    """A locally served judge has no price unless judge.price_per_mtok gives one; gpt-4o has its list price."""
    from gadbench.judge.records import JUDGES
    from gadbench.suite import get_suite, runs_of

    def price(*settings: str):
        spec = runs_of(get_suite("sharegpt-smol", ["eval.judges=[gad-paper]", f"judge.base_url={server.url}",
                                                   *settings]))[0]
        return JUDGES["gad-paper"].build(spec, tmp_path).client.price

    assert price("judge.model=smollm2") is None and price("judge.model=gpt-4o") == (2.5, 10.0)
    assert price("judge.model=smollm2", "judge.price_per_mtok=[1.0, 2.0]") == (1.0, 2.0)


def test_malformed_request_is_rejected_before_sending(server):
    with pytest.raises(ValueError, match="request 1 needs a non-empty list"):
        client(server).run([ask("ok"), ChatRequest([])])
    assert server.received == []


def test_choices_are_sent_as_guided_choice_and_keyed_apart(server, tmp_path):
    """A constrained request carries `guided_choice` and has its own cache key; an unconstrained request keeps
    the key it had before choices existed (sha256 of the canonical JSON below, computed here by hand)."""
    import hashlib
    import json

    from gadbench.llm.cache import request_key

    c = client(server, cache_path=tmp_path / "cache.sqlite")
    c.run([ask("q", max_tokens=4), ask("q", max_tokens=4, choices=("[[A]]", "[[B]]"))])
    guided = [body.get("guided_choice") for body in server.received]  # requests run concurrently: any order
    assert sorted(guided, key=str) == [None, ["[[A]]", "[[B]]"]], guided
    c.close()
    messages = [{"role": "user", "content": "q"}]
    canon = json.dumps({"model": "m", "namespace": "ns", "messages": messages, "temperature": 0.0,
                        "max_tokens": 4, "seed": None}, sort_keys=True, separators=(",", ":"))
    assert request_key("m", "ns", messages, 0.0, 4, None) == hashlib.sha256(canon.encode()).hexdigest()
    assert request_key("m", "ns", messages, 0.0, 4, None, ("[[A]]",)) != request_key("m", "ns", messages, 0.0, 4, None)
