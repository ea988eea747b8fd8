"""gadbench report on fixture results: the smoke suite (synthetic world) and the paper suite (published numbers)."""

from __future__ import annotations

import argparse
import base64
import csv
import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import yaml

from gadbench.commands.report import add_parser
from gadbench.report import build_report
from gadbench.report.cells import aggregate
from gadbench.report.load import load_results
from gadbench.report.typeset import cell_parts

FIXTURES = Path(__file__).parent / "fixtures" / "results"
SMOKE_GAD = "tiny-qwen--gad--s0--3f9c2a71"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """Both fixture suites, copied and reported once for the whole module."""
    out = {}
    for suite in ("smoke", "paper"):
        dst = tmp_path_factory.mktemp("results") / suite
        shutil.copytree(FIXTURES / suite, dst)
        assert build_report(dst).markdown == dst / "REPORT.md"
        out[suite] = dst
    return out


def _csv(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open()))


def _row(rows: list[dict], **match) -> dict:
    hits = [r for r in rows if all(r[k] == v for k, v in match.items())]
    assert len(hits) == 1, (match, rows)
    return hits[0]


def _md_row(md: str, *cells: str) -> str:
    """The Markdown table line whose cells contain all of `cells`, in order."""
    for line in md.splitlines():
        if line.startswith("|") and re.search(".*".join(re.escape(c) for c in cells), line):
            return line
    raise AssertionError(f"no row with {cells}")


