"""Judge reply parsers, prompt templates and per-protocol parsing into Judgments."""

from __future__ import annotations

from pathlib import Path

import pytest

from gadbench.judge import GadPaper, JudgeItem, MtBenchSingle, Pairwise
from gadbench.judge.parse import parse_first_rating, parse_rating, parse_two_scores, parse_verdict
from gadbench.judge.prompts import load_prompt


@pytest.mark.parametrize(
    "text, expected",
    [
        ("8 7\nAssistant 1 is more detailed.", (8.0, 7.0)),  # well-formed
        ("8 7 \n\nExplanation: 3 points.", (8.0, 7.0)),  # numbers in the explanation are ignored
        ("8, 7", (8.0, 7.0)),
        ("**8 7**", (8.0, 7.0)),
        ("8.5 6.5\n", (8.5, 6.5)),  # decimals
        ("Assistant 1: 8/10, Assistant 2: 7/10\nwhy", (8.0, 7.0)),
        ("Assistant 1: 8/10\nAssistant 2: 7.5/10\nwhy", (8.0, 7.5)),  # one labelled score per line
        ("Let me think.\nAssistant 1 score: 6\nAssistant 2 score: 9", (6.0, 9.0)),
        ("Both answers are fine.\nScores: 8 9\nmore", (8.0, 9.0)),  # prose first, scores on a later line
        ("Both answers are fine.\n8 9", (8.0, 9.0)),
        ("10/10 9 out of 10", (10.0, 9.0)),
        ("  \n7 7\n", (7.0, 7.0)),  # leading blank line
        # labels name the scores: by label, whatever the order (issue 19, item 6)
        ("I'd give Assistant 2 a 9 and Assistant 1 a 7.", (7.0, 9.0)),
        ("Assistant 2: 9, Assistant 1: 7\nwhy", (7.0, 9.0)),
        ("**Assistant 2**: 9/10 | **Assistant 1**: 6.5/10", (6.5, 9.0)),
        ("Assistant 2 receives 8 while Assistant 1 receives 6.\nExplanation with 2 numbers 3.", (6.0, 8.0)),
        ("9 for Assistant 2 and 7 for Assistant 1", (7.0, 9.0)),
        ("Assistant 2's score is 4 out of 10 and Assistant 1's score is 8 out of 10.", (8.0, 4.0)),
        ("Assistant 2 and Assistant 1 get 9 and 7", (7.0, 9.0)),
        ("8 7 (Assistant 1 is more precise than Assistant 2)", (8.0, 7.0)),  # labels are commentary
        ("Assistant 2: 9\nAssistant 1: 7", (7.0, 9.0)),  # one labelled score per line, reversed
        ("Assistant 1: 8, Assistant 2: 7", (8.0, 7.0)),
    ],
)
def test_two_scores_accepted(text, expected):
    assert parse_two_scores(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        None,
        "8",  # one score
        "Score: 8 7 3",  # three numbers on the score line
        "11 7",  # out of range
        "0 5",
        "-3 5",
        "Assistant 1 is better.\nAssistant 2 gave 3 examples",  # prose only
        "The answers are similar.\nI like both.",  # missing scores
        "Assistant 2 gets 9 and 7 goes to Assistant 1",  # labelled, but which number is whose is a guess
        "Assistant 2: 11, Assistant 1: 7",  # labelled, out of range
    ],
)
def test_two_scores_rejected(text):
    assert parse_two_scores(text) is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Good answer.\nRating: [[5]]", 5.0),
        ("The format is [[rating]]. ... Rating: [[7]]", 7.0),
        ("[[5.5]] at first, finally [[7]]", 7.0),  # the last one wins
        ("Rating: [8]", 8.0),
        ("Rating: 6", 6.0),
        ("Rating: [[10]]", 10.0),
        ("Rating: [[11]]", None),
        ("Rating: [[0]]", None),
        ("no rating here", None),
        (None, None),
    ],
)
def test_rating(text, expected):
    assert parse_rating(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Good answer.\nRating: [[5]]", 5.0),
        ("[[5.5]] at first, finally [[7]]", 5.5),  # FastChat takes the first
        ("a [4] aside, then Rating: [[7]]", 7.0),  # "[[n]]" anywhere before "[n]"
        ("Rating: [8]", 8.0),
        ("Rating: 6", None),  # FastChat reads brackets only
        ("Rating: [[11]], then [[7]]", None),  # the first out of range is a failure, not skipped
        (None, None),
    ],
)
def test_mtbench_single_reads_the_first_rating_as_fastchat_does(text, expected):
    assert parse_first_rating(text) == expected == MtBenchSingle().parse([text]).score


@pytest.mark.parametrize(
    "text, expected",
    [("[[A]]", "A"), ("Final verdict: [[ B ]]", "B"), ("tie [[C]]", "C"), ("[[B]] no wait [[A]]", "A"), ("A wins", None)],
)
def test_verdict(text, expected):
    assert parse_verdict(text) == expected


def test_prompt_render_fills_fields_once():
    p = load_prompt("gad-paper.v2")
    msgs = p.render(question="Q?", answer_1="has {answer_2} inside", answer_2="second")
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert "has {answer_2} inside" in msgs[1]["content"]  # not substituted again
    assert "{" not in msgs[1]["content"].replace("{answer_2}", "")
    with pytest.raises(ValueError, match="needs fields"):
        p.render(question="Q?", answer_1="a")
    with pytest.raises(FileNotFoundError, match="available"):
        load_prompt("gad-paper.v99")


