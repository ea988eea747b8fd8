"""`gadbench report results/` on a folder of suites: each suite's report, and index.md / index.html with every
suite's findings and verdicts and its leaderboard (the main table ranked, with intervals and lengths), linked
to each report."""

from __future__ import annotations

import csv
import html
import re
import shutil
from pathlib import Path

from gadbench.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "results"


def _csv(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open()))


def test_a_folder_of_suites_gets_an_index_with_findings_and_ranked_rows(tmp_path, capsys):
    out = tmp_path / "results"
    shutil.copytree(FIXTURES / "smoke-run", out / "smoke")
    shutil.copytree(FIXTURES / "paper", out / "paper")
    (out / "cache").mkdir()  # what `gadbench run --out` leaves beside the suites
    assert main(["report", str(out)]) == 0
    assert f"wrote {out / 'index.md'} and {out / 'index.html'}" in capsys.readouterr().out
    md = (out / "index.md").read_text()
    assert md.index("## paper") < md.index("## smoke") and "## cache" not in md
    smoke = md[md.index("## smoke"):]
    assert "[report.html](smoke/report.html) · [REPORT.md](smoke/REPORT.md)" in smoke
    for r in _csv(out / "smoke" / "tables" / "findings.csv"):
        assert f"- {r['Finding']}: **{r['Verdict']}**" in smoke, r
    # ranked in the metric's direction (teacher log-probability: higher is better), with the interval and length
    main_rows = _csv(out / "smoke" / "tables" / "main.csv")
    lengths = {r["Method"]: float(r["world-id length"]) for r in _csv(out / "smoke" / "tables" / "lengths.csv")}
    ranked = sorted(main_rows, key=lambda r: -float(r["world-id"]))
    table = [line for line in smoke.splitlines() if re.match(r"\| \d+ ", line)]
    assert [line.split("|")[3].strip() for line in table] == [r["Method"] for r in ranked]
    for line, r in zip(table, ranked, strict=True):
        lo, hi = float(r["world-id lo"]), float(r["world-id hi"])
        assert f"{float(r['world-id']):.3f}" in line and f"[{lo:.3f}, {hi:.3f}] n=48" in line, line
        assert line.rstrip(" |").endswith(f"{lengths[r['Method']]:.1f}"), (line, lengths[r["Method"]])
    # several students ranked together, the teacher among them
    paper = md[md.index("## paper"):md.index("## smoke")]
    methods = [(line.split("|")[2].strip(), line.split("|")[3].strip()) for line in paper.splitlines()
               if re.match(r"\| \d+ ", line)]
    assert methods[0] == ("GPT-5-Chat", "Teacher") and len(methods) == 7, methods
    page = (out / "index.html").read_text()
    links = re.findall(r"href='([^'#]+)'", page)
    assert links and all((out / html.unescape(link)).is_file() for link in links), links
    assert "<meta name='viewport'" in page and "<strong>not reproduced</strong>" in page


def test_a_single_suite_gets_no_index(tmp_path):
    suite = tmp_path / "smoke"
    shutil.copytree(FIXTURES / "smoke-run", suite)
    assert main(["report", str(suite)]) == 0
    assert (suite / "REPORT.md").exists() and not (suite / "index.md").exists()
    assert not (tmp_path / "index.md").exists()
