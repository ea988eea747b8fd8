"""The report's tables: main (Table 2 layout), ablations (Tables 3-5), lengths (Table 6), budget, judge, pairwise."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from gadbench.judge.records import metric_info
from gadbench.judge.usage import add_usage
from gadbench.metrics import paired_seeds_and_items
from gadbench.report.baselines import Baselines
from gadbench.report.cells import (
    aggregate,
    column_name,
    columns,
    datasets,
    eval_of,
    finding_metrics,
    item_values,
    mark_best,
    metrics_of,
    outcome_shares,
    resamples,
    set_digits,
)
from gadbench.report.load import Identity, Run, Suite
from gadbench.report.naming import OTHERS, PAPER_DATASETS, dataset_label, method_order, student_label
from gadbench.report.search import chosen_points, chosen_runs, points, selection_metric, validation_score
from gadbench.report.typeset import Cell, Table, one_kind

Rows = list[tuple[str, Identity, list[Run]]]  # (student, identity, seeds)


def build_tables(suite: Suite, base: Baselines | None) -> tuple[list[Table], list[str]]:
    """All tables that have data, and one sentence per table skipped for lack of data. Tables of results
    read the runs of each searched method's preferred point (`search.chosen_runs`); the search and budget
    tables read every run."""
    from gadbench.report.findings import findings_table
    from gadbench.report.judging import agreement_table, controlled_table
    from gadbench.report.validity import validity_table

    chosen = dataclasses.replace(suite, runs=chosen_runs(suite))
    built, skipped = [], []
    for make, view in ((findings_table, chosen), (main_table, chosen), (metric_tables, chosen),
                       (ablation_table, chosen), (length_table, chosen), (d_table, chosen),
                       (budget_curve_table, suite), (search_table, suite), (budget_table, suite),
                       (judge_table, suite), (pairwise_table, chosen), (controlled_table, chosen),
                       (agreement_table, chosen), (validity_table, suite)):
        made = make(view, base)
        for t in made if isinstance(made, list) else [made]:
            (built if isinstance(t, Table) else skipped).append(t)
    return built, skipped


def _group_order(suite: Suite) -> list[str]:
    """The ablation groups in the order the suite's runs first show them."""
    return list(dict.fromkeys(r.identity.group for r in suite.runs if r.identity.group))


def _rows(suite: Suite, keep: Callable[[Run], bool]) -> Rows:
    """Runs grouped by (student, identity key), the teacher first, then students in order of appearance."""
    groups: dict[tuple[str, str], tuple[str, Identity, list[Run]]] = {}
    order = _group_order(suite)
    for r in suite.runs:
        if keep(r):
            s = student_label(r.student)
            groups.setdefault((s, r.identity.key), (s, r.identity, []))[2].append(r)
    students = list(dict.fromkeys(s for s, _, _ in groups.values()))
    rank = {
        s: (0 if any(v.key == "teacher" for t, v, _ in groups.values() if t == s) else 1, i)
        for i, s in enumerate(students)
    }
    return sorted(
        groups.values(),
        key=lambda g: (
            rank[g[0]],
            method_order(g[1].family, g[1].key),
            order.index(g[1].group) if g[1].group else -1,
            g[1].label,
        ),
    )


def _paper(base, suite, runs, student, key, dataset, metric="score"):
    if base is None or not suite.is_paper or dataset not in PAPER_DATASETS + (OTHERS,):
        return None
    return base.value(runs[0].teacher, student, key, dataset, metric)


def _grid(suite, base, rows: Rows, cols, lead: Callable, primary: set) -> tuple[list[list], list[int]]:
    """Rows of leading text columns + one cell per column; digits per column; bold best per student block."""
    out, blocks, cells_by_col = [], [], {c: [] for c in cols}
    block_cells: list[dict] = []
    for i, (student, identity, runs) in enumerate(rows):
        if i == 0 or rows[i - 1][0] != student:
            blocks.append(len(out))
            block_cells.append({c: [] for c in cols})
        cells = []
        for c in cols:
            cell = aggregate(runs, *c)
            if c in primary:
                cell.paper = _paper(base, suite, runs, student, identity.key, c[0])
            cells.append(cell)
            cells_by_col[c].append(cell)
            if identity.key != "teacher":
                block_cells[-1][c].append(cell)
        out.append(lead(i, student, identity, runs) + cells)
    for c in cols:
        set_digits(cells_by_col[c])
        _one_kind(c[0], cells_by_col[c])
    for block in block_cells:
        for c in cols:
            mark_best(block[c], c[1])
    return out, blocks


