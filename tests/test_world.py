"""The synthetic world: exact teacher log-probabilities, response classification, gold metrics, the program
teacher's style frequencies, problem answers and problem sampling."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from gadbench.worlds import synthetic as w

# |V| = 5 tasks + 10 letters + 81 numbers (0..80) + 9 function words = 105
V = 105
ADD = w.Problem("add", ("3", "5"))


def test_constants_used_by_the_hand_computations():
    assert (w.EPS, w.STOP) == (1e-3, 0.25)
    assert w.STYLES == {"short": 0.6, "equation": 0.3, "sentence": 0.1}
    assert w.ANSWER_VOCAB_SIZE == V == len(set(w.vocabulary()))


# ------------------------------------------------------------------------------------- teacher_logprob


def test_teacher_logprob_short_match_includes_noise_mass():
    # "answer : 8" (3 words): (1 - EPS) * 0.6 + EPS * q, q = (1 - STOP)^2 * STOP * |V|^-3 = 0.5625 * 0.25 / 105^3
    p = 0.999 * 0.6 + 0.001 * 0.75**2 * 0.25 * 105.0**-3
    assert w.teacher_logprob(ADD, ("answer", ":", "8")) == pytest.approx(math.log(p), abs=1e-12)
    assert math.log(p) == pytest.approx(math.log(0.5994), abs=1e-9)  # the noise share is ~1e-10


def test_teacher_logprob_equation_and_sentence():
    eq = ("add", "(", "3", "5", ")", "=", "8")  # 7 words: q = 0.75^6 * 0.25 * 105^-7
    p = 0.999 * 0.3 + 0.001 * 0.75**6 * 0.25 * 105.0**-7
    assert w.teacher_logprob(ADD, eq) == pytest.approx(math.log(p), abs=1e-12)
    assert w.teacher_logprob(ADD, eq) == pytest.approx(math.log(0.2997), abs=1e-9)
    sent = ("the", "answer", "is", "8", ".")  # 5 words
    p = 0.999 * 0.1 + 0.001 * 0.75**4 * 0.25 * 105.0**-5
    assert w.teacher_logprob(ADD, sent) == pytest.approx(math.log(p), abs=1e-12)
    assert w.teacher_logprob(ADD, sent) == pytest.approx(math.log(0.0999), abs=1e-9)


def test_teacher_logprob_noise_branch_only():
    # "9" (no style, and wrong): only noise: EPS * STOP / |V| = 0.001 * 0.25 / 105 = 2.381e-6 -> log -12.94801
    assert w.teacher_logprob(ADD, ("9",)) == pytest.approx(math.log(0.001 * 0.25 / 105), abs=1e-12)
    assert w.teacher_logprob(ADD, ("9",)) == pytest.approx(-12.948010, abs=1e-5)
    # the student's prior style, 3 words: EPS * 0.75^2 * 0.25 * 105^-3
    lp = w.teacher_logprob(ADD, ("result", ":", "8"))
    assert lp == pytest.approx(math.log(0.001) + 2 * math.log(0.75) + math.log(0.25) - 3 * math.log(105), abs=1e-12)
    # a word outside the vocabulary, and the empty response, are impossible
    assert w.teacher_logprob(ADD, ("8", "hello")) == -math.inf
    assert w.teacher_logprob(ADD, ()) == -math.inf


# --------------------------------------------------------------------------------------------- classify


@pytest.mark.parametrize(
    "words, expected",
    [
        (("answer", ":", "8"), ("short", ("8",))),
        (("answer", ":", "b", "a"), ("short", ("b", "a"))),
        (("8",), ("other", None)),  # a bare answer is no teacher style
        (("answer", ":"), ("other", None)),
        (("add", "(", "3", "5", ")", "=", "8"), ("equation", ("8",))),
        (("the", "answer", "is", "8", "."), ("sentence", ("8",))),
        (("the", "answer", "is", "9", "."), ("sentence", ("9",))),
        (("result", ":", "8"), ("prior", ("8",))),
        (("hello",), ("other", None)),
        (("the", "8"), ("other", None)),
        (("the", "answer", "is", "."), ("other", None)),  # sentence frame without an answer
        ((), ("other", None)),
    ],
)
def test_classify_styles_and_garbage(words, expected):
    assert w.classify(ADD, words) == expected


def test_classify_equation_needs_the_prompts_own_arguments():
    rev = w.Problem("rev", ("c", "a", "b"))
    assert w.classify(rev, ("rev", "(", "c", "a", "b", ")", "=", "b", "a", "c")) == ("equation", ("b", "a", "c"))
    # an equation about other arguments is not this prompt's equation template
    assert w.classify(rev, ("rev", "(", "a", "b", "c", ")", "=", "c", "b", "a"))[0] == "other"


# ---------------------------------------------------------------------------------------------- gold metrics


def test_gold_metrics_small_list():
    prompts = ["add 3 5", "max 4 1 3", "min 4 1 3"]
    responses = ["answer : 8", "result : 3", "zebra"]
    m = w.gold_metrics(prompts, responses)
    lp1 = math.log(0.999 * 0.6 + 0.001 * 0.75**2 * 0.25 * 105.0**-3) / 3  # short style, 3 tokens
    lp2 = (math.log(0.001) + 2 * math.log(0.75) + math.log(0.25) - 3 * math.log(105)) / 3  # 3 tokens, noise only
    lp3 = math.log(0.001) + math.log(1 / 105) + math.log(0.25)  # impossible word: the floor, 1 token
    assert m["teacher_logprob"] == pytest.approx((lp1 + lp2 + lp3) / 3, abs=1e-12)
    assert m["accuracy"] == pytest.approx(1 / 3)  # only "answer : 8" is right (max is 4; "zebra" is no answer)
    assert m["length"] == pytest.approx((3 + 3 + 1) / 3)
    assert m["style_share/short"] == pytest.approx(1 / 3)
    assert m["style_share/prior"] == pytest.approx(1 / 3)
    assert m["style_share/other"] == pytest.approx(1 / 3)
    assert m["style_share/equation"] == m["style_share/sentence"] == 0.0


def test_gold_score_correct_in_every_style():
    for words in (("answer", ":", "4"), ("max", "(", "4", "1", "3", ")", "=", "4"), ("the", "answer", "is", "4", "."),
                  ("result", ":", "4")):
        assert w.gold_score("max 4 1 3", " ".join(words)).correct


# --------------------------------------------------------------------------------------------- teacher


def test_program_teacher_style_frequencies_match_styles():
    teacher = w.ProgramTeacher(seed=0)
    n = 20000
    counts = Counter(w.classify(ADD, teacher.sample_words(ADD))[0] for _ in range(n))
    for style, pi in w.STYLES.items():
        # binomial std <= sqrt(0.25 / 20000) = 0.0035; 0.015 is > 4 std
        assert counts[style] / n == pytest.approx(pi, abs=0.015), counts
    # noise (EPS = 0.001, expected 20) is the only source of other responses
    assert counts["other"] / n < 0.004
    assert counts["prior"] == 0


def test_program_teacher_is_seeded_and_returns_text():
    a = w.ProgramTeacher(seed=3).respond(["add 3 5"] * 20)
    assert a == w.ProgramTeacher(seed=3).respond(["add 3 5"] * 20)
    assert a != w.ProgramTeacher(seed=4).respond(["add 3 5"] * 20)
    styled = [x for x in a if w.classify(ADD, tuple(x.split()))[0] != "other"]
    assert set(styled) <= {"answer : 8", "add ( 3 5 ) = 8", "the answer is 8 ."}
    assert len(styled) >= 19  # noise has probability 0.001 per answer


# --------------------------------------------------------------------------------------------- problems


@pytest.mark.parametrize(
    "prompt, answer",
    [
        ("add 3 5", ("8",)),
        ("add 19 18", ("37",)),
        ("max 4 1 3", ("4",)),
        ("min 4 1 3", ("1",)),
        ("max 9 10", ("10",)),  # numeric, not lexicographic ("9" > "10" as strings)
        ("rev c a b", ("b", "a", "c")),
        ("rev 4 1 3", ("3", "1", "4")),
        ("sort 4 1 3", ("1", "3", "4")),
        ("sort 10 9 2", ("2", "9", "10")),
        ("sort c a b", ("a", "b", "c")),
    ],
)
def test_problem_answers(prompt, answer):
    p = w.parse_prompt(prompt)
    assert p.answer == answer
    assert p.prompt == prompt


def test_parse_prompt_rejects_other_tasks():
    with pytest.raises(ValueError, match="not a world prompt"):
        w.parse_prompt("mul 2 3")


def _sizes(p: w.Problem) -> tuple[set[int], int]:
    return {int(a) for a in p.args if a.isdigit()}, len(p.args)


def test_sample_problems_distinct_deterministic_and_split_sizes():
    ids = w.sample_problems(300, "id", seed=0)
    ood = w.sample_problems(300, "ood", seed=0)
    assert len({p.prompt for p in ids}) == 300 and len({p.prompt for p in ood}) == 300
    assert [p.prompt for p in ids] == [p.prompt for p in w.sample_problems(300, "id", seed=0)]
    assert [p.prompt for p in ids] != [p.prompt for p in w.sample_problems(300, "id", seed=1)]
    assert not {p.prompt for p in ids} & {p.prompt for p in ood}
    for p in ids:
        nums, n = _sizes(p)
        assert nums <= set(range(0, 10))
        assert n == 2 if p.task == "add" else n in (2, 3, 4)
    for p in ood:
        nums, n = _sizes(p)
        assert nums <= set(range(10, 20))
        assert n == 2 if p.task == "add" else n in (5, 6)  # list lengths never seen in training
    assert {p.task for p in ids} == {p.task for p in ood} == set(w.TASKS)
    # letters appear in rev/sort only, without repeats
    for p in ids + ood:
        letters = [a for a in p.args if not a.isdigit()]
        if letters:
            assert p.task in ("rev", "sort") and len(set(letters)) == len(letters) == len(p.args)
