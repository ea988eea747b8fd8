"""The index page of a folder of suites (`gadbench report results/`): index.md and index.html beside the suites,
with every suite's note, its findings and their verdicts, and its leaderboard, linked to each suite's report.

A leaderboard is the suite's main table ranked as AlpacaEval ranks models: one row per (student, method) with
its primary metric on the suite's first set and the 95% interval of the report's main table, the other sets'
values, and the mean answer length in tokens on the first set (the lengths table), best first in the metric's
declared direction (gadbench.judge.records).
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from gadbench.io import atomic_write_text
from gadbench.report.cells import columns, higher_is_better
from gadbench.report.render import CSS, Report, inline, reading
from gadbench.report.typeset import Cell, Table, to_html, to_markdown


def leaderboard(rep: Report) -> Table | None:
    """The main table's rows ranked on its first set, with each row's mean answer length there."""
    main = rep.table("main")
    if main is None or len(main.header) < 3:
        return None
    first, metric = main.header[2], _first_metric(rep)
    lengths = _lengths(rep.table("lengths"), first)
    rows, student = [], ""
    for row in main.rows:
        student = row[0] or student
        length = lengths.get((student, row[1]))
        rows.append([student, row[1], *row[2:], Cell(length, digits=1) if length is not None else "–"])
    sign = -1.0 if higher_is_better(metric) is False else 1.0
    rows.sort(key=lambda r: -sign * r[2].value if isinstance(r[2], Cell) and r[2].value is not None else float("inf"))
    ranked = [[str(i + 1), *r] for i, r in enumerate(rows)]
    return Table(f"leaderboard-{rep.suite.name}", f"{rep.suite.name}: leaderboard", ["#", "Student", "Method",
                 *main.header[2:], f"length on {first}"], ranked,
                 note=f"Ranked by {metric} on {first}, best first; 95% intervals as in the main table; length: "
                      "mean answer tokens at the selected checkpoint.")


def _first_metric(rep: Report) -> str:
    return columns(rep.suite, primary_only=True)[0][1]


def _lengths(table: Table | None, dataset: str) -> dict[tuple[str, str], float]:
    """(student, method label) -> mean answer length on `dataset`, from the lengths table's pairs."""
    if table is None or dataset not in table.header:
        return {}
    col, out, student = table.header.index(dataset), {}, ""
    for row in table.rows:
        student = row[0] or student
        cell = row[col]
        if isinstance(cell, Cell) and cell.second is not None and cell.second.value is not None:
            out[(student, row[1])] = cell.second.value
    return out


def _findings(rep: Report) -> list[tuple[str, str, str]]:
    """(finding, verdict, evidence) of the suite's findings table."""
    t = rep.table("findings")
    return [(str(r[0]), str(r[-1]), str(r[1])) for r in t.rows] if t else []


def build_index(root: Path, reports: list[tuple[Path, Report]]) -> Path:
    """Write index.md and index.html into `root` for the suites built under it; return the index.md path."""
    root = Path(root)
    md = ["# gadbench results", "", f"{len(reports)} suites; each links its full report.", ""]
    page = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
            f"content='width=device-width, initial-scale=1'><title>gadbench results</title><style>{CSS}</style>"
            "</head><body><h1>gadbench results</h1>",
            "<nav>" + " · ".join(f"<a href='#suite-{html.escape(r.suite.name, quote=True)}'>{html.escape(r.suite.name)}"
                                 "</a>" for _, r in reports) + "</nav>"]
    for path, rep in reports:
        rel = os.path.relpath(path, root)
        name = rep.suite.name
        notes = reading(rep.suite, [])
        md += [f"## {name}", "", f"[report.html]({rel}/report.html) · [REPORT.md]({rel}/REPORT.md)", ""]
        page.append(f"<h2 id='suite-{html.escape(name, quote=True)}'>{html.escape(name)}</h2><p><a href='"
                    f"{html.escape(rel, quote=True)}/report.html'>report.html</a> · <a href='"
                    f"{html.escape(rel, quote=True)}/REPORT.md'>REPORT.md</a></p>")
        if notes:
            md += [" ".join(notes), ""]
            page.append("<p class='reading'>" + " ".join(map(inline, notes)) + "</p>")
        found = _findings(rep)
        if found:
            md += ["Findings:", ""] + [f"- {f}: **{v}** ({e})" for f, v, e in found] + [""]
            page.append("<ul>" + "".join(f"<li>{html.escape(f)}: <strong>{html.escape(v)}</strong> "
                                         f"<span class='note'>({html.escape(e)})</span></li>" for f, v, e in found)
                        + "</ul>")
        board = leaderboard(rep)
        if board:
            md += [to_markdown(board, ci=True), "", board.note, ""]
            page.append(f"<div class='table'>{to_html(board, ci=True)}</div><p class='note'>{inline(board.note)}</p>")
        else:
            md += ["No main table (no eval results).", ""]
            page.append("<p class='skipped'>No main table (no eval results).</p>")
    page.append("</body></html>")
    atomic_write_text(root / "index.md", "\n".join(md))
    atomic_write_text(root / "index.html", "\n".join(page))
    return root / "index.md"
