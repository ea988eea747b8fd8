"""REPORT.md and a self-contained report.html (inline CSS, figures as base64 data URIs)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass

from gadbench.report.load import Suite
from gadbench.report.naming import student_label
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


HEADLINE = ("findings", "main")  # the tables of the first screen, in this order
HEADLINE_FIGURE = "fig1_bars"


def summary(rep: Report) -> str:
    """One paragraph: the suite, its students, methods, seeds, budget and judges, and where it was read."""
    s = rep.suite
    cfg = s.meta.get("config") or {}
    students = list(dict.fromkeys(r.student for r in s.runs if r.family not in ("teacher", "before")))
    methods = list(dict.fromkeys(r.base_method for r in s.runs if r.family not in ("teacher", "before")))
    seeds = sorted({r.seed for r in s.runs})
    train = cfg.get("train") or next((r.config.get("train") for r in s.runs if r.config.get("train")), {}) or {}
    judges = cfg.get("eval", {}).get("judges") or next(
        (r.config.get("eval", {}).get("judges") for r in s.runs if r.config.get("eval")), [])
    # and judges added after training (`gadbench eval --judges`): each leaves `<judge>/score` in the summaries
    added = [key.removesuffix("/score") for r in s.runs for stats in ((r.summary or {}).get("eval") or {}).values()
             for key in stats if key.endswith("/score")]
    judges = list(dict.fromkeys([*judges, *added]))
    parts = [f"Suite `{s.name}`: {len(s.runs)} runs"]
    if students:
        parts.append(f"student{'s' if len(students) > 1 else ''} {', '.join(student_label(x) for x in students)}")
    if methods:
        parts.append(f"methods {', '.join(methods)}")
    parts.append(f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''}")
    if train.get("steps"):
        shape = (f" of {train['batch_size']} prompts x {train['group_size']} samples"
                 if train.get("batch_size") and train.get("group_size") else "")
        warm = f" (GAD warmup {train['warmup_steps']})" if train.get("warmup_steps") is not None else ""
        parts.append(f"{train['steps']} steps{shape}{warm}")
    if judges:
        parts.append(f"judged by {', '.join(map(str, judges))}")
    searched = sum(1 for r in s.runs if r.search_point)
    text = "; ".join(parts) + "."
    if searched:
        text += (" Methods with a hyperparameter search are shown at the setting their validation score prefers "
                 "(table `search`).")
    if s.is_paper:
        text += " Published numbers are shown beside ours."
    return text + f" Rebuild with `gadbench report {s.path}`."


def _sections(notes: Notes, n_runs: int) -> list[tuple[str, list[tuple[str, list[str]]]]]:
    """(title, [(one line per distinct note with the runs counted, the runs it names)])."""
    def count(runs: list[str]) -> str:
        return f"all {n_runs} runs" if len(runs) == n_runs > 1 else f"{len(runs)} run{'s' if len(runs) > 1 else ''}"

    def grouped(d: dict[str, list[str]]) -> list[tuple[str, list[str]]]:
        return [(f"{text}: {count(runs)}", runs) for text, runs in d.items()]

    return [
        ("Departures from the paper", grouped(notes.departures)),
        ("Checkpoint selection", grouped(notes.selection)),
        ("Data loaded", grouped(notes.data)),
        ("Warnings", [(w, []) for w in notes.warnings]),
        ("Budget-check failures", [(b, []) for b in notes.budget]),
    ]


def _split(rep: Report) -> tuple[list[Table], list[Table]]:
    first = [t for name in HEADLINE for t in rep.tables if t.name == name]
    return first, [t for t in rep.tables if t not in first]


def _md_table(t: Table, ci: bool) -> list[str]:
    return [f"### {t.title}", "", t.note, "", to_markdown(t, ci), "",
            f"Files: `tables/{t.name}.md`, `tables/{t.name}.tex`, `tables/{t.name}.csv`.", ""]


def _md_figure(name: str, title: str) -> list[str]:
    return [f"### {title}", "", f"![{title}](figures/{name}.png)", "",
            f"Files: `figures/{name}.png`, `figures/{name}.svg`.", ""]


def markdown(rep: Report) -> str:
    first, rest = _split(rep)
    out = [f"# gadbench report: {rep.suite.name}", "", summary(rep), ""]
    for t in first:
        out += _md_table(t, ci=True)
    for name, title, _ in rep.figures:
        if name == HEADLINE_FIGURE:
            out += _md_figure(name, title)
    out += ["## More tables", ""]
    for t in rest:
        out += _md_table(t, rep.ci)
    out += [f"- {s}" for s in rep.skipped_tables] + ["", "## Figures", ""]
    for name, title, _ in rep.figures:
        if name != HEADLINE_FIGURE:
            out += _md_figure(name, title)
    out += [f"- {s}" for s in rep.skipped_figures] + ["", "## Departures and notes", ""]
    for title, items in _sections(rep.notes, len(rep.suite.runs)):
        out += [f"### {title}", ""] + ([f"- {line}" for line, _ in items] or ["- none"]) + [""]
    out += ["## Runs", "", _runs_md(rep.suite), ""]
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
                r.identity.label,
                r.identity.description or "–",
                f"{sel.get('rule', '–')} @ {sel.get('checkpoint', '–')}",
            ]
        )
    return rows


_RUN_HEADER = ["run id", "student", "method", "seed", "variant", "description", "selection"]


def _runs_md(suite: Suite) -> str:
    return to_markdown(Table("runs", "Runs", _RUN_HEADER, _runs(suite)))


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1360px;margin:1.2em auto;padding:0 1em;
color:#222;line-height:1.4}
h1{border-bottom:2px solid #4e79a7;padding-bottom:.2em;margin:.2em 0 .4em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
h3{margin:1em 0 .3em}p.summary{max-width:1200px}
table{border-collapse:collapse;margin:.4em 0 1em;font-size:13px}
th,td{padding:2px 8px;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f3f5f8;text-align:left;border-bottom:2px solid #999}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}td.txt{max-width:520px}
.ref{color:#666;font-size:11px;display:block}tr.block td{border-top:2px solid #999}
.table{max-width:100%}.note{color:#555;font-size:13px;margin:.2em 0}.skipped{color:#777}
img{max-width:100%;border:1px solid #eee}code{background:#f3f3f3;padding:0 3px}
details{margin:.2em 0 .6em 1.2em}summary{cursor:pointer}
"""


