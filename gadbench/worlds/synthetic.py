"""The synthetic world: a task language, a programmatic black-box teacher with known style probabilities,
and a gold judge that computes exact teacher log-probabilities and task correctness.

Prompts are space-separated words, e.g. ``add 3 5``, ``rev c a b``, ``sort 4 1 3``, ``max 4 1 3``.
Teacher styles for ``add 3 5``: short ``answer : 8`` (0.6), equation ``add ( 3 5 ) = 8`` (0.3), sentence
``the answer is 8 .`` (0.1); the student's prior style is ``result : 8``.
The teacher answers in style s with probability pi_s (see STYLES), or, with probability EPS, emits noise
drawn from q (a geometric length times a uniform choice over the answer vocabulary). Hence for any
response y (a token list):

    p_T(y | x) = (1 - EPS) * sum_s pi_s * [y == render_s(x)] + EPS * q(y),
    q(y) = (1 - STOP) ** (len(y) - 1) * STOP * (1 / |V|) ** len(y)      (len(y) >= 1)

The student is pre-trained on a style the teacher never uses (``result : <answer>``), so distillation
has somewhere to go. Out-of-distribution prompts use the same tasks with unseen sizes.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass

TASKS = ("add", "max", "min", "rev", "sort")
LETTERS = tuple("abcdefghij")
MAX_NUMBER = 40

# Teacher styles and their probabilities: unequal, so mode-covering and mode-seeking students differ.
STYLES = {"short": 0.6, "equation": 0.3, "sentence": 0.1}
STUDENT_PRIOR_STYLE = "prior"
EPS = 1e-3
STOP = 0.25

# In-distribution and out-of-distribution task sizes: (number range, list lengths).
SPLITS = {
    "id": {"numbers": (0, 9), "lengths": (2, 3, 4)},
    "ood": {"numbers": (10, 19), "lengths": (5, 6)},
}

FUNCTION_WORDS = ("(", ")", "=", "the", "answer", "is", ".", "result", ":")


def vocabulary() -> list[str]:
    """Every word the world can produce (the student tokenizer's word vocabulary)."""
    numbers = [str(i) for i in range(MAX_NUMBER * 2 + 1)]
    return list(TASKS) + list(LETTERS) + numbers + list(FUNCTION_WORDS)


ANSWER_VOCAB_SIZE = len(vocabulary())


@dataclass(frozen=True)
class Problem:
    task: str
    args: tuple[str, ...]

    @property
    def prompt(self) -> str:
        return " ".join((self.task, *self.args))

    @property
    def answer(self) -> tuple[str, ...]:
        if self.task == "add":
            return (str(sum(int(a) for a in self.args)),)
        if self.task in ("max", "min"):
            f = max if self.task == "max" else min
            return (str(f(int(a) for a in self.args)),)
        if self.task == "rev":
            return tuple(reversed(self.args))
        return tuple(sorted(self.args, key=_sort_key))


def _sort_key(a: str):
    return (0, int(a), "") if a.isdigit() else (1, 0, a)


def parse_prompt(prompt: str) -> Problem:
    words = prompt.split()
    if not words or words[0] not in TASKS:
        raise ValueError(f"not a world prompt: {prompt!r}; prompts start with one of {', '.join(TASKS)}.")
    return Problem(words[0], tuple(words[1:]))


def render(problem: Problem, style: str, answer: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The response words of `style` for `problem` (with `answer` in place of the true one, if given)."""
    ans = problem.answer if answer is None else answer
    if style == "short":
        return ("answer", ":", *ans)
    if style == "equation":
        return (problem.task, "(", *problem.args, ")", "=", *ans)
    if style == "sentence":
        return ("the", "answer", "is", *ans, ".")
    if style == STUDENT_PRIOR_STYLE:
        return ("result", ":", *ans)
    raise KeyError(style)


def sample_problem(rng: random.Random, split: str = "id") -> Problem:
    lo, hi = SPLITS[split]["numbers"]
    task = rng.choice(TASKS)
    if task == "add":
        return Problem(task, (str(rng.randint(lo, hi)), str(rng.randint(lo, hi))))
    n = rng.choice(SPLITS[split]["lengths"])
    if task in ("rev", "sort") and rng.random() < 0.5:
        return Problem(task, tuple(rng.sample(LETTERS, n)))
    return Problem(task, tuple(str(rng.randint(lo, hi)) for _ in range(n)))


def sample_problems(n: int, split: str, seed: int) -> list[Problem]:
    """`n` distinct problems of a split, deterministic in (split, seed)."""
    rng = random.Random(f"{split}:{seed}")
    out, seen = [], set()
    while len(out) < n:
        p = sample_problem(rng, split)
        if p.prompt not in seen:
            seen.add(p.prompt)
            out.append(p)
    return out


class ProgramTeacher:
    """The black-box teacher: `respond(prompts)` returns text only; its randomness is its own seeded stream."""

    name = "program:world"

    def __init__(self, seed: int = 0):
        self.rng = random.Random(f"teacher:{seed}")

    def sample_words(self, problem: Problem) -> tuple[str, ...]:
        if self.rng.random() < EPS:
            vocab = vocabulary()
            words = [self.rng.choice(vocab)]
            while self.rng.random() > STOP:
                words.append(self.rng.choice(vocab))
            return tuple(words)
        style = self.rng.choices(list(STYLES), weights=list(STYLES.values()))[0]
        return render(problem, style)

    def respond(self, prompts: list[str]) -> list[str]:
        return [" ".join(self.sample_words(parse_prompt(p))) for p in prompts]


def teacher_logprob(problem: Problem, words: tuple[str, ...]) -> float:
    """Exact log p_T(words | problem), formula in the module docstring."""
    match = sum(pi for s, pi in STYLES.items() if render(problem, s) == tuple(words))
    n = len(words)
    noise = 0.0 if n == 0 else (1 - STOP) ** (n - 1) * STOP * (1.0 / ANSWER_VOCAB_SIZE) ** n
    if any(w not in _VOCAB_SET for w in words):
        noise = 0.0
    p = (1 - EPS) * match + EPS * noise
    return math.log(p) if p > 0 else -math.inf


_VOCAB_SET = frozenset(vocabulary())
_ALL_STYLES = (*STYLES, STUDENT_PRIOR_STYLE)
STYLE_NAMES = (*_ALL_STYLES, "other")  # every label `classify` can return


def classify(problem: Problem, words: tuple[str, ...]) -> tuple[str, tuple[str, ...] | None]:
    """(style, extracted answer) of a response; style "other" and answer None when no template fits."""
    for style in ("short", "equation", "sentence", STUDENT_PRIOR_STYLE):
        prefix = render(problem, style, answer=())
        if style == "sentence":
            head, tail = prefix[:-1], prefix[-1:]
            if len(words) > len(prefix) and words[: len(head)] == head and words[-1:] == tail:
                return style, tuple(words[len(head) : -1])
        elif len(words) > len(prefix) and words[: len(prefix)] == prefix:
            return style, tuple(words[len(prefix) :])
    return "other", None


@dataclass
class GoldScore:
    teacher_logprob_per_token: float
    correct: bool
    style: str
    length: int


def gold_score(prompt: str, response: str) -> GoldScore:
    """The gold judge for one response: exact teacher log-likelihood per token, correctness and style.

    The per-token log-probability is floored at log(EPS) + len * log(1/|V|) for impossible strings (words
    outside the vocabulary), so that one stray word does not make a mean infinite.
    """
    problem = parse_prompt(prompt)
    words = tuple(response.split())
    n = max(len(words), 1)
    lp = teacher_logprob(problem, words)
    if not math.isfinite(lp):
        lp = math.log(EPS) + n * math.log(1.0 / ANSWER_VOCAB_SIZE) + math.log(STOP)
    style, answer = classify(problem, words)
    return GoldScore(lp / n, answer == problem.answer, style, len(words))


def gold_metrics(prompts: list[str], responses: list[str]) -> dict[str, float]:
    """Mean gold metrics over responses: teacher log-prob per token, accuracy, and each style's share."""
    scores = [gold_score(p, r) for p, r in zip(prompts, responses, strict=True)]
    n = max(len(scores), 1)
    styles = Counter(s.style for s in scores)
    out = {
        "teacher_logprob": sum(s.teacher_logprob_per_token for s in scores) / n,
        "accuracy": sum(s.correct for s in scores) / n,
        "length": sum(s.length for s in scores) / n,
    }
    for style in STYLE_NAMES:
        out[f"style_share/{style}"] = styles.get(style, 0) / n
    return out
