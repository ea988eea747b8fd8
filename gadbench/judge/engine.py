"""Run an LLM judging protocol over a ChatClient: build requests, send them in one batch, parse, count usage.

Concurrency, retries and the SQLite cache belong to the client. The engine scopes the client's cache
namespace to `<client namespace>/judge:<protocol namespace>` (prompt ids and hashes), and the gad-paper
references to `<client namespace>/judge-reference`, so a re-run over the same items sends no request and
re-parses the cached replies. A request whose reply does not parse is re-sent up to `protocol.reasks` times;
re-ask k is cached under `<judge namespace>/reask-<k>`, so it never gets the unparseable reply back from the
cache, and a later run re-uses both replies without sending anything. An item whose call failed (API error)
or whose reply still does not parse is invalid, with details["error"] saying which; it is never scored. A
re-asked item keeps the replies it set aside in details["unparsed"] and their number in details["reasked"].
"""

from __future__ import annotations

import copy
import dataclasses
from collections import Counter, defaultdict
from collections.abc import Sequence

from gadbench.judge.protocols import PARSE_FAILURE, LLMProtocol
from gadbench.judge.types import API_ERROR, JudgeItem, Judgment, invalid
from gadbench.llm.client import ChatClient, ChatResult


class JudgeRun(list):
    """The judgments (a list, in item order) plus `usage`: this run's client usage delta (requests, cached,
    retries, failures, prompt_tokens, completion_tokens, cost_usd) and parse_failures, api_errors, parsed
    (items whose calls all returned text), parse_failure_rate (parse failures / parsed), reasked (re-asks made,
    from the cache or not), orders_compared and orders_agreed (valid items judged in two orders, and those whose
    orders agreed), n_valid, n_total. Several runs add up with gadbench.judge.usage.add_usage."""

    def __init__(self, judgments: Sequence[Judgment], usage: dict):
        super().__init__(judgments)
        self.usage = usage


def _scoped(client: ChatClient, suffix: str) -> ChatClient:
    """A shallow copy of `client` (same cache, same usage counters) with a longer namespace."""
    scoped = copy.copy(client)
    scoped.namespace = f"{client.namespace}/{suffix}"
    return scoped


def _references(items: Sequence[JudgeItem], protocol: LLMProtocol, client: ChatClient) -> dict[str, ChatResult]:
    prompts = list(dict.fromkeys(it.prompt for it in items))
    results = _scoped(client, "judge-reference").run(
        [protocol.reference_request(p) for p in prompts], desc=f"{protocol.name} references"
    )
    return dict(zip(prompts, results, strict=True))


def judge(items: Sequence[JudgeItem], protocol: LLMProtocol, client: ChatClient) -> JudgeRun:
    """One Judgment per item, in order, judged by `protocol` through `client`."""
    before = dataclasses.asdict(client.usage)
    refs = _references(items, protocol, client) if protocol.writes_reference else {}
    planned: list[list | Judgment] = []
    for it in items:
        ref = refs.get(it.prompt)
        if ref is not None and ref.text is None:
            planned.append(invalid(f"{API_ERROR}: reference answer failed: {ref.error}"))
        else:
            planned.append(protocol.requests(it, ref.text if ref is not None else None))
    flat = [r for p in planned if isinstance(p, list) for r in p]
    results, unparsed, asked = _ask(flat, protocol, client)
    judgments = []
    k = 0
    for it, p in zip(items, planned, strict=True):
        if isinstance(p, Judgment):
            judgments.append(p)
            continue
        span = range(k, k + len(p))
        k += len(p)
        raws = [results[i].text for i in span]
        errors = [results[i].error for i in span if results[i].error is not None]
        j = invalid(f"{API_ERROR}: {errors[0]}", raws) if errors else protocol.parse(raws)
        if sum(asked[i] for i in span):
            j.details.update(reasked=sum(asked[i] for i in span), unparsed=[t for i in span for t in unparsed[i]])
        if it.prompt in refs:
            j.details["judge_reference"] = refs[it.prompt].text
        judgments.append(j)
    usage = _usage(judgments, before, dataclasses.asdict(client.usage))
    usage["reasked"] = sum(asked.values())
    return JudgeRun(judgments, usage)


def _ask(requests: list, protocol: LLMProtocol, client: ChatClient) -> tuple[list[ChatResult], defaultdict, Counter]:
    """Answer `requests`, re-sending each whose reply does not parse up to `protocol.reasks` times (re-ask k
    under its own cache scope). Returns the replies kept and, per request index, the unparsed replies they
    replaced and the number of re-asks sent."""
    scope = f"judge:{protocol.namespace}"
    results = _scoped(client, scope).run(requests, desc=f"{protocol.name} judge")
    unparsed: defaultdict[int, list[str]] = defaultdict(list)
    asked: Counter[int] = Counter()
    for attempt in range(1, protocol.reasks + 1):
        redo = [i for i, r in enumerate(results) if r.text is not None and protocol.parse_reply(r.text) is None]
        if not redo:
            break
        again = _scoped(client, f"{scope}/reask-{attempt}").run([requests[i] for i in redo],
                                                                desc=f"{protocol.name} re-ask {attempt}")
        for i, r in zip(redo, again, strict=True):
            asked[i] += 1
            if r.text is not None:  # a failed re-ask keeps the unparsed reply: a parse failure, not an API error
                unparsed[i].append(results[i].text)
                results[i] = r
    return results, unparsed, asked


def reparse(judgments: Sequence[Judgment], protocol: LLMProtocol) -> list[Judgment]:
    """Re-apply `protocol.parse` to stored raw replies (after a parser change); never calls the judge.
    Judgments without a full set of replies (API errors, unjudgeable items) are returned unchanged."""
    out = []
    for j in judgments:
        if j.raw and all(t is not None for t in j.raw):
            new = protocol.parse(list(j.raw))
            kept = {k: v for k, v in j.details.items() if k in ("judge_reference", "reasked", "unparsed")}
            new.details = {**kept, **new.details}
            out.append(new)
        else:
            out.append(j)
    return out


def _usage(judgments: list[Judgment], before: dict, after: dict) -> dict:
    delta = {k: after[k] - before[k] for k in before if k != "cost_usd"}
    cost = None if after["cost_usd"] is None else after["cost_usd"] - (before["cost_usd"] or 0.0)
    errors = [j.details.get("error", "") for j in judgments if not j.valid]
    parse_failures = sum(e == PARSE_FAILURE for e in errors)
    api_errors = sum(e.startswith(API_ERROR) for e in errors)
    parsed = sum(1 for j in judgments if j.raw and all(t is not None for t in j.raw))
    compared = [j.details["orders_agree"] for j in judgments if j.valid and "orders_agree" in j.details]
    return {
        "requests": delta["requests_sent"],
        "cached": delta["cache_hits"],
        "retries": delta["retries"],
        "failures": delta["failures"],
        "prompt_tokens": delta["prompt_tokens"],
        "completion_tokens": delta["completion_tokens"],
        "cost_usd": cost,
        "parse_failures": parse_failures,
        "api_errors": api_errors,
        "parsed": parsed,
        "parse_failure_rate": parse_failures / parsed if parsed else None,
        "orders_compared": len(compared),
        "orders_agreed": sum(compared),
        "n_valid": sum(j.valid for j in judgments),
        "n_total": len(judgments),
    }
