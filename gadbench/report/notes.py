"""The 'Departures from the paper' section: departures, checkpoint selection, warnings, budget-check failures."""

from __future__ import annotations

from dataclasses import dataclass, field

from gadbench.report.load import Suite

_RULES = {
    "paper": "chosen on the test sets, as in the paper (optimistic for every method)",
    "validation": "checkpoint chosen on a validation split, not on the test sets as in the paper",
    "last": "the last checkpoint (the paper chose the best on the test sets)",
    "initial": "the student before distillation",
}


@dataclass
class Notes:
    departures: dict[str, list[str]] = field(default_factory=dict)  # text -> run labels
    selection: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    budget: list[str] = field(default_factory=list)
    data: dict[str, list[str]] = field(default_factory=dict)  # what a data load kept and skipped -> run labels


def collect(suite: Suite) -> Notes:
    """Group identical texts across runs so that a suite of many seeds stays readable."""
    notes = Notes()
    for r in suite.runs:
        s = r.summary
        if s is None:
            notes.warnings.append(
                f"{r.run_id}: no summary.json yet (run unfinished?); only its curves are shown."
            )
            continue
        for d in s.get("departures") or []:
            notes.departures.setdefault(str(d), []).append(r.label)
        sel = s.get("selection") or {}
        rule = str(sel.get("rule", "unknown"))
        text = f"rule `{rule}`: {_RULES.get(rule, 'unknown rule')}"
        detail = f" ({sel['note']})" if sel.get("note") else ""
        notes.selection.setdefault(text, []).append(f"{r.label} @ step {sel.get('checkpoint', '?')}{detail}")
        notes.warnings += [f"{r.label}: {w}" for w in s.get("warnings") or []]
        for load in s.get("data") or []:
            notes.data.setdefault(_load_line(load), []).append(r.label)
        for line in _overlap_lines(s.get("data_overlap")):
            notes.data.setdefault(line, []).append(r.label)
        check = s.get("budget_check") or {}
        if check.get("within") is False:
            notes.budget.append(
                f"{r.label}: budget ratio {check.get('ratio')} outside tolerance "
                f"{check.get('tolerance')} (matched on {check.get('match')})"
            )
    check = suite.meta.get("budget_check")
    if isinstance(check, dict) and check.get("within") is False:
        notes.budget.append(
            f"suite {suite.name}: matched-budget check failed: "
            + ", ".join(f"{k}={v}" for k, v in check.items() if k != "within")
        )
    notes.warnings += [f"{rid}: listed in suite.json but has no directory." for rid in suite.missing]
    return notes


def _overlap_lines(found) -> list[str]:
    """The eval sets' overlap with the training prompts (summary.json `data_overlap`), one line per set that has
    any, or one line saying none has; nothing for summaries written before the check."""
    if not isinstance(found, dict) or not found:
        return []
    hits = {k: v for k, v in found.items() if isinstance(v, dict) and v.get("overlap")}
    if not hits:
        return ["eval sets checked against the training prompts (normalised text, and ids in the same data): "
                "no overlap"]
    return [f"eval set `{k}`: {v['overlap']} of {v.get('n', '?')} prompts are also training prompts (e.g. ids "
            f"{', '.join(map(str, v.get('ids') or []))}), allowed by data.allow_overlap" for k, v in hits.items()]


def _load_line(load: dict) -> str:
    """One data load as a sentence: what it kept of what it read, and what it skipped, by reason."""
    skipped = ", ".join(f"{k} {v}" for k, v in sorted((load.get("skipped") or {}).items())) or "nothing"
    first = f"; {load['first_turn_only']} multi-turn rows reduced to their first turn" if load.get(
        "first_turn_only") else ""
    return (f"{load.get('source', '?')} ({load.get('path', '?')}): kept {load.get('kept', '?')} of "
            f"{load.get('total', '?')} rows; skipped: {skipped}{first}")
