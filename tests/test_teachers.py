"""Teachers and `teacher collect` over real servers and a real tiny model; kill -9 mid-collection, then resume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from loopback import LoopbackServer
from tinymodels import build_tiny_model

from gadbench.cli import main
from gadbench.io import read_jsonl
from gadbench.llm.serve import start_server
from gadbench.teachers import BACKENDS, Backend, make_teacher, register_teacher
from gadbench.teachers.collect import cache_path_for, collect

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["def hello(world):", "x", "import os and sys and json", "class Point:"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-qwen2")
    model, tokenizer = build_tiny_model(folder)
    return folder, model, tokenizer


def greedy(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    """Unbatched, unpadded model.generate: the reference answer."""
    enc = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)
    with torch.no_grad():
        new = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)[0, enc["input_ids"].shape[1]:]
    new = new.tolist()
    return tokenizer.decode(new[: new.index(tokenizer.eos_token_id)] if tokenizer.eos_token_id in new else new,
                            skip_special_tokens=True)


def write_data(path: Path, prompts: list[str], **extra) -> Path:
    path.write_text("".join(json.dumps({"prompt": p, "id": i, **extra}) + "\n" for i, p in enumerate(prompts)))
    return path


def test_specs_registry_and_errors(monkeypatch):
    with pytest.raises(ValueError, match="teacher backend `nope` in `nope:x` is not registered.*; use one of openai, hf"):
        make_teacher("nope:x")
    with pytest.raises(ValueError, match="openai:MODEL"):
        make_teacher("openai")
    with pytest.raises(ValueError, match="hf:PATH"):
        make_teacher("hf:")

    class Shout:
        def __init__(self, arg):
            self.arg = arg

        def respond(self, prompts):
            return [p.upper() + self.arg for p in prompts]

    monkeypatch.setattr("gadbench.teachers.base.BACKENDS", dict(BACKENDS))  # registrations end with the test
    register_teacher(Backend("shout", lambda arg, **opts: Shout(arg)))
    assert make_teacher("shout:!").respond(["a", "b"]) == ["A!", "B!"]
    with pytest.raises(ValueError, match="already registered"):
        register_teacher(Backend("openai", lambda arg, **opts: Shout(arg)))


def test_dataset_teacher_returns_shipped_responses_and_rejects_missing_ones():
    class Example:
        def __init__(self, prompt, teacher_response):
            self.prompt, self.teacher_response = prompt, teacher_response

    t = make_teacher("dataset", examples=[{"prompt": "a", "teacher_response": "A"}, Example("b", "B")])
    assert t.respond(["b", "a", "b"]) == ["B", "A", "B"]
    t = make_teacher("dataset", examples=[{"prompt": "a", "teacher_response": "A"}, {"prompt": "c"}])
    with pytest.raises(ValueError, match=r"no teacher response for prompt 1 \('c'\)"):
        t.respond(["a", "c"])


def test_hf_teacher_batched_left_padded_equals_unbatched_generate(tiny):
    folder, model, tokenizer = tiny
    t = make_teacher(f"hf:{folder}", temperature=0.0, max_tokens=10, batch_size=3)
    assert t.respond(PROMPTS) == [greedy(model, tokenizer, p, 10) for p in PROMPTS]
    sampler = make_teacher(f"hf:{folder}", temperature=1.0, max_tokens=8, batch_size=2, seed=3)
    first = sampler.respond(PROMPTS)
    assert sampler.respond(PROMPTS) == first and first != t.respond(PROMPTS)


def test_collect_from_the_local_server_then_rerun_sends_nothing(tiny, tmp_path, monkeypatch):
    _, model, tokenizer = tiny
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # a loopback endpoint needs no key
    server, thread = start_server(model, tokenizer, "127.0.0.1", 0, model_name="tiny")
    spec = f"openai:tiny@http://127.0.0.1:{server.server_address[1]}/v1"
    data = write_data(tmp_path / "data.jsonl", PROMPTS, meta={"source": "unit"})
    out = tmp_path / "out.jsonl"
    try:
        t = collect(spec, str(data), out, concurrency=2, teacher_opts={"temperature": 0.0, "max_tokens": 10})
        rows = list(read_jsonl(out))
        assert [r["prompt"] for r in rows] == PROMPTS
        assert [r["teacher_response"] for r in rows] == [greedy(model, tokenizer, p, 10) for p in PROMPTS]
        assert rows[2]["meta"] == {"id": 2, "source": "unit", "teacher": spec}
        assert t.usage.requests_sent == 4 and cache_path_for(out).exists()

        out.unlink()
        again = collect(spec, str(data), out, teacher_opts={"temperature": 0.0, "max_tokens": 10})
        assert again.usage.requests_sent == 0 and again.usage.cache_hits == 4
        assert list(read_jsonl(out)) == rows
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_collect_cli_reports_bad_input_in_one_sentence(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"question": "hi"}) + "\n")
    argv = ["teacher", "collect", "--teacher", "dataset", "--data", str(data), "--out", str(tmp_path / "o.jsonl")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "row 1" in err and "--prompt-field" in err and "\n" not in err
    assert main(argv + ["--prompt-field", "question"]) == 2  # the dataset has no teacher responses
    assert "no teacher response for prompt 0" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


def test_collect_fails_cleanly_when_retries_run_out_then_a_rerun_completes(tmp_path, capsys):
    with LoopbackServer(script=["500"] * 2) as server:
        data = write_data(tmp_path / "d.jsonl", ["a", "b"])
        argv = ["teacher", "collect", "--teacher", f"openai:m@{server.url}", "--data", str(data),
                "--out", str(tmp_path / "o.jsonl"), "--concurrency", "1", "--max-retries", "1"]
        assert main(argv) == 1  # two 500s exhaust "a"; "b" is answered and cached
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines[-1].startswith("gadbench: 1 of 2 teacher requests failed") and "rerun" in lines[-1], lines
        assert lines[-2] == ("usage: 3 requests sent (1 retries), 0 cache hits, 1 failures, 1 prompt + 2 completion "
                             "tokens, estimated cost unknown (no price for this model)"), lines  # spent, all the same
        assert not (tmp_path / "o.jsonl").exists()
        assert main(argv) == 0 and len(server.received) == 2 + 1 + 1
        assert [r["teacher_response"] for r in read_jsonl(tmp_path / "o.jsonl")] == ["echo: a", "echo: b"]
    assert main(argv[:-2] + ["--teacher", "dataset", "--max-retries", "1"]) == 2
    assert "does not take an option" in capsys.readouterr().err


@pytest.mark.slow
def test_kill_9_mid_collection_then_resume_loses_nothing_and_reasks_nothing(tmp_path):
    n, concurrency = 24, 3
    prompts = [f"prompt number {i}" for i in range(n)]
    data = write_data(tmp_path / "d.jsonl", prompts)
    out = tmp_path / "o.jsonl"
    with LoopbackServer(latency=0.25) as server:
        argv = [sys.executable, "-m", "gadbench.cli", "teacher", "collect",
                "--teacher", f"openai:m@{server.url}", "--data", str(data), "--out", str(out),
                "--concurrency", str(concurrency)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while sum(server.answered.values()) < n // 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        assert not out.exists()  # the output is only ever written whole
        cached = sqlite3.connect(cache_path_for(out)).execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        assert n // 2 - concurrency <= cached < n
        sent_before = len(server.received)

        resumed = subprocess.run(argv, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        assert f"{cached} cache hits" in resumed.stderr
        assert len(server.received) - sent_before == n - cached  # nothing that had arrived is asked again
        received = [b["messages"][-1]["content"] for b in server.received]
        assert sorted(set(received)) == sorted(prompts)
        assert len(received) - n <= concurrency  # only requests in flight at the kill were sent twice
    rows = list(read_jsonl(out))
    assert [r["prompt"] for r in rows] == prompts
    assert [r["teacher_response"] for r in rows] == [f"echo: {p}" for p in prompts]


def test_a_suites_api_teacher_asks_each_prompt_once_across_runs(tmp_path):
    """The runner's API teacher caches its answers under the suite's cache folder: a second run of the suite
    (another method, or another process of the same run) sends no request."""
    from gadbench.rundata import run_teacher
    from gadbench.suite import get_suite, runs_of

    with LoopbackServer() as server:
        spec = runs_of(get_suite("smoke", [f"teacher.spec=openai:m@{server.url}"]))[0]
        first = run_teacher(spec, tmp_path / "cache")
        assert first.respond(PROMPTS) == [f"echo: {p}" for p in PROMPTS]
        second = run_teacher(spec, tmp_path / "cache")
        assert second.respond(PROMPTS) == [f"echo: {p}" for p in PROMPTS]
        assert len(server.received) == len(PROMPTS)
        assert second.usage.requests_sent == 0 and second.usage.cache_hits == len(PROMPTS)


def test_run_data_records_what_the_api_teacher_cost(tmp_path):
    """load_run_data (the runner's data load) keeps the teacher's usage: the first load sends one request per
    prompt without a response, the second answers them all from the suite's cache."""
    from gadbench.rundata import load_run_data, run_teacher
    from gadbench.suite import get_suite, runs_of

    with LoopbackServer() as server:
        spec = runs_of(get_suite("smoke", [f"teacher.spec=openai:m@{server.url}", "data.train.limit=6",
                                           "data.validation_size=2", "data.eval.world-ood=null",
                                           "data.eval.world-id.limit=8"]))[0]
        first = load_run_data(spec, run_teacher(spec, tmp_path / "cache"))
        asked = len(first.train) + len(first.validation) + sum(map(len, first.eval.values()))
        assert all(ex.teacher_response == f"echo: {ex.prompt}" for ex in first.train)
        assert (first.teacher_usage["requests_sent"], first.teacher_usage["cache_hits"]) == (asked, 0)
        again = load_run_data(spec, run_teacher(spec, tmp_path / "cache"))
        assert (again.teacher_usage["requests_sent"], again.teacher_usage["cache_hits"]) == (0, asked)
        assert len(server.received) == asked
    assert load_run_data(spec, None).teacher_usage == {}  # the dataset teacher costs nothing
