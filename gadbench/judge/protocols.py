"""LLM judging protocols: which requests to send for an item and how to turn the replies into a Judgment.

`requests(item, reference)` builds the calls for one item; `parse(raws)` turns their reply texts (same order)
into a Judgment and depends on nothing else, so stored raw text can be re-parsed without calling the judge.

Every protocol parses each reply on its own (`parse_reply`, None when it does not parse); the engine re-sends
a request whose reply does not parse up to `reasks` times (default 1). With `guided=True` every judgment
request carries the protocol's `choices` (gad-paper: "s1 s2" for s1, s2 in 1..10; mtbench-single: "[[n]]";
pairwise: "[[A]]", "[[B]]", "[[C]]"), so a judge that cannot follow the format (a small local model) still
returns a verdict: the constrained reply is the verdict line the prompt asks for first, without the
explanation after it. Not the paper's protocol, which leaves the reply free. With two orders (pairwise always,
gad-paper with `swap=True`), details["orders_agree"] records whether the two orders gave the same outcome
(pairwise: win/tie/loss; gad-paper: which answer scored higher, or a tie).

- gad-paper (docs/paper.md, section 5.1): the judge first answers each prompt itself (its reference, one per
  distinct prompt); then it rates reference and student 1-10, both scores alone on the first line, with the
  prompt `gad-paper.v2`, a reconstruction of the paper's Fig. 8 from FastChat's Vicuna-era pairwise prompt (its
  differences from FastChat's: docs/judging.md; `version="v1"` also tells the judge to ignore length).
  Reference is Assistant 1 and student Assistant 2; `swap=True` adds the swapped order and averages.
  Item score = 100 x s / (s + r), averaged over orders.
- mtbench-single: FastChat's MT-bench single-answer grading, "[[n]]" in 1-10, the first one in the reply.
  As in FastChat, only questions of the categories that need a reference (NEEDS_REFERENCE: math, reasoning,
  coding) are graded against one: the data's own (GPT-4's answer, `item.reference`), else the teacher's
  response (a departure: FastChat always has GPT-4's; `MtBenchSingle.reference_of` tells which, from the row's
  stored category, reference and teacher response); every other question, and any item without a category,
  is graded without a reference. Item score = n.
- pairwise: student against `item.other` (default: the teacher response) in both orders. Per order the
  verdict gives the student a win, tie or loss; equal outcomes stand, different outcomes are a tie.
  Item score = 100 (win), 50 (tie), 0 (loss), so the mean is the win rate with ties counted half.
- rating: any prompt file whose reply ends in "[[n]]"; item score = n (a new judge's protocol, see Rating).

Each judge that uses a protocol is a record of gadbench.judge.records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from gadbench.judge.parse import parse_first_rating, parse_rating, parse_two_scores, parse_verdict
from gadbench.judge.prompts import load_prompt
from gadbench.judge.types import JudgeItem, Judgment, invalid
from gadbench.llm.request import ChatRequest

PARSE_FAILURE = "parse failure"


@dataclass(frozen=True)
class LLMProtocol:
    """Judge decoding settings and prompt version; `namespace` (prompt ids + hashes) keys the judge cache."""

    temperature: float = 0.0
    max_tokens: int | None = 2048
    seed: int | None = None
    version: str = "v1"
    reasks: int = 1  # re-sends of a request whose reply does not parse
    guided: bool = False  # replies constrained to `choices` (see the module docstring)
    name: ClassVar[str] = ""
    parse_reply: ClassVar[Callable[[str | None], object]]  # one reply's parsed value, or None
    prompt_names: ClassVar[tuple[str, ...]] = ()
    writes_reference: ClassVar[bool] = False  # the judge first answers each prompt itself (gad-paper)
    choices: ClassVar[tuple[str, ...]] = ()  # every verdict line the protocol parses

    @property
    def namespace(self) -> str:
        prompts = [load_prompt(f"{n}.{self.version}") for n in self.prompt_names]
        return "+".join(f"{p.id}@{p.sha}" for p in prompts)

    def request(self, messages: list[dict]) -> ChatRequest:
        return ChatRequest(tuple(messages), self.temperature, self.max_tokens, self.seed,
                           self.choices if self.guided else None)


@dataclass(frozen=True)
class GadPaper(LLMProtocol):
    version: str = "v2"  # a reconstruction of the paper's Fig. 8 (docs/judging.md); "v1" also mentions length
    swap: bool = False
    reference_max_tokens: int | None = None
    name = "gad-paper"
    prompt_names = ("gad-paper",)
    writes_reference = True
    parse_reply = staticmethod(parse_two_scores)
    choices = tuple(f"{a} {b}" for a in range(1, 11) for b in range(1, 11))

    def reference_request(self, prompt: str) -> ChatRequest:
        """The judge's own answer to the prompt (its reference), decoded like the judgments."""
        return ChatRequest(({"role": "user", "content": prompt},), self.temperature, self.reference_max_tokens, self.seed)

    def requests(self, item: JudgeItem, reference: str | None) -> list[ChatRequest] | Judgment:
        p = load_prompt(f"{self.name}.{self.version}")
        orders = [(reference, item.answer)] + ([(item.answer, reference)] if self.swap else [])
        return [self.request(p.render(question=item.prompt, answer_1=a1, answer_2=a2)) for a1, a2 in orders]

    def parse(self, raws: list[str | None]) -> Judgment:
        scores = [self.parse_reply(t) for t in raws]
        if any(s is None for s in scores):
            return invalid(PARSE_FAILURE, raws, scores=scores)
        # order 0: (reference, student); order 1: (student, reference)
        pairs = [(s[1], s[0]) if k == 0 else (s[0], s[1]) for k, s in enumerate(scores)]
        student = sum(p[0] for p in pairs) / len(pairs)
        reference = sum(p[1] for p in pairs) / len(pairs)
        ratio = sum(100 * s / (s + r) for s, r in pairs) / len(pairs)
        details = {"student": student, "reference": reference, "scores": scores}
        if len(pairs) == 2:
            details["orders_agree"] = len({(s > r) - (s < r) for s, r in pairs}) == 1
        return Judgment(ratio, True, raws, details)


