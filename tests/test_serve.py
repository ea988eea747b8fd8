"""`gadbench serve` over a real tiny Qwen2 model, queried over real HTTP with the openai client."""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request

import openai
import pytest
import torch
from tinymodels import build_tiny_model

from gadbench.commands.serve import add_parser
from gadbench.config import ModelConfig
from gadbench.llm import ChatClient, ChatRequest
from gadbench.llm.serve import start_server
from gadbench.models import load_causal_lm

PROMPTS = ["def hello(world):", "import os and sys", "class Point:"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-qwen2")
    model, tokenizer = build_tiny_model(folder)
    return folder, model, tokenizer


@pytest.fixture(scope="module")
def served(tiny):
    _, model, tokenizer = tiny
    server, thread = start_server(model, tokenizer, "127.0.0.1", 0, model_name="tiny", max_new_tokens=12)
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()
    thread.join()


def reference_greedy(model, tokenizer, prompt: str, max_new_tokens: int) -> tuple[str, int, int]:
    """What plain model.generate answers greedily: (text, prompt tokens, generated tokens incl. EOS)."""
    enc = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    new = out[0, enc["input_ids"].shape[1]:].tolist()
    if tokenizer.eos_token_id in new:
        new = new[: new.index(tokenizer.eos_token_id) + 1]
    return tokenizer.decode(new, skip_special_tokens=True), enc["input_ids"].shape[1], len(new)


def test_greedy_answer_and_usage_equal_model_generate(served, tiny):
    _, model, tokenizer = tiny
    api = openai.OpenAI(base_url=served, api_key="unused", max_retries=0)
    for prompt in PROMPTS:
        r = api.chat.completions.create(model="tiny", messages=[{"role": "user", "content": prompt}],
                                        temperature=0, max_tokens=10)
        text, prompt_tokens, completion_tokens = reference_greedy(model, tokenizer, prompt, 10)
        assert r.choices[0].message.content == text and text.strip()
        assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (prompt_tokens, completion_tokens)
        assert r.choices[0].finish_reason == ("stop" if completion_tokens < 10 else "length")


def test_sampling_honours_n_seed_and_max_tokens(served):
    api = openai.OpenAI(base_url=served, api_key="unused", max_retries=0)

    def sample(seed):
        r = api.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x = 1"}],
                                        temperature=1.0, max_tokens=6, n=3, seed=seed)
        return r, [c.message.content for c in r.choices]

    first, texts = sample(7)
    assert len(texts) == 3 and len(set(texts)) > 1
    assert first.usage.completion_tokens <= 18
    assert sample(7)[1] == texts and sample(8)[1] != texts
    greedy = api.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x = 1"}],
                                         temperature=0, n=2)
    assert greedy.choices[0].message.content == greedy.choices[1].message.content
    assert greedy.usage.completion_tokens <= 2 * 12  # the server's --max-new-tokens default applies


def test_models_health_and_bad_requests(served):
    root = served.removesuffix("/v1")
    assert json.load(urllib.request.urlopen(root + "/health")) == {"status": "ok"}
    assert json.load(urllib.request.urlopen(served + "/models"))["data"][0]["id"] == "tiny"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(root + "/nope")
    assert err.value.code == 404
    api = openai.OpenAI(base_url=served, api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="messages must be a non-empty list"):
        api.chat.completions.create(model="tiny", messages=[])
    with pytest.raises(openai.BadRequestError, match="top_p"):
        api.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "a"}], top_p=0)


def test_chat_client_and_loader_against_the_real_server(served, tiny):
    folder, model, tokenizer = tiny
    client = ChatClient("tiny", base_url=served, concurrency=2, progress=False)
    results = client.run([ChatRequest([{"role": "user", "content": p}], max_tokens=10) for p in PROMPTS])
    assert [r.text for r in results] == [reference_greedy(model, tokenizer, p, 10)[0] for p in PROMPTS]
    assert client.usage.requests_sent == 3 and client.usage.completion_tokens > 0

    loaded = load_causal_lm(ModelConfig(path=str(folder)), download=False)  # what `gadbench serve --model DIR` loads
    assert reference_greedy(loaded.model.eval(), loaded.tokenizer, PROMPTS[0], 10) == reference_greedy(
        model, tokenizer, PROMPTS[0], 10)


def wait_until(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.01)


