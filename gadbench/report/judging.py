"""The report's view of judging: raw scores beside length- and style-controlled ones
(gadbench.judge.controlled), the finding "GAD's gain survives length control", score against answer length
per method, and how far judgments agree (gadbench.judge.agreement): one judge's two answer orders, and two
judges on the same answers.

Controlled scores exist for the judges whose record has a `Control` (gad-paper, pairwise); a regression over
fewer than MIN_ITEMS judged items per method is not shown. Intervals resample seeds, then items, refitting on
each resample: at least the suite's `eval.bootstrap` refits, grown (gadbench.metrics.grow_draws) up to MAX_REFITS
until each bound's Monte-Carlo error is settled.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from gadbench.judge.agreement import item_scores, judge_agreement, position_agreement
from gadbench.judge.controlled import CONTROLS, controlled_difference, controlled_score, judged_items
from gadbench.judge.records import JUDGES
from gadbench.report.cells import datasets, resamples, selected_rows
from gadbench.report.load import Run, Suite
from gadbench.report.naming import student_label
from gadbench.report.typeset import Cell, Table

CONTROLLED_JUDGES = tuple(name for name, record in JUDGES.items() if record.control)
MIN_ITEMS = 10
MAX_REFITS = 16_000  # a regression per resample: a lower cap than gadbench.metrics.MAX_RESAMPLES


def by_seed(runs: list[Run], label: str) -> dict[int, list[dict]]:
    return {r.seed: rows for r in runs if (rows := selected_rows(r, label))}


def _judges(rows_per_seed: dict[int, list[dict]]) -> list[str]:
    found = {j for rows in rows_per_seed.values() for r in rows for j in (r.get("judgments") or {})}
    return sorted(found)


def _groups(runs: list[Run]) -> list[tuple[str, str, list[Run]]]:
    """(student, variant label, seeds) of the students' runs, in the given order."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        if r.identity.key not in ("teacher", "before") and r.summary:
            groups.setdefault((r.student, r.identity.label), []).append(r)
    return [(s, v, runs) for (s, v), runs in groups.items()]


def _cell(part: dict) -> Cell:
    return Cell(part["mean"], part["ci_low"], part["ci_high"])


def controlled_table(suite: Suite, base=None) -> Table | str:
    """Per student, method, dataset and controllable judge: raw, length- and style-controlled score."""
    rows, warnings = [], []
    n_resamples = resamples(suite.runs, suite.meta)
    for student, variant, runs in _groups(suite.runs):
        for label in datasets(suite):
            per_seed = by_seed(runs, label)
            for judge in (j for j in _judges(per_seed) if j in CONTROLLED_JUDGES):
                n = sum(len(judged_items(rows, judge)) for rows in per_seed.values())
                if n < MIN_ITEMS:
                    continue
                fits = {c: controlled_score(per_seed, judge, c, n_resamples=n_resamples, max_resamples=MAX_REFITS)
                        for c in CONTROLS}
                cells = [_cell(fits["length"]["raw"])] + [
                    _cell(f["controlled"]) if f["controlled"]["mean"] is not None else "–" for f in fits.values()]
                warned = [f"{c}: {f['warning']}" for c, f in fits.items() if f["warning"]]
                warnings += [f"{student_label(student)} {variant} on {label}: {w}" for w in warned]
                rows.append([student_label(student), variant, label, judge, *cells, "yes" if warned else "",
                             f"{len(per_seed)} x {round(n / len(per_seed))}"])
    if not rows:
        return (f"Controlled-score table skipped: it needs at least {MIN_ITEMS} stored gad-paper or pairwise "
                "judgments of a method on a dataset.")
    note = ("Raw: the judge's mean score (0-100). Length-controlled: the score predicted at zero length "
            "difference to the opponent (AlpacaEval 2's LC for pairwise; a linear fit for gad-paper). "
            "Style-controlled: at zero difference in length, headers, list items and bold (Arena-Hard). "
            f"Formulas: docs/judging.md. 95% intervals refitted on resampled seeds, then items: at least "
            f"eval.bootstrap = {n_resamples:,} refits, more (up to {MAX_REFITS:,}) until each bound's Monte-Carlo "
            "error is at most 5% of its interval's width. "
            "shift > 2: the controlled score moved by more than 2 points.")
    if warnings:
        note += " " + " ".join(w.rstrip(".") + "." for w in warnings)
    return Table("controlled", "Raw and controlled judge scores",
                 ["Student", "Method", "Dataset", "Judge", "raw", "length-controlled", "style-controlled",
                  "shift > 2", "n (seeds x items)"], rows, note=note)


