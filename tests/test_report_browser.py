"""report.html as a reader sees it: rendered by headless Chromium (Debian's `chromium`, installed by .ci/run)
in a 1400 x 1000 window. The findings table starts on the first screen, and no table is wider than the page.

The measurement is a script added to a copy of the report (the report itself carries no script); Chromium's
--dump-dom prints the page after it ran.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gadbench.report import build_report

FIXTURES = Path(__file__).parent / "fixtures" / "results"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")

MEASURE = """<script>
const box = e => e.getBoundingClientRect();
const findings = document.getElementById('table-findings');
const tables = [...document.querySelectorAll('div.table')].map(d => ({
  id: (d.previousElementSibling && d.previousElementSibling.previousElementSibling || {}).id || '',
  width: d.querySelector('table').scrollWidth, room: d.clientWidth}));
document.body.setAttribute('data-measure', JSON.stringify({
  findings_top: findings ? box(findings).top + window.scrollY : null,
  main_top: box(document.getElementById('table-main')).top + window.scrollY,
  page_width: document.documentElement.scrollWidth, window_width: window.innerWidth, tables}));
</script>"""


def _measure(report: Path, tmp_path: Path) -> dict:
    page = tmp_path / "measured.html"
    page.write_text(report.read_text().replace("</body>", MEASURE + "</body>"))
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    m = re.search(r'data-measure="([^"]*)"', out.stdout)
    assert m, f"chromium printed no measurement (rc {out.returncode}): {out.stderr[-1500:]}"
    return json.loads(html.unescape(m.group(1)))


@pytest.mark.parametrize("suite", ["smoke", "paper"])
def test_first_screen_and_no_table_wider_than_the_page(tmp_path, suite):
    results = tmp_path / suite
    shutil.copytree(FIXTURES / suite, results)
    build_report(results)
    m = _measure(results / "report.html", tmp_path)
    assert m["findings_top"] is not None and m["findings_top"] < 1000, m
    assert m["main_top"] > m["findings_top"]
    assert m["page_width"] <= m["window_width"], f"the page scrolls sideways: {m['page_width']} px"
    wide = [t for t in m["tables"] if t["width"] > t["room"]]
    assert not wide, f"tables wider than their {m['tables'][0]['room']} px: {wide}"


def test_the_measurement_sees_a_table_that_overflows(tmp_path):
    """The check above can fail: a table of 40 long columns overflows the same page."""
    results = tmp_path / "smoke"
    shutil.copytree(FIXTURES / "smoke", results)
    build_report(results)
    report = results / "report.html"
    wide = "<table><tr>" + "".join(f"<td class='num'>{'0.123456789 ' * 3}</td>" for _ in range(40)) + "</tr></table>"
    report.write_text(report.read_text().replace("<h2>More tables</h2>", f"<div class='table'>{wide}</div>"
                                                                          "<h2>More tables</h2>"))
    m = _measure(report, tmp_path)
    assert any(t["width"] > t["room"] for t in m["tables"]), m["tables"]
