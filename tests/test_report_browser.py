"""report.html as a reader sees it: rendered by headless Chromium (Debian's `chromium`, installed by .ci/run)
in a 1400 x 1000 window and on a 390 px phone screen, for a real `gadbench run --suite smoke` output
(tests/fixtures/results/smoke-run), the paper fixture and the sharegpt-smol reference. The findings table
starts on the first screen at 1400 px, and the page never scrolls sideways: a table wider than the page
scrolls inside its own container.

The measurement is a script added to a copy of the report; Chromium's --dump-dom prints the page after it ran.
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
SUITES = {"smoke-run": FIXTURES / "smoke-run", "paper": FIXTURES / "paper",
          "sharegpt-smol": Path(__file__).parents[1] / "baselines" / "reference" / "sharegpt-smol"}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")

MEASURE = """<script>
const box = e => e.getBoundingClientRect();
const findings = document.getElementById('table-findings');
const tables = [...document.querySelectorAll('div.table')].map(d => ({
  id: (d.previousElementSibling && d.previousElementSibling.previousElementSibling || {}).id || '',
  width: d.querySelector('table').scrollWidth, room: d.clientWidth,
  scrolls: ['auto', 'scroll'].includes(getComputedStyle(d).overflowX)}));
const wide = [...document.body.querySelectorAll('*')].filter(e => box(e).right > window.innerWidth + 1
  && !e.closest('div.table')).map(e => e.tagName + (e.id ? '#' + e.id : '') + ' ' + Math.round(box(e).right));
window.parent.document.body.setAttribute('data-measure', JSON.stringify({
  findings_top: findings ? box(findings).top + window.scrollY : null,
  main_top: box(document.getElementById('table-main')).top + window.scrollY,
  page_width: document.documentElement.scrollWidth, window_width: window.innerWidth, tables,
  wide: wide.slice(0, 10)}));
</script>"""


def _measure(report: Path, tmp_path: Path, width: int = 1400, script: str = MEASURE) -> dict:
    """Lay the report out `width` px wide (in an iframe of that width: a headless window is at least 500 px
    wide) and run `script` in it, which writes its numbers onto the outer page."""
    page = tmp_path / "measured.html"
    inner = report.read_text().replace("</body>", script + "</body>")
    page.write_text(f"<!DOCTYPE html><html><body style='margin:0'><iframe style='width:{width}px;height:1000px;"
                    f"border:0' srcdoc=\"{html.escape(inner, quote=True)}\"></iframe></body></html>")
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={max(width, 500) + 40},1100", "--dump-dom",
         page.as_uri()],
        capture_output=True, text=True, timeout=120)
    m = re.search(r'data-measure="([^"]*)"', out.stdout)
    assert m, f"chromium printed no measurement (rc {out.returncode}): {out.stderr[-1500:]}"
    return json.loads(html.unescape(m.group(1)))


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for suite, src in SUITES.items():
        dst = tmp_path_factory.mktemp("browser") / suite
        shutil.copytree(src, dst)
        build_report(dst)
        out[suite] = dst / "report.html"
    return out


@pytest.mark.parametrize("suite", list(SUITES))
@pytest.mark.parametrize("width", [1400, 390])
def test_first_screen_and_no_sideways_scrolling(reports, tmp_path, suite, width):
    m = _measure(reports[suite], tmp_path, width)
    if width == 1400:
        assert m["findings_top"] is not None and m["findings_top"] < 1000, m
    assert m["main_top"] > (m["findings_top"] or 0)
    assert m["page_width"] <= m["window_width"], f"the page scrolls sideways: {m['page_width']} px; {m['wide']}"
    stuck = [t for t in m["tables"] if t["width"] > t["room"] and not t["scrolls"]]
    assert not stuck, f"tables wider than their {m['tables'][0]['room']} px that do not scroll: {stuck}"


def test_the_measurement_sees_a_page_that_overflows(reports, tmp_path):
    """The check above can fail: a table of 40 long columns outside a scrolling container widens the page."""
    report = tmp_path / "wide.html"
    wide = "<table><tr>" + "".join(f"<td class='num'>{'0.123456789 ' * 3}</td>" for _ in range(40)) + "</tr></table>"
    page = reports["smoke-run"].read_text()
    assert "<h2 id='more-tables'>" in page
    report.write_text(page.replace("<h2 id='more-tables'>", f"<div class='wide'>{wide}</div><h2 id='more-tables'>"))
    m = _measure(report, tmp_path)
    assert m["page_width"] > m["window_width"] and m["wide"], m


FILTER = """<script>
const pick = (id, v) => { const s = document.getElementById(id); s.value = v; s.dispatchEvent(new Event('change')); };
const count = () => { const shown = [...document.querySelectorAll('div.answers .prompt')].filter(p => !p.hidden);
  return {prompts: shown.length, sets: [...new Set(shown.map(p => p.dataset.set))],
          answers: [...new Set(shown.flatMap(p => [...p.querySelectorAll('.answer:not(.teacher)')]
                                .filter(a => !a.hidden).map(a => a.dataset.method)))]}; };
const all = count();
pick('ans-set', 'world-ood'); const ood = count();
pick('ans-method', 'GAD'); const gad = count();
pick('ans-set', ''); pick('ans-method', ''); const reset = count();
window.parent.document.body.setAttribute('data-measure', JSON.stringify({all, ood, gad, reset}));
</script>"""


def test_the_answer_browser_filters_by_set_and_method(reports, tmp_path):
    m = _measure(reports["smoke-run"], tmp_path, script=FILTER)
    assert m["all"]["prompts"] == 16 and m["all"]["sets"] == ["world-id", "world-ood"] and len(m["all"]["answers"]) == 9
    assert m["ood"]["prompts"] == 8 and m["ood"]["sets"] == ["world-ood"]
    assert m["gad"]["prompts"] == 8 and m["gad"]["answers"] == ["GAD"]
    assert m["reset"] == m["all"]
