"""Parsers for judge replies. Each returns None on failure; a failure is never turned into a score.

Scores must lie in [1, 10] (decimals allowed); anything outside is a failure, not clipped.

`parse_two_scores` (gad-paper, "Assistant 1 score, Assistant 2 score"), tried in this order:
  0. the first non-empty line names both "Assistant 1" and "Assistant 2" (once each) and holds exactly two
     numbers: by label. Each number follows its label ("I'd give Assistant 2 a 9 and Assistant 1 a 7" ->
     (7, 9)), or each precedes it ("9 for Assistant 2, 7 for Assistant 1" -> (7, 9)), or both labels come
     first and the numbers follow in the labels' order ("Assistant 2 and Assistant 1: 9 7" -> (7, 9)); both
     numbers before both labels are read in the prompt's order (the labels are commentary); any other
     arrangement is a failure, never a guess;
  1. the first non-empty line, after dropping markdown emphasis, "Assistant 1/2" labels, "/10" and
     "out of 10", holds exactly two numbers: those (e.g. "8 7", "8, 7", "Assistant 1: 8/10, Assistant 2: 7/10");
  2. the reply has labelled scores "Assistant 1: <n>" and "Assistant 2: <m>" (each once) on separate lines;
  3. the first line holds no number (prose): the first later line that holds nothing but two numbers
     and an optional "Score(s)/Rating(s):" label.
  A first line with one number or more than two numbers, and no rule-2 labels, is a failure.
`parse_rating` (a `Rating` judge, whose reply ends in its grade): the last "[[n]]"; else the last "[n]"; else the
last "Rating: n".
`parse_first_rating` (mtbench-single, as FastChat's llm_judge reads a single-answer grade): the first "[[n]]";
else the first "[n]".
`parse_verdict` (pairwise): the last "[[A]]", "[[B]]" or "[[C]]" (the prompt asks for the verdict last).
"""

from __future__ import annotations

import re

_NUM = r"(?<![\d.])-?\d+(?:\.\d+)?"
_OUT_OF_TEN = re.compile(rf"({_NUM})\s*(?:/\s*10|out\s+of\s+10)(?!\d|\.\d)", re.IGNORECASE)  # "10." ends a sentence
_LABEL = re.compile(r"assistant\s*[12](?![\d.])\s*(?:'s)?\s*(?:score|rating)?", re.IGNORECASE)
_MARKDOWN = re.compile(r"[*_`#>]")
_ONLY_TWO = re.compile(
    rf"^[\s:]*(?:(?:scores?|ratings?)\s*:?)?[\s:]*({_NUM})[\s,;:/]+({_NUM})\s*\.?\s*$", re.IGNORECASE
)
_LABELLED = {
    k: re.compile(rf"assistant\s*{k}(?![\d.])(?:'s)?\s*(?:scores?|ratings?)?\s*[:=-]?\s*({_NUM})", re.IGNORECASE)
    for k in (1, 2)
}
_RATING_PATTERNS = (
    re.compile(r"\[\[\s*(-?\d+(?:\.\d+)?)\s*\]\]"),
    re.compile(r"(?<!\[)\[\s*(-?\d+(?:\.\d+)?)\s*\](?!\])"),
    re.compile(rf"rating\s*:?\s*({_NUM})", re.IGNORECASE),
)
_VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")
_TOKEN = re.compile(rf"(?P<label>assistant\s*(?P<k>[12])(?![\d.]))|(?P<num>{_NUM})", re.IGNORECASE)


def _in_range(x: float) -> bool:
    return 1.0 <= x <= 10.0


def _clean(line: str) -> str:
    line = _MARKDOWN.sub("", line)
    line = _OUT_OF_TEN.sub(r"\1", line)
    return _LABEL.sub(" ", line)


def _pair(a: float, b: float) -> tuple[float, float] | None:
    return (a, b) if _in_range(a) and _in_range(b) else None


def _tokens(line: str) -> list[tuple[str | None, float | None]]:
    """The line's "Assistant 1/2" labels (label, None) and numbers (None, value), in order ("/10" dropped)."""
    return [(m.group("k"), None) if m.group("label") else (None, float(m.group("num")))
            for m in _TOKEN.finditer(_OUT_OF_TEN.sub(r"\1", _MARKDOWN.sub("", line)))]


def _by_label(tokens: list[tuple[str | None, float | None]]) -> tuple[float, float] | None:
    """Rule 0: two labels and two numbers; the i-th label owns the i-th number unless both numbers come first."""
    labels = [k for k, _ in tokens if k]
    numbers = [x for k, x in tokens if not k]
    shape = "".join("L" if k else "N" for k, _ in tokens)
    if shape in ("LNLN", "NLNL", "LLNN"):
        score = dict(zip(labels, numbers, strict=True))
    elif shape == "NNLL":
        score = {"1": numbers[0], "2": numbers[1]}
    else:
        return None
    return _pair(score["1"], score["2"])


def parse_two_scores(text: str | None) -> tuple[float, float] | None:
    """(Assistant 1 score, Assistant 2 score) from a gad-paper reply, or None (rules in the module doc)."""
    if not text:
        return None
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return None
    tokens = _tokens(lines[0])
    if sorted(k for k, _ in tokens if k) == ["1", "2"] and sum(k is None for k, _ in tokens) == 2:
        return _by_label(tokens)
    first = [float(x) for x in re.findall(_NUM, _clean(lines[0]))]
    if len(first) == 2:
        return _pair(*first)
    plain = _MARKDOWN.sub("", text)
    labelled = [_LABELLED[k].findall(plain) for k in (1, 2)]
    if all(len(found) == 1 for found in labelled):
        return _pair(float(labelled[0][0]), float(labelled[1][0]))
    if first:
        return None
    for line in lines[1:]:
        m = _ONLY_TWO.match(_clean(line))
        if m:
            return _pair(float(m.group(1)), float(m.group(2)))
    return None


def parse_rating(text: str | None) -> float | None:
    """The 1-10 rating at the end of a reply (the last match of the first pattern that matches), or None."""
    if not text:
        return None
    for pattern in _RATING_PATTERNS:
        found = pattern.findall(text)
        if found:
            value = float(found[-1])
            return value if _in_range(value) else None
    return None


def parse_first_rating(text: str | None) -> float | None:
    """The 1-10 rating of an mtbench-single reply, or None: FastChat's rule, the first "[[n]]", else the first
    "[n]" (fastchat/llm_judge/common.py, `one_score_pattern` then `one_score_pattern_backup`)."""
    if not text:
        return None
    for pattern in _RATING_PATTERNS[:2]:
        found = pattern.search(text)
        if found:
            value = float(found.group(1))
            return value if _in_range(value) else None
    return None


def parse_verdict(text: str | None) -> str | None:
    """"A", "B" or "C" (tie) from a pairwise reply, or None."""
    if not text:
        return None
    found = _VERDICT.findall(text)
    return found[-1] if found else None