def test_waiting_requests_are_generated_together_with_the_answers_they_get_alone(tiny):
    """The first request's generation is held until 5 more wait: 4 greedy ones with its settings form the next
    batch, and one with other settings goes alone. Every answer is the one a lone request gets; a request
    that fails inside a batch fails alone."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    _, model, tokenizer = tiny
    server, thread = start_server(model, tokenizer, "127.0.0.1", 0, model_name="tiny", max_batch=4)
    batcher, inner = server.batcher, server.batcher.generate
    release = threading.Event()

    def held(conversations, settings):
        if not release.is_set():
            release.wait(60)
        if any(m["content"] == "boom" for c in conversations for m in c):
            raise RuntimeError("a request that cannot be generated")
        return inner(conversations, settings)

    batcher.generate = held
    api = openai.OpenAI(base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", api_key="unused", max_retries=0)
    prompts = ["def hello(world):", "import os and sys", "class Point:", "x = 1", "for i in range(3):"]

    def ask(prompt, max_tokens=10):
        r = api.chat.completions.create(model="tiny", messages=[{"role": "user", "content": prompt}],
                                        temperature=0, max_tokens=max_tokens)
        return r.choices[0].message.content

    try:
        with ThreadPoolExecutor(7) as pool:
            first = pool.submit(ask, prompts[0])
            wait_until(lambda: len(batcher.batches) == 1, "the first request's batch to start")
            rest = [pool.submit(ask, p) for p in prompts[1:]] + [pool.submit(ask, prompts[1], 6)]
            wait_until(lambda: len(batcher.waiting) == 5, "5 requests waiting")
            release.set()
            together = [first.result(), *(f.result() for f in rest)]
        assert batcher.batches == [1, 4, 1], batcher.batches  # 4 = max_batch; max_tokens 6 alone
        alone = [ask(p) for p in prompts] + [ask(prompts[1], 6)]
        assert together == alone
        assert together == [reference_greedy(model, tokenizer, p, 10)[0] for p in prompts] + [
            reference_greedy(model, tokenizer, prompts[1], 6)[0]]

        release.clear()
        seen = len(batcher.batches)
        with ThreadPoolExecutor(3) as pool:
            held_one = pool.submit(ask, prompts[2])
            wait_until(lambda: len(batcher.batches) > seen, "the held batch to start")
            bad, good = pool.submit(ask, "boom"), pool.submit(ask, prompts[3])
            wait_until(lambda: len(batcher.waiting) == 2, "2 requests waiting")
            release.set()
            assert held_one.result() == alone[2] and good.result() == alone[3]
            with pytest.raises(openai.InternalServerError, match="cannot be generated"):
                bad.result()
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join()


def test_closing_the_batcher_fails_the_requests_still_waiting():
    import threading

    from gadbench.llm.serve import Batcher, Settings

    started, release = threading.Event(), threading.Event()

    def generate(conversations, settings):
        started.set()
        release.wait(10)
        return [["done"] for _ in conversations]

    batcher = Batcher(generate, max_batch=1)
    results = {}

    def ask(name):
        try:
            results[name] = batcher.submit([{"role": "user", "content": name}], Settings(4, 0.0, 1.0, 1, None))
        except RuntimeError as exc:
            results[name] = str(exc)

    threads = [threading.Thread(target=ask, args=(name,)) for name in ("first", "second")]
    threads[0].start()
    started.wait(10)
    threads[1].start()
    wait_until(lambda: batcher.waiting, "the second request waiting")
    closing = threading.Thread(target=batcher.close)
    closing.start()
    threads[1].join(10)
    release.set()
    closing.join(10)
    threads[0].join(10)
    assert results == {"first": ["done"], "second": "the server is shutting down"}


def constrained_greedy(model, tokenizer, prompt: str, choices) -> str:
    """Greedy decoding by hand among the choices: at each step the likeliest token that keeps the reply a
    prefix of some choice, or EOS once the reply is a whole choice."""
    enc = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)
    ids, reply = enc["input_ids"], []
    seqs = [tokenizer.encode(c, add_special_tokens=False) for c in choices]
    eos = tokenizer.eos_token_id
    while True:
        allowed = {s[len(reply)] for s in seqs if len(s) > len(reply) and s[: len(reply)] == reply}
        if reply in seqs:
            allowed.add(eos)
        with torch.no_grad():
            logits = model(torch.cat([ids, torch.tensor([reply], dtype=torch.long)], dim=1)).logits[0, -1]
        token = max(allowed, key=lambda t: logits[t].item())
        if token == eos:
            return tokenizer.decode(reply)
        reply.append(token)


def test_guided_choice_answers_are_the_likeliest_allowed_choice(served, tiny):
    from gadbench.judge.protocols import GadPaper

    _, model, tokenizer = tiny
    api = openai.OpenAI(base_url=served, api_key="unused", max_retries=0)
    choices = list(GadPaper.choices)
    free = []
    for prompt in PROMPTS:
        messages = [{"role": "user", "content": prompt}]
        r = api.chat.completions.create(model="tiny", messages=messages, temperature=0, max_tokens=10,
                                        extra_body={"guided_choice": choices})
        assert r.choices[0].message.content == constrained_greedy(model, tokenizer, prompt, choices)
        assert r.choices[0].message.content in choices and r.choices[0].finish_reason == "stop"
        free.append(api.chat.completions.create(model="tiny", messages=messages, temperature=0,
                                                max_tokens=10).choices[0].message.content)
    assert not set(free) & set(choices)  # unconstrained, the tiny model never answers in the format
    with pytest.raises(openai.BadRequestError, match="guided_choice"):
        api.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "a"}],
                                    extra_body={"guided_choice": "7 8"})


def test_a_guided_judge_gives_valid_verdicts_where_a_free_one_cannot(served, tmp_path):
    """gad-paper through ChatClient and the served tiny model: free replies do not parse; guided ones all do,
    and each score is one of the protocol's verdict lines."""
    from gadbench.judge import GadPaper, JudgeItem, LLMJudge

    items = [JudgeItem(str(i), p, f"answer {i}", None) for i, p in enumerate(PROMPTS)]
    results = {}
    for guided in (False, True):
        client = ChatClient("tiny", base_url=served, cache_path=tmp_path / "judge.sqlite", progress=False)
        results[guided] = LLMJudge(GadPaper(max_tokens=10, guided=guided), client).judge(items)
    assert not any(j.valid for j in results[False])
    assert all(j.valid for j in results[True]), [j.details for j in results[True]]
    for j in results[True]:
        s, r = j.details["scores"][0][1], j.details["scores"][0][0]
        assert j.score == pytest.approx(100 * s / (s + r)) and {s, r} <= set(range(1, 11))


def test_model_not_available_offline_stops_with_one_sentence(capsys, tmp_path):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    expected = {"no-such-org/no-such-model": "hf download", str(tmp_path / "absent.gguf"): "no model folder"}
    for missing, needle in expected.items():
        args = parser.parse_args(["serve", "--model", missing])
        assert args.func(args) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and "\n" not in err
