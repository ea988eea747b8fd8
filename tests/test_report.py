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

from gadbench.report import add_parser, build_report
from gadbench.report.cells import aggregate
from gadbench.report.load import load_suite
from gadbench.report.naming import variant_of
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
        assert build_report(dst) == dst / "REPORT.md"
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
    assert float(seqkd["world-id gold/accuracy"]) == pytest.approx(0.53)  # mean of seeds 0.52 and 0.54
    assert seqkd["world-id gold/accuracy seeds"] == "2"
    assert float(gad["world-ood gold/teacher_logprob"]) == pytest.approx(-1.32)
    assert "Others gold/accuracy" not in rows[0]  # no Dolly/SelfInst/Vicuna, no Others
    md = (t / "main.md").read_text()
    line = _md_row(md, "GAD", "**0.620**")
    assert "**-1.120**" in line and "**0.510**" in line
    assert "**0.890**" not in line  # style shares have no 'best'
    assert "**" not in _md_row(md, "SeqKD")
    tex = (t / "main.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"\textbf{0.620}" in tex
    assert r"gold/style\_share/formal" in tex
    assert "(paper" not in md  # not the paper suite


def test_smoke_ablations_are_grouped_by_inferred_variant(built):
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
    assert _row(judge, Run="tiny-qwen SeqKD s0")["invalid at selected ckpt"] == "0/6"


def test_smoke_departures_warnings_and_budget_failures(built):
    md = (built["smoke"] / "REPORT.md").read_text()
    section = md[md.index("## Departures from the paper") : md.index("## Tables")]
    summary = json.loads((built["smoke"] / SMOKE_GAD / "summary.json").read_text())
    for d in summary["departures"]:
        assert f"{d} — all 9 runs" in section
    assert "chosen on a validation split" in section and "best gold/accuracy on world-val" in section
    assert "reward hacking: response length 3.5x" in section
    assert "no discriminator (reward: rouge-l) s0: budget ratio 1.25 outside tolerance 0.05" in section
    assert "suite smoke: matched-budget check failed" in section
    assert "tiny-qwen--gad--s2--3f9c2a71: listed in suite.json but has no directory" in section
    html = (built["smoke"] / "report.html").read_text()
    assert "Departures from the paper" in html and "reward hacking: response length 3.5x" in html


def test_torn_metrics_line_is_ignored():
    run = next(r for r in load_suite(FIXTURES / "smoke").runs if r.run_id == SMOKE_GAD)
    assert not (FIXTURES / "smoke" / SMOKE_GAD / "metrics.jsonl").read_text().endswith("\n")
    assert [m["step"] for m in run.metrics] == list(range(1, 13))


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.parametrize(
    "suite, figures",
    [
        ("smoke", {"fig1_bars", "training_curves", "reward_hacking", "ngram_f1", "eval_steps"}),
        ("paper", {"fig1_bars", "training_curves", "ngram_f1", "pairwise"}),
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
    assert "Score per evaluated checkpoint: skipped" in paper  # one checkpoint per run


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
    pair = _row(_csv(t / "pairwise.csv"), vs="before")
    assert (float(pair["win %"]), float(pair["win % paper"])) == (60.0, 68.0)  # Figure 3
    report = (built["paper"] / "REPORT.md").read_text()
    assert "chosen on the test sets, as in the paper" in report
    assert "judge: Qwen2.5-72B-Instruct (open judge) instead of GPT-4o — all 10 runs" in report
    assert _row(_csv(t / "judge.csv"), Run="total")["cost USD"] == "28.5000"


def test_intervals_on_request():
    suite = load_suite(FIXTURES / "smoke")
    gad = [r for r in suite.runs if r.method == "gad"]
    cell = aggregate(gad, "world-id", "gold/accuracy")
    cell.digits = 3
    assert cell_parts(cell, ci=True) == ("0.620", " [0.610, 0.630] seeds=2")
    one = aggregate(gad[:1], "world-id", "gold/accuracy")
    one.digits = 3
    assert cell_parts(one, ci=True) == ("0.610", " [0.570, 0.650] n=200")
    assert cell_parts(one, ci=False) == ("0.610", "")


def test_variant_inference_from_config_and_name():
    assert variant_of("gad", {"discriminator": "frozen"}, "s").group == "frozen discriminator"
    assert variant_of("gad-frozen", {"discriminator": "frozen-after-warmup"}, "s").label == "GAD, D frozen after warmup"
    off = variant_of("gad-offpolicy", {"kind": "gad-offpolicy"}, "s")
    assert (off.group, off.key, off.label) == ("frozen discriminator", "gad:offpolicy", "GAD, off-policy D (paper)")
    assert variant_of("gad-no-gen-warmup", {}, "s").key == "gad:no-generator-warmup"
    assert variant_of("gad", {"discriminator_warmup": False}, "s").label == "GAD, w/o discriminator warmup"
    assert variant_of("gad", {"d_model": "Qwen/Qwen2.5-7B-Instruct"}, "Qwen2.5-7B-Instruct").key == "gad"
    assert variant_of("gad", {"d_loss": "ce"}, "s").key == "gad:d_loss=ce"
    assert variant_of("seqkd", {"d_loss": "ce"}, "s").key == "seqkd"


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
    code = (
        "import sys; from gadbench.report import build_report; build_report(sys.argv[1]); "
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith('torch.') or "
        "(m.startswith('gadbench.') and not m.startswith(('gadbench.report', 'gadbench.io', 'gadbench.metrics')))]; "
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