def test_smoke_main_table_aggregates_seeds_and_bolds_the_best(built):
    t = built["smoke"] / "tables"
    rows = _csv(t / "main.csv")
    assert [r["Method"] for r in rows] == ["SeqKD", "GAD"]  # ablations are not in the main table
    seqkd, gad = rows
    # one primary metric per dataset (the runs' selection metric, gold/accuracy): the Table 2 layout
    assert [k for k in seqkd if " " not in k] == ["Student", "Method", "world-id", "world-ood"]
    assert float(seqkd["world-id"]) == pytest.approx(0.53)  # pooled over seeds 0.52 and 0.54 (100 prompts each)
    assert seqkd["world-id seeds"] == "2" and seqkd["world-id n"] == "200"
    assert float(seqkd["world-id lo"]) < 0.53 < float(seqkd["world-id hi"])  # seeds x prompts interval
    assert float(gad["world-ood"]) == pytest.approx(0.51)
    md = (t / "main.md").read_text()
    assert "**0.620**" in _md_row(md, "GAD") and "**" not in _md_row(md, "SeqKD")
    assert "Primary metric: gold/accuracy" in md
    # the other metrics have a table per dataset; style shares get no 'best'
    other = _csv(t / "metrics-world-id.csv")
    assert float(other[1]["gold/teacher_logprob"]) == pytest.approx(-1.12)
    line = _md_row((t / "metrics-world-id.md").read_text(), "GAD")
    assert "**-1.120**" in line and "**0.890**" not in line
    tex = (t / "main.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"\textbf{0.620}" in tex
    assert "(paper" not in md  # not the paper suite


def test_smoke_ablations_are_grouped_by_their_stored_identity(built):
    rows = _csv(built["smoke"] / "tables" / "ablations.csv")
    assert [r["Group"] for r in rows] == [
        "reference",
        "reference",
        "warmup",
        "discriminator loss",
        "discriminator size",
        "frozen discriminator",
        "no discriminator",
    ]
    assert float(_row(rows, Group="frozen discriminator")["world-id"]) == pytest.approx(0.41)
    assert _row(rows, Group="discriminator size")["Variant"] == "GAD, D: tiny-qwen-large"
    assert "rouge-l" in _row(rows, Group="no discriminator")["Variant"]


def test_smoke_lengths_budget_and_judge_tables(built):
    t = built["smoke"] / "tables"
    lengths = _csv(t / "lengths.csv")
    frozen = _row(lengths, Method="GAD, D frozen after warmup")
    assert float(frozen["world-id"]) == pytest.approx(0.41) and float(frozen["world-id length"]) == 71.0
    budget = _csv(t / "budget.csv")
    assert _row(budget, Run="tiny-qwen GAD, no discriminator (reward: rouge-l) s0")["within"] == "NO"
    assert _row(budget, Run="tiny-qwen GAD s1")["rollouts"] == "384"
    judge = _csv(t / "judge.csv")
    assert _row(judge, Run="total")["requests"] == "108"
    assert _row(judge, Run="tiny-qwen SeqKD s0")["invalid at selected ckpt"] == "0/200"


def test_smoke_departures_warnings_and_budget_failures(built):
    md = (built["smoke"] / "REPORT.md").read_text()
    section = md[md.index("## Departures and notes") : md.index("## Runs")]
    summary = json.loads((built["smoke"] / SMOKE_GAD / "summary.json").read_text())
    for d in summary["departures"]:
        assert f"{d}: all 9 runs" in section
    # one line per distinct rule, the runs counted (each run's chosen step is in the folded details)
    assert "checkpoint chosen on a validation split, not on the test sets as in the paper: all 9 runs" in section
    assert "reward hacking: response length 3.5x" in section
    assert "no discriminator (reward: rouge-l) s0: budget ratio 1.25 outside tolerance 0.05" in section
    assert "suite smoke: matched-budget check failed" in section
    assert "tiny-qwen--gad--s2--3f9c2a71: listed in suite.json but has no directory" in section
    html = (built["smoke"] / "report.html").read_text()
    assert "Departures and notes" in html and "reward hacking: response length 3.5x" in html
    assert "<details><summary>9 run(s)</summary>" in html and "best gold/accuracy on world-val" in html


def test_first_screen_order_summary_findings_main_table_figure(built):
    md = (built["smoke"] / "REPORT.md").read_text()
    order = [md.index(x) for x in ("Suite `smoke`: 9 runs", "### Paper findings in this suite",
                                   "### Main results (Table 2 layout)", "figures/fig1_bars.png", "## More tables",
                                   "## Departures and notes")]
    assert order == sorted(order)
    assert "2 seeds" in md.splitlines()[2] and "judged by gold" in md.splitlines()[2]
    # the first screen always shows intervals, even without --ci
    assert re.search(r"\*\*0.620\*\* \[0.5\d\d, 0.6\d\d\] n=2x100", md)


def test_torn_metrics_line_is_ignored():
    run = next(r for r in load_results(FIXTURES / "smoke").runs if r.run_id == SMOKE_GAD)
    assert not (FIXTURES / "smoke" / SMOKE_GAD / "metrics.jsonl").read_text().endswith("\n")
    assert [m["step"] for m in run.metrics] == list(range(1, 13))


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.parametrize(
    "suite, figures",
    [
        ("smoke", {"fig1_bars", "training_curves", "reward_hacking", "ngram_f1", "eval_steps"}),
        ("paper", {"fig1_bars", "training_curves", "ngram_f1", "pairwise", "score_vs_length"}),
    ],
)
def test_figures_are_decodable_png_and_svg_and_embedded(built, suite, figures):
    root = built[suite]
    assert {p.stem for p in (root / "figures").glob("*.png")} == figures
    assert {p.stem for p in (root / "figures").glob("*.svg")} == figures
    html = (root / "report.html").read_text()
    embedded = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(embedded) == len(figures)
    for name in figures:
        png = (root / "figures" / f"{name}.png").read_bytes()
        w, h = _png_size(png)
        assert 400 <= w <= 2000 and 200 <= h <= 2000, (name, w, h)
        pixels = mpimg.imread(root / "figures" / f"{name}.png")
        assert np.std(pixels[..., :3]) > 0.05, name  # not blank
        assert base64.b64encode(png).decode() in embedded
        assert ET.parse(root / "figures" / f"{name}.svg").getroot().tag.endswith("svg")
    assert not re.search(r"""(src|href)=['"](?!data:|#)""", html)  # self-contained: nothing fetched
    assert "<style>" in html


def test_absent_figures_are_skipped_and_said_so(built):
    smoke = (built["smoke"] / "REPORT.md").read_text()
    assert "Toy distributions (Figure 5 style): skipped: no run stores toy.json." in smoke
    assert "Pairwise win / tie / loss (Figure 3 style): skipped" in smoke
    assert "Pairwise table skipped" in smoke
    paper = (built["paper"] / "REPORT.md").read_text()
    assert "Reward hacking: frozen vs online discriminator (Figure 6 style): skipped" in paper
    assert "Primary metric per evaluated checkpoint: skipped" in paper  # one checkpoint per run


def test_paper_suite_shows_published_numbers_beside_ours(built):
    t = built["paper"] / "tables"
    md = (t / "main.md").read_text()
    assert "**50.3** (paper 50.8, Δ -0.5)" in _md_row(md, "GAD", "50.3")
    assert "51.9 (paper 51.7, Δ +0.2)" in _md_row(md, "GPT-5-Chat", "Teacher")
    rows = _csv(t / "main.csv")
    seqkd7 = rows[[r["Student"] for r in rows].index("Qwen2.5-7B-Instruct") + 1]
    assert seqkd7["Method"] == "SeqKD"
    ours = [float(seqkd7[d]) for d in ("Dolly", "SelfInst", "Vicuna")]
    assert float(seqkd7["Others"]) == pytest.approx(sum(ours) / 3)
    assert float(seqkd7["Others paper"]) == 48.3  # printed in Table 3
    before7 = rows[[r["Student"] for r in rows].index("Qwen2.5-7B-Instruct")]
    assert float(before7["Others paper"]) == pytest.approx((47.6 + 48.3 + 49.1) / 3)  # from Table 2
    assert float(seqkd7["LMSYS paper"]) == 49.2 and float(seqkd7["LMSYS diff"]) == pytest.approx(0.3)
    abl = _csv(t / "ablations.csv")
    ce = _row(abl, Variant="GAD, D loss: ce")
    assert (float(ce["LMSYS paper"]), float(ce["Others paper"])) == (47.9, 46.4)  # Table 4
    assert float(_row(abl, Variant="GAD, w/o generator warmup")["LMSYS paper"]) == 49.7  # Table 3
    assert ce["Dolly paper"] == ""  # Tables 3-5 print only LMSYS and Others
    lengths = (t / "lengths.md").read_text()
    assert "50.3 / 409.0 (paper 50.8 / 414.0, Δ -0.5 / -5.0)" in lengths  # Table 6
    pair = _row(_csv(t / "pairwise.csv"), judge="pairwise")  # the pairwise judge's shares against the teacher
    assert (float(pair["win %"]), float(pair["tie %"]), float(pair["loss %"]), pair["n"]) == (60.0, 10.0, 30.0, "80")
    assert "win % paper" not in pair  # the paper's Figure 3 compares GAD with other methods, not with the teacher
    report = (built["paper"] / "REPORT.md").read_text()
    assert "chosen on the test sets, as in the paper" in report
    assert "judge: Qwen2.5-72B-Instruct (open judge) instead of GPT-4o: all 10 runs" in report
    assert _row(_csv(t / "judge.csv"), Run="total")["cost USD"] == "28.5000"


def test_intervals_on_request():
    suite = load_results(FIXTURES / "smoke")
    gad = [r for r in suite.runs if r.method == "gad"]
    cell = aggregate(gad, "world-id", "gold/accuracy")  # 2 seeds x 100 prompts: a hierarchical interval
    cell.digits = 3
    value, rest = cell_parts(cell, ci=True)
    assert value == "0.620" and re.fullmatch(r" \[0\.5\d\d, 0\.6\d\d\] n=2x100", rest), rest
    assert cell.lo < 0.61 and cell.hi > 0.63  # wider than the range of the two seed means
    one = aggregate(gad[:1], "world-id", "gold/accuracy")
    one.digits = 3
    assert cell_parts(one, ci=True) == ("0.610", " [0.570, 0.650] n=200")
    assert cell_parts(one, ci=False) == ("0.610", "")


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """One smoke run with a toy.json, reported on its own (a run directory, not a suite)."""
    dst = tmp_path / SMOKE_GAD
    shutil.copytree(FIXTURES / "smoke" / SMOKE_GAD, dst)
    probs = np.exp(-0.5 * (np.arange(10) - 4.5) ** 2 / 4)
    toy = {
        "classes": list(range(10)),
        "teacher": [0.3, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.24, 0.32],
        "seqkd": list(probs / probs.sum()),
        "gad": [0.05, 0, 0, 0, 0, 0, 0, 0, 0.15, 0.8],
    }
    (dst / "toy.json").write_text(json.dumps(toy))
    return dst


def test_cli_builds_a_run_directory_with_toy_figure_and_intervals(run_dir, capsys):
    parser = argparse.ArgumentParser(prog="gadbench")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", str(run_dir), "--ci"])
    assert args.func(args) == 0
    assert "REPORT.md" in capsys.readouterr().out
    md = (run_dir / "REPORT.md").read_text()
    assert "![Toy distributions (Figure 5 style)](figures/toy.png)" in md
    assert _png_size((run_dir / "figures" / "toy.png").read_bytes())[0] >= 400
    assert "0.610 [0.570, 0.650] n=200" in (run_dir / "tables" / "main.md").read_text()
    missing = parser.parse_args(["report", str(run_dir / "nope")])
    assert missing.func(missing) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_cli_given_an_out_root_reports_each_suite_under_it(tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(FIXTURES / "smoke", out / "smoke")
    (out / "cache").mkdir()  # what `gadbench run --out` leaves beside the suites
    parser = argparse.ArgumentParser(prog="gadbench")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", str(out)])
    assert args.func(args) == 0
    assert f"wrote {out / 'smoke' / 'REPORT.md'}" in capsys.readouterr().out
    assert not (out / "REPORT.md").exists() and not (out / "cache" / "REPORT.md").exists()
    empty = parser.parse_args(["report", str(out / "cache")])
    assert empty.func(empty) == 2 and "no runs or suites under" in capsys.readouterr().err


def test_report_imports_no_torch_and_no_training_code(run_dir):
    """The report reads stored results and the judge records (metric directions, controls): neither torch, the
    API client, nor any training module."""
    code = (
        "import sys; from gadbench.report import build_report; build_report(sys.argv[1]); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'openai') or "
        "(m.startswith('gadbench.') and not m.startswith(('gadbench.report', 'gadbench.io', 'gadbench.metrics', "
        "'gadbench.judge.', 'gadbench.llm.request')) and m not in ('gadbench.judge', 'gadbench.llm'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(run_dir)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (run_dir / "report.html").stat().st_size > 10_000


def test_unfinished_run_is_reported_as_such(tmp_path):
    suite = tmp_path / "smoke"
    for rid in ("tiny-qwen--seqkd--s0--3f9c2a71", SMOKE_GAD):
        shutil.copytree(FIXTURES / "smoke" / rid, suite / rid)
    (suite / SMOKE_GAD / "summary.json").unlink()
    build_report(suite)
    md = (suite / "REPORT.md").read_text()
    assert f"{SMOKE_GAD}: no summary.json yet" in md
    assert [r["Method"] for r in _csv(suite / "tables" / "main.csv")] == ["SeqKD"]
    assert "![Training curves](figures/training_curves.png)" in md  # the unfinished run's curves
    with pytest.raises(ValueError, match="no runs under"):
        build_report(tmp_path)


def _searched_suite(tmp_path: Path) -> Path:
    """The smoke fixture's SeqKD (2 seeds) as two points of a learning-rate search: point lr_sft=0.001 is
    better on the validation split, point lr_sft=0.003 on the test sets; GAD evaluated at a third step."""
    suite = tmp_path / "smoke"
    shutil.copytree(FIXTURES / "smoke", suite)
    for run in sorted(suite.glob("tiny-qwen--seqkd--s*")):
        for lr, val, shift in ((0.001, 0.9, -0.2), (0.003, 0.5, +0.2)):
            dst = suite / run.name.replace("seqkd--", f"seqkd+lr_sft={lr:g}--")
            shutil.copytree(run, dst)
            cfg = yaml.safe_load((dst / "config.yaml").read_text())
            cfg["search_point"] = {"lr_sft": lr}
            (dst / "config.yaml").write_text(yaml.safe_dump(cfg))
            summary = json.loads((dst / "summary.json").read_text())
            summary["method"] = f"seqkd+lr_sft={lr:g}"
            summary["search_point"] = {"lr_sft": lr}
            summary["selection"]["metric"] = "gold/accuracy"
            summary["validation"] = {"gold/accuracy": {"mean": val}}
            summary["eval"]["world-id"]["gold/accuracy"]["mean"] += shift
            (dst / "summary.json").write_text(json.dumps(summary))
            for rows_path in dst.glob("eval/step-*/world-id.jsonl"):
                rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
                for i, r in enumerate(rows):  # move the per-item accuracy by the same shift
                    r["judgments"]["gold"]["accuracy"] = float(i < round((0.53 + shift) * len(rows)))
                rows_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        shutil.rmtree(run)
    return suite


def test_a_search_keeps_the_point_the_validation_split_prefers(tmp_path):
    suite = _searched_suite(tmp_path)
    build_report(suite)
    main = _csv(suite / "tables" / "main.csv")
    seqkd = _row(main, Method="SeqKD")
    assert float(seqkd["world-id"]) == pytest.approx(0.33)  # lr_sft=0.001's test score, though 0.003's is 0.73
    search = _csv(suite / "tables" / "search.csv")
    kept = [r for r in search if r[""] == "kept"]
    assert [r["Setting"] for r in kept] == ["lr_sft=0.001"] and float(kept[0]["validation gold/accuracy"]) == 0.9
    assert len(search) == 2 and {r["seeds"] for r in search} == {"2"}
    assert "hyperparameter search are shown at the setting their validation score prefers" in (
        suite / "REPORT.md").read_text()


def test_budget_curve_pairs_gad_and_seqkd_at_each_step(tmp_path):
    suite = tmp_path / "smoke"
    shutil.copytree(FIXTURES / "smoke", suite)
    for run in suite.glob("tiny-qwen--*--s*"):  # a third evaluation step, a copy of step 6 (same answers)
        if (run / "eval" / "step-6").exists():
            shutil.copytree(run / "eval" / "step-6", run / "eval" / "step-9")
    build_report(suite)
    rows = _csv(suite / "tables" / "budget-curve.csv")
    gad = [r for r in rows if r["Method"] == "gad"]
    assert [r["steps"] for r in gad] == ["6", "9", "12"]
    assert gad[0]["world-id"] == gad[1]["world-id"]  # the same rows give the same difference
    assert gad[0]["world-id seeds"] == "2" and gad[0]["world-id n"] == "200"
    assert (suite / "figures" / "budget.png").exists()


def test_what_each_data_load_kept_and_skipped_is_in_the_report(tmp_path):
    suite = tmp_path / "smoke"
    shutil.copytree(FIXTURES / "smoke", suite)
    load = {"source": "jsonl", "path": "train.jsonl", "total": 10, "kept": 6, "first_turn_only": 0,
            "skipped": {"not_utf8": 2, "empty_prompt": 2}}
    for name in ("tiny-qwen--seqkd--s0--3f9c2a71", "tiny-qwen--gad--s0--3f9c2a71"):
        path = suite / name / "summary.json"
        summary = json.loads(path.read_text())
        summary["data"] = [load]
        path.write_text(json.dumps(summary))
    build_report(suite)
    md = (suite / "REPORT.md").read_text()
    section = md[md.index("### Data loaded"):]
    assert "- jsonl (train.jsonl): kept 6 of 10 rows; skipped: empty_prompt 2, not_utf8 2: 2 runs" in section


# ---------------------------------------------------------------- judging: controlled scores and agreement

PAPER_ROWS = FIXTURES / "paper_rows.py"  # the fixture's synthetic gad-paper judge: SLOPE points per word


def _fixture_rows(run: str, dataset: str) -> list[dict]:
    path = next((FIXTURES / "paper").glob(f"{run}/eval/step-*/{dataset}.jsonl"))
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_controlled_scores_undo_the_fixture_judges_known_length_preference(built):
    """The fixture's judge adds SLOPE points per word of length difference to its 300-word reference. Raw is
    the rows' mean; the length-controlled score is the score at zero difference, which by construction is
    raw - SLOPE * mean(length - 300) up to the noise: it must lie in the controlled interval."""
    sys.path.insert(0, str(PAPER_ROWS.parent))
    from paper_rows import REFERENCE_WORDS, SLOPE

    rows = _csv(built["paper"] / "tables" / "controlled.csv")
    gad = _row(rows, Student="Qwen2.5-3B-Instruct", Method="GAD", Dataset="LMSYS", Judge="gad-paper")
    items = _fixture_rows("Qwen2.5-3B-Instruct--gad--*", "lmsys")
    raw = np.mean([r["judgments"]["gad-paper"]["score"] for r in items])
    expected = raw - SLOPE * np.mean([r["answer_tokens"] - REFERENCE_WORDS for r in items])
    assert float(gad["raw"]) == pytest.approx(raw, abs=0.05), (gad, raw)
    lo, hi = float(gad["length-controlled lo"]), float(gad["length-controlled hi"])
    assert lo <= expected <= hi and lo <= float(gad["length-controlled"]) <= hi, (gad, expected)
    assert abs(expected - raw) > 1.0  # GAD's answers run long: the control matters on this row
    assert gad["n (seeds x items)"] == "1 x 40"
    assert not [r for r in rows if r["Method"] in ("Teacher", "Before distill.")]


def test_the_length_control_finding_agrees_with_the_controlled_table(built):
    findings = _csv(built["paper"] / "tables" / "findings.csv")
    rows = [r for r in findings if "survives length control" in r["Finding"]]
    assert len(rows) == 2, findings  # one per student
    row = next(r for r in rows if r["Finding"].startswith("Qwen2.5-3B-Instruct"))
    diff = float(re.search(r"GAD - SeqKD ([+-][\d.]+)", row["Evidence (difference, 95% interval)"]).group(1))
    table = _csv(built["paper"] / "tables" / "controlled.csv")
    lc = {m: float(_row(table, Student="Qwen2.5-3B-Instruct", Method=m, Dataset="LMSYS")["length-controlled"])
          for m in ("GAD", "SeqKD")}
    assert diff == pytest.approx(lc["GAD"] - lc["SeqKD"], abs=0.06), (row, lc)
    lo, hi = map(float, re.search(r"\[([+-][\d.]+), ([+-][\d.]+)\]", row["Evidence (difference, 95% interval)"]).groups())
    expected = "reproduced" if lo > 0 else "not reproduced" if hi < 0 else "inconclusive"
    assert row["Verdict"] == expected and row["n (seeds x items)"] == "1 x 40 prompts"


def test_position_agreement_is_the_share_of_items_whose_two_orders_agree(built):
    rows = _csv(built["paper"] / "tables" / "judge-agreement.csv")
    row = _row(rows, Dataset="LMSYS", Judges="gad-paper: answer orders swapped")
    student_runs = [p.name for p in (FIXTURES / "paper").iterdir() if p.is_dir() and "--teacher--" not in p.name
                    and "--before--" not in p.name]
    agree = [r["judgments"]["gad-paper"]["details"]["orders_agree"] for run in student_runs
             for r in _fixture_rows(run, "lmsys")]
    assert row["n"] == str(len(agree)) == str(7 * 40)  # 7 student runs (not the teacher or before) x 40 items
    assert row["agreement"].startswith(f"{100 * np.mean(agree):.0f}% ["), (row, np.mean(agree))


def test_the_sharegpt_smol_reference_rebuilds_with_its_later_llm_judge(tmp_path):
    """baselines/reference/sharegpt-smol (real stored results, gad-paper added by `gadbench eval` after training):
    the header names every judge, the controlled table has gad-paper rows, the judge's departures show, and the
    no-D and off-policy-D runs land in the ablation table and the Figure 6 plot."""
    dst = tmp_path / "sharegpt-smol"
    shutil.copytree(Path(__file__).parents[1] / "baselines" / "reference" / "sharegpt-smol", dst)
    md = build_report(dst).markdown.read_text()
    assert "judged by embedding, rouge-l, gad-paper." in md.splitlines()[2]
    controlled = (dst / "tables" / "controlled.csv").read_text()
    assert controlled.count("gad-paper") == 4, controlled  # SeqKD, GAD and the two ablations
    assert "judge model smollm2 instead of GPT-4o: all 10 runs" in md
    ablations = (dst / "tables" / "ablations.csv").read_text()
    assert "frozen discriminator,\"GAD, off-policy D (paper)\"" in ablations, ablations
    assert "no discriminator,\"GAD, no discriminator (reward: rouge-l)\"" in ablations, ablations
    assert (dst / "figures" / "reward_hacking.png").exists() and "A frozen discriminator gets exploited" in md
    families = {r.method: r.family for r in load_results(dst).runs}  # the stored identity, not the method name
    assert families == {"before": "before", "seqkd": "seqkd", "gad": "gad", "gad-offpolicy": "gad", "grpo-rouge": "gad"}
    assert "GAD's gain survives length control" in md


def test_the_smol_gold_reference_rebuilds_with_gold_findings_budget_curve_and_judge_validity(tmp_path):
    """baselines/reference/smol-gold (real stored results): the findings compare GAD and SeqKD on the exact
    judge's three metrics, the budget curve follows all three, and the judge-validity table ranks the offline
    judges and gad-paper (added by `gadbench eval` through `gadbench serve`) against the gold reverse KL."""
    dst = tmp_path / "smol-gold"
    shutil.copytree(Path(__file__).parents[1] / "baselines" / "reference" / "smol-gold", dst)
    md = build_report(dst).markdown.read_text()
    findings = _csv(dst / "tables" / "findings.csv")
    rows = [r for r in findings if r["Finding"].startswith("GAD beats SeqKD")]
    assert [r["Finding"] for r in rows] == ["GAD beats SeqKD (in distribution)",
                                            "GAD beats SeqKD (in distribution), forward_kl",
                                            "GAD beats SeqKD (in distribution), teacher_logprob"], rows
    assert all(r["n (seeds x items)"] == "3 x 16 prompts" for r in rows), rows
    budget = (dst / "tables" / "budget-curve.csv").read_text()
    for metric in ("reverse_kl", "forward_kl", "teacher_logprob"):
        assert f"sharegpt-test: persona-gold/{metric}" in budget, budget[:500]
    validity = _csv(dst / "tables" / "judge-validity.csv")
    assert {r["Judge"] for r in validity} == {"rouge-l/score", "embedding/score", "gad-paper/score"}, validity
    assert "How far each judge ranks answers as the exact judge does" in md