NEEDS_REFERENCE = ("math", "reasoning", "coding", "arena-hard-200")  # FastChat's NEED_REF_CATS


@dataclass(frozen=True)
class MtBenchSingle(LLMProtocol):
    name = "mtbench-single"
    prompt_names = ("mtbench-single", "mtbench-single-noref")
    parse_reply = staticmethod(parse_first_rating)
    choices = tuple(f"[[{n}]]" for n in range(1, 11))

    @staticmethod
    def reference_of(item: JudgeItem) -> tuple[str | None, str]:
        """(reference text, where it comes from): the data's reference, else the teacher's response, for a
        category that needs one; (None, "none") otherwise."""
        if item.category not in NEEDS_REFERENCE:
            return None, "none"
        if item.reference is not None:
            return item.reference, "data"
        return (item.teacher_response, "teacher") if item.teacher_response is not None else (None, "missing")

    def requests(self, item: JudgeItem, reference: str | None) -> list[ChatRequest] | Judgment:
        text, source = self.reference_of(item)
        if source == "missing":
            return invalid(f"no reference answer for a {item.category} question (FastChat grades these against one)")
        if text is None:
            p = load_prompt(f"{self.name}-noref.{self.version}")
            return [self.request(p.render(question=item.prompt, answer=item.answer))]
        p = load_prompt(f"{self.name}.{self.version}")
        return [self.request(p.render(question=item.prompt, reference=text, answer=item.answer))]

    def parse(self, raws: list[str | None]) -> Judgment:
        rating = self.parse_reply(raws[0])
        if rating is None:
            return invalid(PARSE_FAILURE, raws)
        return Judgment(rating, True, raws, {"rating": rating})


@dataclass(frozen=True)
class Rating(LLMProtocol):
    """One call per item: the template `prompt` (a name under gadbench/judge/prompts/, or a `.txt` path) filled
    with the fields it names of question, answer and reference (the teacher's response); the reply's "[[n]]" is
    the item's score. A new rating judge is this protocol with its own prompt file."""

    prompt: str = ""
    name = "rating"
    parse_reply = staticmethod(parse_rating)
    choices = tuple(f"[[{n}]]" for n in range(1, 11))

    @property
    def namespace(self) -> str:
        p = load_prompt(self.prompt)
        return f"{p.id}@{p.sha}"

    def requests(self, item: JudgeItem, reference: str | None) -> list[ChatRequest] | Judgment:
        p = load_prompt(self.prompt)
        values = {"question": item.prompt, "answer": item.answer, "reference": item.teacher_response}
        if "reference" in p.fields and item.teacher_response is None:
            return invalid("no reference answer to rate against")
        return [self.request(p.render(**{k: v for k, v in values.items() if k in p.fields}))]

    def parse(self, raws: list[str | None]) -> Judgment:
        rating = self.parse_reply(raws[0])
        if rating is None:
            return invalid(PARSE_FAILURE, raws)
        return Judgment(rating, True, raws, {"rating": rating})


_OUTCOME = {("A", 0): "win", ("B", 0): "loss", ("A", 1): "loss", ("B", 1): "win", ("C", 0): "tie", ("C", 1): "tie"}
_POINTS = {"win": 100.0, "tie": 50.0, "loss": 0.0}


@dataclass(frozen=True)
class Pairwise(LLMProtocol):
    name = "pairwise"
    prompt_names = ("pairwise",)
    parse_reply = staticmethod(parse_verdict)
    choices = ("[[A]]", "[[B]]", "[[C]]")

    def requests(self, item: JudgeItem, reference: str | None) -> list[ChatRequest] | Judgment:
        other = item.other if item.other is not None else item.teacher_response
        if other is None:
            return invalid("no answer to compare with (item.other and teacher_response are both None)")
        p = load_prompt(f"{self.name}.{self.version}")
        orders = [(item.answer, other), (other, item.answer)]  # order 0: student is A; order 1: student is B
        return [self.request(p.render(question=item.prompt, answer_a=a, answer_b=b)) for a, b in orders]

    def parse(self, raws: list[str | None]) -> Judgment:
        verdicts = [self.parse_reply(t) for t in raws]
        if any(v is None for v in verdicts):
            return invalid(PARSE_FAILURE, raws, verdicts=verdicts)
        outcomes = [_OUTCOME[v, k] for k, v in enumerate(verdicts)]
        agree = len(set(outcomes)) == 1
        outcome = outcomes[0] if agree else "tie"
        return Judgment(_POINTS[outcome], True, raws, {"outcome": outcome, "verdicts": verdicts, "orders_agree": agree})
