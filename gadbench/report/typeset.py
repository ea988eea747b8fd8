"""A small table model (cells with intervals, bold and published values) and its renderers:
Markdown (tabulate), LaTeX (booktabs), CSV and HTML."""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass, field

from tabulate import tabulate


@dataclass
class Cell:
    """A number with optional interval (`lo`, `hi`, `n` items or `seeds` seeds) and published `paper` value;
    `second` makes a "score / length" pair."""

    value: float | None = None
    lo: float | None = None
    hi: float | None = None
    n: int | None = None
    seeds: int = 1
    paper: float | None = None
    bold: bool = False
    digits: int = 1
    second: Cell | None = None
    remark: str = ""  # shown after a "bare" cell's value where intervals are shown
    kind: str = "interval"  # "range": [lo, hi] is the range of seed means, not an interval; "bare": no interval


@dataclass
class Table:
    name: str
    title: str
    header: list[str]
    rows: list[list[Cell | str]]
    blocks: list[int] = field(default_factory=list)  # row indices that start a new block
    note: str = ""
    second_name: str = "length"


def _num(v: float | None, digits: int) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def cell_parts(cell: Cell, ci: bool) -> tuple[str, str]:
    """(value text, trailing text): the value is what gets bolded."""
    pair = [cell] + ([cell.second] if cell.second else [])
    value = " / ".join(_num(c.value, c.digits) for c in pair)
    rest = ""
    if ci and cell.lo is not None and cell.hi is not None:
        bounds = f"[{_num(cell.lo, cell.digits)}, {_num(cell.hi, cell.digits)}]"
        if cell.kind == "range":
            rest += f" range {bounds} over {cell.seeds} seeds"
        elif cell.kind == "bare":
            pass
        elif cell.seeds > 1:
            rest += f" {bounds} n={cell.seeds}x{cell.n // cell.seeds}" if cell.n % cell.seeds == 0 else (
                f" {bounds} {cell.seeds} seeds, n={cell.n}")
        else:
            rest += f" {bounds} n={cell.n}"
    if any(c.paper is not None for c in pair):
        paper = " / ".join(_num(c.paper, c.digits) for c in pair)
        diffs = [None if c.value is None or c.paper is None else c.value - c.paper for c in pair]
        rest += f" (paper {paper}"
        if any(d is not None for d in diffs):
            rest += ", Δ " + " / ".join(
                "–" if d is None else f"{d:+.{c.digits}f}" for d, c in zip(diffs, pair, strict=True)
            )
        rest += ")"
    if ci and cell.kind == "bare" and cell.value is not None and cell.remark:
        rest += f" ({cell.remark})"
    return value, rest


def one_kind(cells: list[Cell], remark: str) -> None:
    """Keep one kind of interval in a column: where bootstrap intervals sit beside ranges of seed means (runs that
    store no eval rows), the ranges are dropped and the cells say why (`remark`)."""
    kinds = {c.kind for c in cells if c.value is not None and c.lo is not None}
    if len(kinds) < 2:
        return
    for c in cells:
        if c.kind == "range":
            c.lo = c.hi = None
            c.kind, c.remark = "bare", remark


def _text(item: Cell | str, ci: bool, bold: tuple[str, str], esc=lambda s: s) -> str:
    if isinstance(item, str):
        return esc(item)
    value, rest = cell_parts(item, ci)
    value = esc(value)
    return (bold[0] + value + bold[1] if item.bold else value) + esc(rest)


def to_markdown(t: Table, ci: bool = False) -> str:
    rows = [[_text(c, ci, ("**", "**")).replace("|", "\\|") for c in r] for r in t.rows]
    return tabulate(rows, headers=t.header, tablefmt="pipe", disable_numparse=True)


_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\^{}",
    "Δ": r"$\Delta$",
    "–": "--",
}


def _tex(s: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in s)


def to_latex(t: Table, ci: bool = False) -> str:
    """A booktabs tabular; a \\midrule separates blocks (students)."""
    kinds = ["r" if any(isinstance(r[i], Cell) for r in t.rows) else "l" for i in range(len(t.header))]
    lines = [
        f"% {t.title}",
        r"\begin{tabular}{" + "".join(kinds) + "}",
        r"\toprule",
        " & ".join(_tex(h) for h in t.header) + r" \\",
        r"\midrule",
    ]
    for i, row in enumerate(t.rows):
        if i in t.blocks and i > 0:
            lines.append(r"\midrule")
        lines.append(" & ".join(_text(c, ci, (r"\textbf{", "}"), _tex) for c in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_csv(t: Table) -> str:
    """One column per value; published values, differences, intervals and pair members get their own."""
    cols: list[tuple[str, int, str]] = []
    for i, h in enumerate(t.header):
        cells = [r[i] for r in t.rows if isinstance(r[i], Cell)]
        cols.append((h, i, "value" if cells else "text"))
        extra = [("lo", "lo"), ("hi", "hi"), ("n", "n"), ("seeds", "seeds")]
        if any(c.second for c in cells):
            extra.insert(0, (t.second_name, "second"))
        if any(c.paper is not None or (c.second and c.second.paper is not None) for c in cells):
            extra += [("paper", "paper"), ("diff", "diff")]
            if any(c.second for c in cells):
                extra += [(f"paper {t.second_name}", "second_paper")]
        cols += [(f"{h} {name}", i, attr) for name, attr in extra if cells]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([c[0] for c in cols])
    for row in t.rows:
        w.writerow([_csv_value(row[i], attr) for _, i, attr in cols])
    return buf.getvalue()


def _csv_value(item: Cell | str, attr: str):
    if isinstance(item, str):
        return item if attr in ("text", "value") else ""
    if attr == "second":
        v = item.second.value if item.second else None
    elif attr == "second_paper":
        v = item.second.paper if item.second else None
    elif attr == "diff":
        v = None if item.value is None or item.paper is None else round(item.value - item.paper, 6)
    else:
        v = getattr(item, attr)
    return "" if v is None else v


def to_html(t: Table, ci: bool = False) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.header)
    body = []
    for i, row in enumerate(t.rows):
        cls = ' class="block"' if i in t.blocks and i > 0 else ""
        tds = "".join(
            f'<td class="{"num" if isinstance(c, Cell) else "txt"}">{_html_cell(c, ci)}</td>' for c in row
        )
        body.append(f"<tr{cls}>{tds}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _html_cell(item: Cell | str, ci: bool) -> str:
    if isinstance(item, str):
        return html.escape(item)
    value, rest = cell_parts(item, ci)
    value = f"<strong>{html.escape(value)}</strong>" if item.bold else html.escape(value)
    return value + (f'<span class="ref">{html.escape(rest)}</span>' if rest else "")