NO_ROWS = "no interval: eval rows not stored"


def _one_kind(dataset: str, cells: list[Cell]) -> None:
    """Others shows no interval (a mean of three means); any other column one kind of interval."""
    if dataset == OTHERS:
        for c in cells:
            c.lo = c.hi = None
            c.kind = "bare"
    else:
        one_kind(cells, NO_ROWS)


def _primary(suite: Suite, cols) -> set:
    return {(d, m) for d, m in cols if m == (metrics_of(suite, d if d != OTHERS else "Dolly") or [None])[0]}


def _first(i: int, student: str, rows_before: list) -> str:
    return student if i == 0 or rows_before[i - 1][0] != student else ""


def _seeds_note(rows: Rows) -> str:
    seeds = sorted({len(runs) for _, _, runs in rows})
    return ("Several seeds: the mean over (seed, prompt) with a 95% interval that resamples seeds, then prompts "
            "(n = seeds x prompts). " if max(seeds, default=1) > 1 else "95% intervals resample prompts. ")


def main_table(suite: Suite, base: Baselines | None) -> Table | str:
    """Table 2's layout: one primary metric per dataset (the selection metric, else the judge's score)."""
    rows = _rows(suite, lambda r: r.identity.group is None and r.summary is not None)
    cols = columns(suite, primary_only=True)
    if not rows or not cols:
        return "Main table skipped: no summary.json with eval results."
    grid, blocks = _grid(
        suite, base, rows, cols, lambda i, s, v, _: [_first(i, s, rows), v.label], _primary(suite, cols)
    )
    metrics = sorted({m for _, m in cols})
    note = (f"Primary metric: {', '.join(_described(m) for m in metrics)}. Best per student in bold (teacher "
            "excluded). " + _seeds_note(rows))
    if OTHERS in {d for d, _ in cols}:
        note += "Others = unweighted mean of Dolly, SelfInst and Vicuna. "
    if suite.is_paper:
        note += "Published values from baselines/paper.json (Table 2, or Table 7 for the Qwen2.5-14B teacher)."
    return Table("main", "Main results (Table 2 layout)", ["Student", "Method"] + [c[0] for c in cols], grid, blocks,
                 note.strip())


def metric_tables(suite: Suite, base: Baselines | None) -> list[Table] | str:
    """Every other metric of each dataset (style shares, sampled metrics, ROUGE, ...), one table per dataset."""
    rows = _rows(suite, lambda r: r.identity.group is None and r.summary is not None)
    out = []
    for d in datasets(suite):
        cols = [(d, m) for m in metrics_of(suite, d)[1:]]
        if not rows or not cols:
            continue
        grid, blocks = _grid(suite, base, rows, cols, lambda i, s, v, _: [_first(i, s, rows), v.label], set())
        out.append(Table(f"metrics-{_slug(d)}", f"All metrics on {d}", ["Student", "Method"] + [m for _, m in cols],
                         grid, blocks, ("Best per student in bold (no bold where no direction is better). "
                                        + _seeds_note(rows) + "Metrics: " + "; ".join(_described(m) for _, m in cols)
                                        + ".").strip()))
    return out or "Metric tables skipped: no dataset has a metric besides its primary one."


def _described(metric: str) -> str:
    """`gold/accuracy (fraction correct, higher is better)`: the unit and direction its judge record declares."""
    info = metric_info(metric)
    return f"{metric} ({info.describe()})" if info else metric


def _slug(label: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in label.lower()).strip("-")


def ablation_table(suite: Suite, base: Baselines | None) -> Table | str:
    ablated = {student_label(r.student) for r in suite.runs if r.identity.group and r.summary}
    if not ablated:
        return "Ablation table skipped: no ablation runs (warmup, D loss, D size, frozen D, no D)."
    rows = _rows(
        suite,
        lambda r: (
            r.summary is not None
            and student_label(r.student) in ablated
            and (r.identity.group is not None or r.identity.key in ("seqkd", "gad"))
        ),
    )
    order, groups = list(dict.fromkeys(s for s, _, _ in rows)), _group_order(suite)
    rows.sort(
        key=lambda g: (
            order.index(g[0]),
            groups.index(g[1].group) + 1 if g[1].group else 0,
            method_order(g[1].family, g[1].key),
        )
    )
    cols = columns(suite, primary_only=True)

    def lead(i, s, v, _):
        return [_first(i, s, rows), v.group or "reference", v.label]

    grid, blocks = _grid(suite, base, rows, cols, lead, _primary(suite, cols))
    note = "Variants as each run's method record names them (summary.json identity); primary metric per dataset."
    if suite.is_paper:
        note += " Published values from Tables 3-5 where the same variant appears."
    return Table(
        "ablations",
        "Ablations (Tables 3-5 layout)",
        ["Student", "Group", "Variant"] + [column_name(c, cols) for c in cols],
        grid,
        blocks,
        note,
    )