def test_gad_paper_item_score_hand_computed():
    j = GadPaper().parse(["8 6\nreference is better"])  # Assistant 1 = reference, Assistant 2 = student
    assert j.valid and j.score == pytest.approx(100 * 6 / 14)
    assert (j.details["student"], j.details["reference"]) == (6.0, 8.0)
    # swapped order: the second reply lists the student first; item score = mean of the two ratios
    j = GadPaper(swap=True).parse(["8 6", "7 9"])
    assert j.score == pytest.approx((100 * 6 / 14 + 100 * 7 / 16) / 2)
    assert (j.details["student"], j.details["reference"]) == (6.5, 8.5)
    assert j.details["orders_agree"]  # the reference scored higher in both orders
    assert not GadPaper(swap=True).parse(["8 6", "9 7"]).details["orders_agree"]  # the first answer won twice
    assert GadPaper(swap=True).parse(["7 7", "5 5"]).details["orders_agree"]  # a tie twice
    assert "orders_agree" not in GadPaper().parse(["8 6"]).details


def test_parse_failures_are_invalid_never_zero():
    for protocol, raws in [(GadPaper(), ["great answers"]), (MtBenchSingle(), ["no grade"]), (Pairwise(), ["[[A]]", "?"])]:
        j = protocol.parse(raws)
        assert not j.valid and j.score is None and j.details["error"] == "parse failure"
        assert j.raw == raws


@pytest.mark.parametrize(
    "verdicts, outcome, score, agree",
    [
        (["[[A]]", "[[B]]"], "win", 100.0, True),  # student is A first, B second: consistent win
        (["[[B]]", "[[A]]"], "loss", 0.0, True),
        (["[[C]]", "[[C]]"], "tie", 50.0, True),
        (["[[A]]", "[[A]]"], "tie", 50.0, False),  # position bias: inconsistent -> tie
        (["[[A]]", "[[C]]"], "tie", 50.0, False),
    ],
)
def test_pairwise_combines_orders(verdicts, outcome, score, agree):
    j = Pairwise().parse(verdicts)
    assert (j.details["outcome"], j.score, j.details["orders_agree"]) == (outcome, score, agree)


def test_gad_paper_default_prompt_addresses_position_bias_only():
    """The paper's prompt (as its Fig. 8 describes it) addresses position bias only; the length sentence lives
    in the v1 variant, and the two versions never share cached judgments."""
    paper = " ".join(m["content"] for m in GadPaper().requests(JudgeItem("i", "Q?", "student"), "reference")[0].messages)
    assert "helpfulness, relevance, accuracy, and level of detail" in paper
    assert "order in which the responses were presented does not affect your judgment" in paper
    assert "length" not in paper.lower()
    assert "length" in load_prompt("gad-paper.v1").user
    assert GadPaper().namespace != GadPaper(version="v1").namespace


def test_gad_paper_prompt_is_documented_as_a_reconstruction_with_its_differences_from_fastchat():
    """No copy of Fig. 8's text exists to check the prompt against, so nothing may call it the paper's prompt;
    docs/judging.md lists how it differs from FastChat's prompt 1, and each listed difference holds for the
    request gadbench sends."""
    system, user = (m["content"] for m in GadPaper().requests(JudgeItem("i", "Q?", "A2"), "A1")[0].messages)
    assert system == "You are a helpful and precise assistant for checking the quality of the answer."
    assert "[Question]\nQ?\n\n[Assistant 1's answer]\nA1\n[End of Assistant 1's answer]\n\n" in user  # 1, 2
    assert "[Assistant 2's answer]\nA2\n[End of Assistant 2's answer]\n\nWe would like" in user  # 2, 3
    assert "[The Start of" not in user and "[System]" not in user and not user.endswith("\n")  # 1, 2, 3
    assert "accuracy, and level of detail of their responses" in user and "level of details" not in user  # 4
    repo = Path(__file__).resolve().parents[1]
    judging = (repo / "docs" / "judging.md").read_text()
    assert "is a **reconstruction** of the paper's Fig. 8" in judging
    for quoted in ("`[The Start of Assistant 1's Answer]`", "`[System]`", '"accuracy, level of details of their '
                   'responses"'):
        assert quoted in judging
    sources = [repo / "docs" / "judging.md", repo / "gadbench" / "judge" / "protocols.py",
               repo / "docs" / "sharegpt-smol.md"]
    for path in sources:
        text = " ".join(path.read_text().split())
        assert "the paper's prompt (Fig. 8)" not in text and "is the paper's prompt" not in text, path


def test_namespace_tracks_prompt_version_and_text():
    assert GadPaper().namespace.startswith("gad-paper.v2@")
    assert GadPaper(version="v1").namespace.startswith("gad-paper.v1@")
    assert MtBenchSingle().namespace.count("@") == 2  # both prompt files of the protocol
    with pytest.raises(FileNotFoundError):
        _ = GadPaper(version="v9").namespace


def test_every_guided_choice_parses_to_its_verdict():
    from gadbench.judge.protocols import GadPaper, MtBenchSingle, Pairwise

    assert [GadPaper.parse_reply(c) for c in GadPaper.choices] == [
        (float(a), float(b)) for a in range(1, 11) for b in range(1, 11)]
    assert [MtBenchSingle.parse_reply(c) for c in MtBenchSingle.choices] == [float(n) for n in range(1, 11)]
    assert [Pairwise.parse_reply(c) for c in Pairwise.choices] == ["A", "B", "C"]
    request = GadPaper(guided=True).request([{"role": "user", "content": "x"}])
    assert request.choices == GadPaper.choices and GadPaper().request([{"role": "user", "content": "x"}]).choices is None
