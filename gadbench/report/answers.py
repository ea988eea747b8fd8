"""The answer browser of report.html: for a sample of prompts of each eval set, the prompt, the teacher's answer
and each method's answer with its judge scores, read from the stored eval/step-K/<set>.jsonl at each run's
selected checkpoint (the lowest seed of each method), filterable by method and set with a few lines of inline
JavaScript (no external assets: the report stays self-contained).

The sample is PROMPTS_PER_SET prompts spread evenly over the set's rows in their stored order, the same for
every method.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from gadbench.judge.records import JUDGES
from gadbench.report.cells import datasets, selected_rows
from gadbench.report.load import Run, Suite
from gadbench.report.naming import method_order, student_label

PROMPTS_PER_SET = 8


@dataclass
class Answer:
    method: str
    text: str
    scores: str  # "judge: metric value, ...; judge: ..."


@dataclass
class Prompt:
    dataset: str
    id: str
    prompt: str
    teacher: str | None
    answers: list[Answer]


def _methods(suite: Suite) -> list[tuple[str, Run]]:
    """(label, the lowest seed's run) of every method row but the teacher, in table order."""
    rows: dict[tuple, list[Run]] = {}
    for r in suite.runs:
        if r.summary is not None and r.family != "teacher":
            rows.setdefault(r.row_key, []).append(r)
    several = len({r.student for r in suite.runs if r.family != "teacher"}) > 1
    ordered = sorted(rows.values(), key=lambda rs: (rs[0].student, rs[0].identity.group is not None,
                                                     method_order(rs[0].family, rs[0].identity.key)))
    out = []
    for runs in ordered:
        r = min(runs, key=lambda x: x.seed)
        label = f"{r.identity.label}{r.search_label}"
        out.append((f"{student_label(r.student)} {label}" if several else label, r))
    return out


def scores_text(judgments: dict) -> str:
    """Each judge's declared metrics (families such as style_share/* left out) and its text fields (the world's
    answer style), as one line; an invalid judgment says so."""
    parts = []
    for judge, j in sorted((judgments or {}).items()):
        if not isinstance(j, dict):
            continue
        if j.get("valid") is False:
            parts.append(f"{judge}: invalid")
            continue
        record = JUDGES.get(judge)
        keys = [k for k in (record.metrics if record else ["score"]) if not k.endswith("/*")]
        shown = [f"{k} {j[k]:.3g}" for k in keys if isinstance(j.get(k), int | float)]
        shown += [f"{k} {v}" for k, v in j.items() if isinstance(v, str)]
        if shown:
            parts.append(f"{judge}: {', '.join(shown)}")
    return "; ".join(parts)


def sample(suite: Suite, per_set: int = PROMPTS_PER_SET) -> list[Prompt]:
    methods = _methods(suite)
    out = []
    for label in datasets(suite):
        rows = {name: {str(it.get("id")): it for it in selected_rows(run, label)} for name, run in methods}
        first = next((r for r in rows.values() if r), None)
        if not first:
            continue
        ids = list(first)
        picked = [ids[i * len(ids) // min(per_set, len(ids))] for i in range(min(per_set, len(ids)))]
        for pid in picked:
            item = first[pid]
            answers = [Answer(name, str(rows[name][pid].get("answer", "")),
                              scores_text(rows[name][pid].get("judgments") or {}))
                       for name, _ in methods if pid in rows[name]]
            out.append(Prompt(label, pid, str(item.get("prompt", "")), item.get("teacher_response"), answers))
    return out


_JS = """<script>
function filterAnswers(){
  const set = document.getElementById('ans-set').value, method = document.getElementById('ans-method').value;
  document.querySelectorAll('div.answers .prompt').forEach(p => {
    p.hidden = set !== '' && p.dataset.set !== set;
    p.querySelectorAll('.answer').forEach(a => { a.hidden = method !== '' && a.dataset.method !== method; });
  });
}
</script>"""


def answers_html(prompts: list[Prompt]) -> str:
    """The section: two filters, then one folded block per prompt."""
    if not prompts:
        return "<p class='skipped'>Answer browser skipped: no stored eval rows at the selected checkpoints.</p>"
    e = html.escape
    sets = list(dict.fromkeys(p.dataset for p in prompts))
    methods = list(dict.fromkeys(a.method for p in prompts for a in p.answers))

    def select(name: str, what: str, values: list[str]) -> str:
        options = "".join(f"<option value='{e(v, quote=True)}'>{e(v)}</option>" for v in values)
        return (f"<label>{what} <select id='ans-{name}' onchange='filterAnswers()'><option value=''>all</option>"
                f"{options}</select></label>")

    out = [f"<p class='note'>{len(prompts)} prompts ({', '.join(sets)}), {PROMPTS_PER_SET} per set spread evenly "
           "over the stored rows; each method's answer at its selected checkpoint (lowest seed), with its judge "
           f"scores.</p><p class='filters'>{select('set', 'Set', sets)} {select('method', 'Method', methods)}</p>"]
    for p in prompts:
        answers = "".join(
            f"<div class='answer' data-method='{e(a.method, quote=True)}'><b>{e(a.method)}</b>"
            f"<span class='scores'>{e(a.scores)}</span><pre>{e(a.text)}</pre></div>" for a in p.answers)
        teacher = (f"<div class='answer teacher'><b>Teacher</b><pre>{e(p.teacher)}</pre></div>"
                   if p.teacher is not None else "")
        out.append(f"<details class='prompt' data-set='{e(p.dataset, quote=True)}'><summary><span class='set'>"
                   f"{e(p.dataset)}</span> {e(_short(p.prompt))}</summary><pre class='asked'>{e(p.prompt)}</pre>"
                   f"{teacher}{answers}</details>")
    return "<div class='answers'>" + "\n".join(out) + "</div>" + _JS


def _short(text: str, limit: int = 110) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
