"""Judge throughput against the loopback server with a fixed latency L per request at concurrency c.

The ideal rate is c / L items per second (mtbench-single: one call per item). The benchmark stores the
measured rate and its ratio to the ideal in extra_info (target >= 0.8). The server runs in a child process,
as a remote judge would, so its CPU time is not charged to the client. The client has an SQLite cache, as
`gadbench.judge.factory` gives every judge, so each answer's commit is timed; each round judges fresh items,
so nothing comes from the cache. Run:
    pytest benchmarks/test_bench_judge.py --benchmark-enable --benchmark-json=benchmarks/results/judge-cpu.json
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from loopback import LoopbackServer  # noqa: E402

from gadbench.judge import JudgeItem, MtBenchSingle, judge  # noqa: E402
from gadbench.llm import ChatClient  # noqa: E402

WAVES = 4  # items per round = WAVES x c, so an ideal round takes WAVES x L seconds


def _serve(latency: float, urls, stop) -> None:
    with LoopbackServer(reply=lambda body: "Fine.\nRating: [[7]]", latency=latency) as srv:
        urls.put(srv.url)
        stop.wait()


@pytest.fixture
def remote_judge(request):
    ctx = mp.get_context("fork")
    urls, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_serve, args=(request.param, urls, stop), daemon=True)
    proc.start()
    yield urls.get(timeout=30), request.param
    stop.set()
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
