"""Judge throughput against the loopback server with a fixed latency L per request at concurrency c.

The ideal rate is c / L items per second (mtbench-single: one call per item). The benchmark stores the
measured rate and its ratio to the ideal in extra_info (target >= 0.8). The server runs in a child process,
as a remote judge would, so its CPU time is not charged to the client. The client has an SQLite cache, as
`gadbench.judge.records.llm_judge` gives every LLM judge, so each answer's commit is timed; each round judges fresh items,
so nothing comes from the cache. Run:
    pytest benchmarks/test_bench_judge.py --benchmark-enable --benchmark-json=benchmarks/results/judge-cpu.json
"""

from __future__ import annotations

import asyncio
import itertools
import json
import multiprocessing as mp

import pytest

from gadbench.judge import JudgeItem, MtBenchSingle, judge
from gadbench.llm import ChatClient

WAVES = 4  # items per round = WAVES x c, so an ideal round takes WAVES x L seconds


REPLY = json.dumps({
    "id": "bench", "object": "chat.completion", "created": 0, "model": "bench-judge",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Fine.\nRating: [[7]]"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 97, "completion_tokens": 3, "total_tokens": 100},
}).encode()
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
            b"Content-Length: " + str(len(REPLY)).encode() + b"\r\n\r\n" + REPLY)


async def _connection(reader, writer, latency: float) -> None:
    """HTTP/1.1 keep-alive: read a request (headers + Content-Length body), wait `latency`, answer."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            await asyncio.sleep(latency)
            writer.write(RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _serve(latency: float, urls) -> None:
    """A remote judge whose only delay is `latency`: an asyncio server (one event loop, no thread per
    connection), so its own request handling does not add to L as the test suite's threaded server does."""
    async def main():
        server = await asyncio.start_server(lambda r, w: _connection(r, w, latency), "127.0.0.1", 0, backlog=128)
        urls.put(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1")
        await server.serve_forever()

    asyncio.run(main())


@pytest.fixture
def remote_judge(request):
    ctx = mp.get_context("fork")
    urls = ctx.Queue()
    proc = ctx.Process(target=_serve, args=(request.param, urls), daemon=True)
    proc.start()
    yield urls.get(timeout=30), request.param
    proc.terminate()
    proc.join(10)


@pytest.mark.parametrize("remote_judge", [0.2, 1.0], indirect=True, ids=lambda v: f"L{v}")
@pytest.mark.parametrize("concurrency", [8, 16])
def test_judge_throughput(benchmark, remote_judge, concurrency, tmp_path):
    url, latency = remote_judge
    n_items = WAVES * concurrency
    client = ChatClient("bench-judge", base_url=url, concurrency=concurrency, progress=False,
                        cache_path=tmp_path / "judge.sqlite")
    rounds = itertools.count()
    usage = []

    def fresh_items():
        r = next(rounds)
        return ([JudgeItem(f"{r}-{i}", f"round {r} question {i}", f"answer {i}", "teacher") for i in range(n_items)],), {}

    def run(items):
        out = judge(items, MtBenchSingle(), client)
        assert all(j.valid for j in out) and out.usage["cached"] == 0
        usage.append(out.usage)

    benchmark.pedantic(run, setup=fresh_items, rounds=3, iterations=1)
    if benchmark.stats:  # None under --benchmark-disable
        rate, ideal = n_items / benchmark.stats.stats.mean, concurrency / latency
        benchmark.extra_info.update(
            items_per_s=rate, ideal_items_per_s=ideal, ratio_to_ideal=rate / ideal, latency_s=latency, concurrency=concurrency,
            retries=sum(u["retries"] for u in usage),
        )