def length_table(suite: Suite, base: Baselines | None) -> Table | str:
    ds = [d for d in datasets(suite) if any(eval_of(r, d).get("length") for r in suite.runs)]
    rows = _rows(suite, lambda r: r.summary is not None)
    if not ds or not rows:
        return "Length table skipped: no 'length' in any summary."
    grid, blocks, scores, lengths = [], [], [], []
    for i, (student, identity, runs) in enumerate(rows):
        if i == 0 or rows[i - 1][0] != student:
            blocks.append(len(grid))
        cells = []
        for d in ds:
            metric = (metrics_of(suite, d) or [""])[0]
            cell, length = aggregate(runs, d, metric), aggregate(runs, d, "length")
            cell.paper = _paper(base, suite, runs, student, identity.key, d)
            length.paper = _paper(base, suite, runs, student, identity.key, d, "length")
            cell.second = length
            scores.append(cell)
            lengths.append(length)
            cells.append(cell)
        grid.append([_first(i, student, rows), identity.label] + cells)
    set_digits(scores)
    set_digits(lengths)
    for d in ds:
        _one_kind(d, [c for i, c in enumerate(scores) if i % len(ds) == ds.index(d)])
    return Table(
        "lengths",
        "Score / mean response length in tokens (Table 6 layout)",
        ["Student", "Method"] + ds,
        grid,
        blocks,
        "Primary metric / length of the selected checkpoint's greedy answers.",
    )


_BUDGET = (
    ("prompts", "prompts"),
    ("rollouts", "rollouts"),
    ("generated_tokens", "gen. tokens"),
    ("g_optimizer_steps", "G steps"),
    ("d_optimizer_steps", "D steps"),
    ("flops", "FLOPs"),
    ("wall_s", "wall s"),
)


def budget_table(suite: Suite, base: Baselines | None) -> Table | str:
    rows, extra = [], set()
    for r in suite.runs:
        totals = (r.budget or {}).get("totals") or (r.summary or {}).get("budget")
        if not totals:
            continue
        check = (r.summary or {}).get("budget_check") or {}
        within = check.get("within")
        if check.get("extra_d_fit_steps"):
            extra.add(check["extra_d_fit_steps"])
        rows.append(
            [r.label]
            + [_count(totals.get(k)) for k, _ in _BUDGET]
            + [
                str(check.get("match", "–")),
                _count(check.get("ratio"), ".3f"),
                "–" if within is None else ("yes" if within else "NO"),
            ]
        )
    if not rows:
        return "Budget table skipped: no budget.json or summary budget."
    return Table(
        "budget",
        "Matched budget",
        ["Run"] + [h for _, h in _BUDGET] + ["match", "ratio", "within"],
        rows,
        note="Totals from budget.json; the check from summary.json's budget_check."
        + (f" Off-policy D runs also train D alone for {'/'.join(map(str, sorted(extra)))} steps (the paper's "
           "two extra D epochs): counted in the totals, not matched on steps." if extra else ""),
    )


def _count(v, fmt: str | None = None) -> str:
    if v is None:
        return "–"
    if fmt:
        return format(v, fmt)
    return f"{v:.3g}" if isinstance(v, float) and (abs(v) >= 1e6 or v != int(v)) else f"{int(v):,}"


def judge_table(suite: Suite, base: Baselines | None) -> Table | str:
    rows, totals = [], {}
    for r in suite.runs:
        u = (r.summary or {}).get("judge_usage")
        if not u:
            continue
        totals = add_usage(totals, u)
        rows.append([r.label] + _usage(u) + [_invalid(r)])
    if not rows:
        return "Judge table skipped: no judge_usage in any summary."
    rows.append(["total"] + _usage(totals) + [""])
    return Table(
        "judge",
        "Judge cost and parse failures",
        [
            "Run",
            "requests",
            "cached",
            "prompt tok",
            "compl. tok",
            "cost USD",
            "parse fail",
            "fail rate",
            "invalid at selected ckpt",
        ],
        rows,
        [len(rows) - 1],
        "fail rate = parse_failures / requests; cost – = no known price for the judge model (a local judge); "
        "invalid = judgments with valid=false in eval/step-K.",
    )


