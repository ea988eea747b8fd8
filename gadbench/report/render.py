"""REPORT.md and a self-contained report.html (inline CSS, figures as base64 data URIs)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass

from gadbench.report.load import Suite
from gadbench.report.notes import Notes
from gadbench.report.typeset import Table, to_html, to_markdown


@dataclass
class Report:
    suite: Suite
    notes: Notes
    tables: list[Table]
    skipped_tables: list[str]
    figures: list[tuple[str, str, bytes]]  # (file stem, title, PNG bytes)
    skipped_figures: list[str]
    ci: bool = False


def _intro(rep: Report) -> str:
    s = rep.suite
    paper = "yes: published numbers are shown beside ours" if s.is_paper else "no"
    return (
        f"{len(s.runs)} run(s) read from `{s.path}`. Paper baseline: {paper}. "
        f"Rebuild with `gadbench report {s.path}`."
    )


def _sections(notes: Notes, n_runs: int) -> list[tuple[str, list[str]]]:
    def grouped(d: dict[str, list[str]]) -> list[str]:
        return [
            f"{text} — " + (f"all {n_runs} runs" if len(runs) == n_runs > 1 else ", ".join(runs))
            for text, runs in d.items()
        ]

    return [
        ("Departures listed by the runs", grouped(notes.departures)),
        ("Checkpoint selection", grouped(notes.selection)),
        ("Warnings", notes.warnings),
        ("Budget-check failures", notes.budget),
    ]


def markdown(rep: Report) -> str:
    out = [f"# gadbench report: {rep.suite.name}", "", _intro(rep), "", "## Departures from the paper", ""]
    for title, items in _sections(rep.notes, len(rep.suite.runs)):
        out += [f"### {title}", ""] + ([f"- {i}" for i in items] or ["- none"]) + [""]
    out += ["## Tables", ""]
    for t in rep.tables:
        out += [
            f"### {t.title}",
            "",
            t.note,
            "",
            to_markdown(t, rep.ci),
            "",
            f"Files: `tables/{t.name}.md`, `tables/{t.name}.tex`, `tables/{t.name}.csv`.",
            "",
        ]
    out += [f"- {s}" for s in rep.skipped_tables] + ["", "## Figures", ""]
    for name, title, _ in rep.figures:
        out += [
            f"### {title}",
            "",
            f"![{title}](figures/{name}.png)",
            "",
            f"Files: `figures/{name}.png`, `figures/{name}.svg`.",
            "",
        ]
    out += [f"- {s}" for s in rep.skipped_figures] + ["", "## Runs", "", _runs_md(rep.suite), ""]
    return "\n".join(out)


def _runs(suite: Suite) -> list[list[str]]:
    rows = []
    for r in suite.runs:
        sel = (r.summary or {}).get("selection") or {}
        rows.append(
            [
                r.run_id,
                r.student,
                r.method,
                str(r.seed),
                r.variant.label,
                f"{sel.get('rule', '–')} @ {sel.get('checkpoint', '–')}",
            ]
        )
    return rows


_RUN_HEADER = ["run id", "student", "method", "seed", "variant", "selection"]


def _runs_md(suite: Suite) -> str:
    return to_markdown(Table("runs", "Runs", _RUN_HEADER, _runs(suite)))


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{border-bottom:2px solid #4e79a7;padding-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:13px}
th,td{padding:3px 9px;border-bottom:1px solid #eee}th{background:#f3f5f8;text-align:left;border-bottom:2px solid #999}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}td.txt{white-space:nowrap}
.ref{color:#666;font-size:12px}tr.block td{border-top:2px solid #999}
.scroll{overflow-x:auto}.note{color:#555;font-size:13px}.departures{background:#fff8e1;border:1px solid #f0c36d;
padding:.4em 1.2em;border-radius:6px}.skipped{color:#777}img{max-width:100%;border:1px solid #eee}
code{background:#f3f3f3;padding:0 3px}
"""


def html_page(rep: Report) -> str:
    e = html.escape
    out = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>gadbench report: {e(rep.suite.name)}"
        f"</title><style>{_CSS}</style></head><body>",
        f"<h1>gadbench report: {e(rep.suite.name)}</h1><p>{e(_intro(rep))}</p>",
        "<h2 id='departures'>Departures from the paper</h2><div class='departures'>",
    ]
    for title, items in _sections(rep.notes, len(rep.suite.runs)):
        out.append(
            f"<h3>{e(title)}</h3><ul>" + "".join(f"<li>{e(i)}</li>" for i in items or ["none"]) + "</ul>"
        )
    out.append("</div><h2>Tables</h2>")
    for t in rep.tables:
        out.append(
            f"<h3 id='table-{t.name}'>{e(t.title)}</h3><p class='note'>{e(t.note)}</p>"
            f"<div class='scroll'>{to_html(t, rep.ci)}</div>"
        )
    out += [f"<p class='skipped'>{e(s)}</p>" for s in rep.skipped_tables]
    out.append("<h2>Figures</h2>")
    for name, title, png in rep.figures:
        data = base64.b64encode(png).decode("ascii")
        out.append(
            f"<h3 id='figure-{name}'>{e(title)}</h3><img alt='{e(title)}' src='data:image/png;base64,{data}'>"
        )
    out += [f"<p class='skipped'>{e(s)}</p>" for s in rep.skipped_figures]
    out.append(
        f"<h2>Runs</h2><div class='scroll'>{to_html(Table('runs', 'Runs', _RUN_HEADER, _runs(rep.suite)))}</div>"
    )
    out.append("</body></html>")
    return "\n".join(out)