def survives_length_control(gad: list[Run], seqkd: list[Run], labels: list[str],
                             n_resamples: int) -> tuple[list, str] | None:
    """The finding row, with its resamples and Monte-Carlo errors: length-controlled GAD - SeqKD on the first
    dataset with a controllable judge."""
    for label in labels:
        a, b = by_seed(gad, label), by_seed(seqkd, label)
        for judge in (j for j in CONTROLLED_JUDGES if j in _judges(a) and j in _judges(b)):
            try:
                d = controlled_difference(a, b, judge, "length", n_resamples=n_resamples, max_resamples=MAX_REFITS)
            except ValueError:
                continue
            if d["n_items"] < MIN_ITEMS:
                continue
            evidence = (f"length-controlled {judge} on {label}: GAD - SeqKD {d['diff']:+.2f} "
                        f"[{d['ci_low']:+.2f}, {d['ci_high']:+.2f}] (raw {d['raw_diff']:+.2f} "
                        f"[{d['raw_ci_low']:+.2f}, {d['raw_ci_high']:+.2f}], {d['raw_verdict']})")
            n = f"{d['n_seeds']} x {round(d['n_items'] / d['n_seeds'])} prompts"
            mc = (f"{d['n_resamples']:,} refits, MC s.e. of the bounds ±{d['mc_low']:.3f} / ±{d['mc_high']:.3f} "
                  f"(raw ±{d['raw_mc_low']:.3f} / ±{d['raw_mc_high']:.3f})")
            return ["GAD's gain survives length control", evidence, n, d["verdict"]], mc
    return None


def _pooled(groups: list[tuple[str, str, list[Run]]], label: str, judge: str) -> dict[str, float | None]:
    """(run, item id) -> score of `judge` over every run's selected rows of a dataset."""
    out = {}
    for _, _, runs in groups:
        for r in runs:
            out.update({f"{r.run_id}/{k}": v for k, v in item_scores(selected_rows(r, label), judge).items()})
    return out


def _num(v: float | None, fmt: str = ".2f") -> str:
    return "–" if v is None else format(v, fmt)


def agreement_table(suite: Suite, base=None) -> Table | str:
    """Per dataset: each pair of judges on the same answers, and each judge's two answer orders."""
    groups, rows = _groups(suite.runs), []
    for label in datasets(suite):
        judges = sorted({j for _, _, runs in groups for j in _judges(by_seed(runs, label))})
        scores = {j: _pooled(groups, label, j) for j in judges}
        for a, b in combinations(judges, 2):
            parities = {JUDGES[j].parity if j in JUDGES else None for j in (a, b)}
            center = parities.pop() if len(parities) == 1 else None
            g = judge_agreement(scores[a], scores[b], center)
            if g["n"] >= 2:
                agree = "–" if g["agreement"] is None else f"{100 * g['agreement']:.0f}%"
                rows.append([label, f"{a} vs {b}", _num(g["spearman"]), _num(g["kendall"]), agree, str(g["n"])])
        for j in judges:
            judged = [(r.get("judgments") or {}).get(j) or {} for _, _, runs in groups for run in runs
                      for r in selected_rows(run, label)]
            p = position_agreement(judged, n_resamples=resamples(suite.runs, suite.meta))
            if p["n_valid"]:
                rows.append([label, f"{j}: answer orders swapped", "–", "–",
                             f"{100 * p['mean']:.0f}% [{100 * p['ci_low']:.0f}, {100 * p['ci_high']:.0f}]",
                             str(p["n_valid"])])
    if not rows:
        return "Judge-agreement table skipped: no dataset has two judges, or a judge run in both answer orders."
    return Table("judge-agreement", "How far judgments agree",
                 ["Dataset", "Judges", "Spearman", "Kendall tau-b", "agreement", "n"], rows,
                 note=("Two judges on the same answers (every method's selected checkpoint, pooled): rank "
                       "correlations, and for two judges scored against an opponent the share of answers both "
                       "put on the same side of parity (50). Answer orders swapped: the share of two-order "
                       "judgments whose orders agree (a judge without position bias: 100%), 95% interval."))


def length_points(runs: list[Run], label: str) -> dict[str, tuple[str, np.ndarray, np.ndarray]]:
    """Method label -> (judge, answer tokens, score) of its selected rows on a dataset, for the primary judge
    the rows carry (gad-paper or pairwise first, else the first judge)."""
    out = {}
    for student, variant, group in _groups(runs):
        per_seed = by_seed(group, label)
        judges = _judges(per_seed)
        judge = next((j for j in CONTROLLED_JUDGES if j in judges), judges[0] if judges else None)
        pts = []
        for rows in per_seed.values():
            scores = item_scores(rows, judge)  # valid scores only
            pts += [(r["answer_tokens"], scores[str(r["id"])]) for r in rows
                    if isinstance(r.get("answer_tokens"), int | float) and scores.get(str(r["id"])) is not None]
        if len(pts) >= 2:
            x, y = (np.array(v, dtype=float) for v in zip(*pts, strict=True))
            prefix = f"{student_label(student)} " if len({r.student for r in runs}) > 1 else ""
            out[prefix + variant] = (judge, x, y)
    return out