def _html_table(t: Table, ci: bool) -> str:
    e = html.escape
    return (f"<h3 id='table-{t.name}'>{e(t.title)}</h3><p class='note'>{e(t.note)}</p>"
            f"<div class='table'>{to_html(t, ci)}</div>")


def _html_figure(name: str, title: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f"<h3 id='figure-{name}'>{html.escape(title)}</h3><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>"


def html_page(rep: Report) -> str:
    e = html.escape
    first, rest = _split(rep)
    out = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>gadbench report: {e(rep.suite.name)}"
        f"</title><style>{_CSS}</style></head><body>",
        f"<h1>gadbench report: {e(rep.suite.name)}</h1><p class='summary'>{e(summary(rep))}</p>",
    ]
    out += [_html_table(t, ci=True) for t in first]
    out += [_html_figure(n, title, png) for n, title, png in rep.figures if n == HEADLINE_FIGURE]
    out.append("<h2>More tables</h2>")
    out += [_html_table(t, rep.ci) for t in rest]
    out += [f"<p class='skipped'>{e(s)}</p>" for s in rep.skipped_tables]
    out.append("<h2>Figures</h2>")
    out += [_html_figure(n, title, png) for n, title, png in rep.figures if n != HEADLINE_FIGURE]
    out += [f"<p class='skipped'>{e(s)}</p>" for s in rep.skipped_figures]
    out.append("<h2 id='departures'>Departures and notes</h2>")
    for title, items in _sections(rep.notes, len(rep.suite.runs)):
        out.append(f"<h3>{e(title)}</h3><ul>")
        for line, runs in items or [("none", [])]:
            folded = (f"<details><summary>{len(runs)} run(s)</summary>{e(', '.join(runs))}</details>"
                      if runs else "")
            out.append(f"<li>{e(line)}{folded}</li>")
        out.append("</ul>")
    out.append(f"<h2>Runs</h2><div class='table'>{to_html(Table('runs', 'Runs', _RUN_HEADER, _runs(rep.suite)))}</div>")
    out.append("</body></html>")
    return "\n".join(out)