def _usage(u: dict) -> list[str]:
    rate = (u.get("parse_failures") or 0) / u["requests"] if u.get("requests") else None
    return [_count(u.get(k)) for k in ("requests", "cached", "prompt_tokens", "completion_tokens")] + [
        "–" if u.get("cost_usd") is None else f"{u['cost_usd']:.4f}",
        _count(u.get("parse_failures")),
        "–" if rate is None else f"{rate:.1%}",
    ]


def _invalid(r: Run) -> str:
    step = ((r.summary or {}).get("selection") or {}).get("checkpoint")
    judged = [
        j
        for items in r.evals.get(step, {}).values()
        for it in items
        for j in (it.get("judgments") or {}).values()
    ]
    return f"{sum(not j.get('valid', True) for j in judged)}/{len(judged)}" if judged else "–"


def pairwise_table(suite: Suite, base: Baselines | None) -> Table | str:
    rows = []
    for r in suite.runs:
        for d, block in ((r.summary or {}).get("eval") or {}).items():
            for p in outcome_shares(block):
                cells = [Cell(100 * p[k]) for k in ("win", "tie", "loss")]
                rows.append([r.label, dataset_label(d), p["judge"]] + cells + [str(p["n"] or "–")])
    if not rows:
        return "Pairwise table skipped: no judge in any summary gives win / tie / loss shares."
    note = "Percent of items; the student's answer against the teacher's, judged in both orders."
    if suite.is_paper:
        note += (" The paper's Figure 3 is a human evaluation of GAD against other methods, a different comparison, "
                 "so no published values are shown.")
    return Table("pairwise", "Pairwise win / tie / loss", ["Run", "Dataset", "judge", "win %", "tie %", "loss %", "n"],
                 rows, note=note)


def _d_stats(run: Run, step: int | None) -> dict | None:
    """D's validation diagnostics (validation.d) at the selected checkpoint, or at evaluation `step`."""
    block = (run.summary or {}).get("validation") if step is None else run.eval_metrics.get(step, {}).get("validation")
    d = (block or {}).get("d")
    return d if isinstance(d, dict) else None


def _seed_cell(values: list[float]) -> Cell:
    if not values:
        return Cell()
    mean_ = sum(values) / len(values)
    if len(values) == 1:
        return Cell(mean_, digits=3)
    return Cell(mean_, min(values), max(values), None, seeds=len(values), digits=3, kind="range")


def d_table(suite: Suite, base: Baselines | None) -> Table | str:
    """D's held-out accuracy and AUC (validation split) and the largest identical-text gap, per method."""
    grid, blocks = [], []
    rows = _rows(suite, lambda r: r.summary is not None)
    for student, identity, runs in rows:
        sel = [d for r in runs if (d := _d_stats(r, None))]
        last = [d for r in runs if r.eval_metrics and (d := _d_stats(r, max(r.eval_metrics)))]
        if not sel and not last:
            continue
        if not grid or grid[-1][0] and grid[-1][0] != student_label(student):
            blocks.append(len(grid))
        gaps = [d["identical_gap_max"] for d in sel + last if isinstance(d.get("identical_gap_max"), int | float)]
        grid.append([student_label(student), identity.label + (f" ({len(runs)} seeds)" if len(runs) > 1 else ""),
                     _seed_cell([d["accuracy"]["mean"] for d in sel if (d.get("accuracy") or {}).get("mean") is not None]),
                     _seed_cell([d["auc"] for d in sel if isinstance(d.get("auc"), int | float)]),
                     _seed_cell([d["accuracy"]["mean"] for d in last if (d.get("accuracy") or {}).get("mean") is not None]),
                     _seed_cell([d["auc"] for d in last if isinstance(d.get("auc"), int | float)]),
                     f"{max(gaps):.1e}" if gaps else "–"])
    if not grid:
        return "Discriminator table skipped: no run stores D's validation diagnostics (validation.d)."
    return Table("discriminator", "Discriminator diagnostics (validation split)",
                 ["Student", "Method", "D acc (selected)", "AUC (selected)", "D acc (last)", "AUC (last)",
                  "max identical gap"], grid, blocks,
                 "D scores held-out teacher responses against the current student's samples: accuracy = pairs with "
                 "the teacher ahead; AUC over all teacher x student scores (0.5: D cannot tell them apart). The "
                 "identical gap is the largest |D(y) - D(y)| for a teacher text sent through both sides: it must be "
                 "~0. Several seeds: mean [range over seeds].")


