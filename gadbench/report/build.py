"""build_report: read a run or suite directory, write REPORT.md, report.html, tables/ and figures/ into it."""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass
from pathlib import Path

import matplotlib

from gadbench.io import atomic_write_bytes, atomic_write_text
from gadbench.report.baselines import Baselines, load_baselines
from gadbench.report.figures import FIGURES
from gadbench.report.load import load_results
from gadbench.report.notes import collect
from gadbench.report.render import Report, html_page, markdown
from gadbench.report.tables import build_tables
from gadbench.report.typeset import Table, to_csv, to_latex, to_markdown


@dataclass(frozen=True)
class BuiltReport:
    """What `build_report` wrote and the tables it holds, for callers that show them (the end of `gadbench run`)
    without parsing the Markdown."""

    markdown: Path  # REPORT.md
    html: Path  # report.html
    tables: tuple[Table, ...]

    def table(self, name: str) -> Table | None:
        """The table named `name` (findings, main, ablations, ...), None when the report skipped it."""
        return next((t for t in self.tables if t.name == name), None)


def build_report(path: str | Path, ci: bool = False, baselines: str | Path | None = None) -> BuiltReport:
    """Write the report of `path` (a run dir or results/<suite>/) into it and return what it wrote.
    `ci` adds intervals to cells; `baselines` overrides baselines/paper.json (used for the paper suite)."""
    suite = load_results(path)
    base: Baselines | None = load_baselines(baselines) if suite.is_paper else None
    out = Path(path)
    for sub in ("tables", "figures"):
        shutil.rmtree(out / sub, ignore_errors=True)
    tables, skipped_tables = build_tables(suite, base)
    for t in tables:
        atomic_write_text(out / "tables" / f"{t.name}.md", f"{t.title}\n\n{to_markdown(t, ci)}\n\n{t.note}\n")
        atomic_write_text(out / "tables" / f"{t.name}.tex", to_latex(t, ci))
        atomic_write_text(out / "tables" / f"{t.name}.csv", to_csv(t))
    figures, skipped_figures = [], []
    for name, title, make in FIGURES:
        fig = make(suite)
        if isinstance(fig, str):
            skipped_figures.append(f"{title}: {fig}")
            continue
        fig.suptitle(title, fontsize=11)
        png = _save(fig, "png")
        fig.set_layout_engine("none")  # keep the positions laid out for the PNG; saves a second layout pass
        with matplotlib.rc_context({"svg.fonttype": "none"}):
            svg = _save(fig, "svg", metadata={"Date": None})
        atomic_write_bytes(out / "figures" / f"{name}.png", png)
        atomic_write_bytes(out / "figures" / f"{name}.svg", svg)
        figures.append((name, title, png))
    rep = Report(suite, collect(suite), tables, skipped_tables, figures, skipped_figures, ci)
    atomic_write_text(out / "report.html", html_page(rep))
    atomic_write_text(out / "REPORT.md", markdown(rep))
    return BuiltReport(out / "REPORT.md", out / "report.html", tuple(tables))


def _save(fig, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, **kwargs)
    return buf.getvalue()