def search_table(suite: Suite, base: Baselines | None) -> Table | str:
    """Every searched point of every (student, method), its validation score over seeds, and the one kept."""
    metric = selection_metric(suite.runs)
    chosen = chosen_points(suite)
    grid, blocks = [], []
    for (student, method), by_point in points(suite).items():
        if len(by_point) < 2:
            continue
        blocks.append(len(grid))
        for label, runs in by_point.items():
            scores = [s for r in runs if metric and (s := validation_score(r, metric)) is not None]
            cell = _seed_cell(scores)
            grid.append([student_label(student), method, label.strip(), cell, str(len(runs)),
                         "kept" if chosen.get((student, method)) == label else ""])
    if not grid:
        return "Search table skipped: no method has a hyperparameter search (method.search)."
    return Table("search", "Hyperparameter search (kept on the validation split)",
                 ["Student", "Method", "Setting", f"validation {metric}", "seeds", ""], grid, blocks,
                 f"Each method's settings are compared by the mean over seeds of the validation {metric} at each run's "
                 "selected checkpoint [range over seeds]; the kept one is used in every other table. The test sets "
                 "play no part in the choice.")


def budget_curve(suite: Suite) -> list[dict]:
    """GAD-family methods - SeqKD at every evaluation step both have: at each step every method keeps its
    search point with the best validation score at that step; the difference of each test set's primary metric
    (and an exact judge's `findings` metrics, gadbench.report.cells.finding_metrics) is paired by (seed, prompt). Rows: {method, step, dataset, metric, diff, ci_low, ci_high, n_seeds,
    n_items, settings}."""
    students = {r.student for r in suite.runs if r.family == "seqkd"}
    steps = sorted({k for r in suite.runs if r.family == "seqkd" for k in r.evals if k > 0})
    out = []
    for student in sorted(students):
        for k in steps:
            chosen = chosen_points(suite, step=k)
            runs = [r for r in suite.runs if r.student == student and k in r.evals
                    and chosen.get((r.student, r.base_method), r.search_label) == r.search_label]
            seqkd = [r for r in runs if r.identity.key == "seqkd"]
            for method in dict.fromkeys(r.base_method for r in runs if r.family == "gad" and r.identity.group in
                                        (None, "discriminator size", "frozen discriminator")):
                gad = [r for r in runs if r.base_method == method]
                for d, metric in [(label, m) for label in datasets(suite) for m in finding_metrics(suite, label)]:
                    a = {r.seed: v for r in gad if (v := item_values(r, d, metric, step=k))}
                    b = {r.seed: v for r in seqkd if (v := item_values(r, d, metric, step=k))}
                    if not a or not b:
                        continue
                    try:
                        diff = paired_seeds_and_items(a, b, resamples(suite.runs, suite.meta))
                    except ValueError:
                        continue
                    settings = {m: chosen.get((student, m), "") for m in (method, "seqkd")}
                    out.append({"student": student, "method": method, "step": k, "dataset": d, "metric": metric,
                                **diff, "settings": settings})
    return out


def budget_curve_table(suite: Suite, base: Baselines | None) -> Table | str:
    rows = budget_curve(suite)
    sets = list(dict.fromkeys((r["dataset"], r["metric"]) for r in rows))
    if len({r["step"] for r in rows}) < 3:
        return "Budget table skipped: it needs GAD and SeqKD evaluated at 3 or more common steps."
    grid, blocks, by = [], [], {}
    for r in rows:
        by.setdefault((r["student"], r["method"], r["step"]), {})[(r["dataset"], r["metric"])] = r
    for (student, method, step), per_set in by.items():
        if not grid or grid[-1][1] != method:
            blocks.append(len(grid))
        cells = [Cell(x["diff"], x["ci_low"], x["ci_high"], x["n_items"], seeds=x["n_seeds"], digits=3)
                 if (x := per_set.get(d)) else Cell() for d in sets]
        any_row = next(iter(per_set.values()))
        grid.append([student_label(student), method, str(step), *cells,
                     " / ".join(f"{m}{s}" for m, s in any_row["settings"].items() if s)])
    one = len({m for _, m in sets}) == 1
    header = [d if one else f"{d}: {m}" for d, m in sets]
    metric = ", ".join(dict.fromkeys(m for _, m in sets))
    return Table("budget-curve", f"GAD - SeqKD by training budget ({metric})",
                 ["Student", "Method", "steps"] + header + ["settings kept"], grid, blocks,
                 "The difference at each evaluation step, each method's search setting chosen on the validation split "
                 "at that step; 95% interval over seeds, then prompts, paired. A GAD-family run's first steps are its "
                 "warmup.")
