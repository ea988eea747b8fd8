"""`gadbench teacher collect`: answer every prompt of a data file (or a named dataset of gadbench.data, e.g.
`--data mtbench`, `--data sharegpt:test`) with a teacher and write the pairs as JSONL.

API teachers go through a crash-safe cache next to the output (`<out>.cache.sqlite`), so an interrupted or
failed collection is resumed by running the same command again: no answered prompt is asked twice. The
output is written atomically once every prompt has an answer; each row is
{"prompt", "teacher_response", "meta"} where meta keeps the input row's other fields and the teacher spec.
"""

from __future__ import annotations

import json
from pathlib import Path

from gadbench.config import TeacherConfig
from gadbench.io import atomic_write_text, file_problem
from gadbench.teachers.base import Teacher, teacher_from


def read_prompts(data: str, prompt_field: str = "prompt", limit: int | None = None) -> list[dict]:
    """The rows of a JSONL file, each with a non-empty string under `prompt_field`; or, when `data` is no file
    but names a source of gadbench.data (`NAME` or `NAME:SPLIT`, e.g. `mtbench`, `sharegpt:test`), its examples
    as rows {prompt_field: prompt, "teacher_response": the data's response or None, "meta": ...}."""
    path = Path(data)
    if not path.is_file():
        rows = _dataset_rows(data, prompt_field, limit)
        if rows is not None:
            return rows
        raise ValueError(f"there is no data file {data}; pass a JSONL file with one {{\"{prompt_field}\": ...}} "
                         f"object per line, or a dataset name ({', '.join(_source_names())}).")
    rows = _jsonl_rows(path, limit)
    if not rows:
        raise ValueError(f"{data} has no rows; pass a JSONL file with one {{\"{prompt_field}\": ...}} object per line.")
    for i, row in enumerate(rows):
        if not isinstance(row.get(prompt_field), str) or not row[prompt_field]:
            raise ValueError(f"row {i + 1} of {data} has no non-empty string field {prompt_field!r}; pass "
                             f"--prompt-field with the name of the field that holds the prompt.")
    return rows


def _jsonl_rows(path: Path, limit: int | None) -> list[dict]:
    """The first `limit` rows of JSONL file `path`, each a JSON object; any other line (not UTF-8, not JSON, not
    an object) stops with a ValueError naming the file and the row. Blank lines are passed over."""
    rows = []
    for n, line in enumerate(path.read_bytes().split(b"\n"), 1):
        if limit is not None and len(rows) >= limit:
            break
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ValueError(f"row {n} of {path} is not UTF-8 text (byte 0x{line[e.start]:02x} at column "
                             f"{e.start + 1}); save the file as UTF-8.") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"row {n} of {path} is not valid JSON ({e.msg} at column {e.colno}); fix or remove "
                             "that row.") from None
        if not isinstance(row, dict):
            raise ValueError(f"row {n} of {path} is a JSON {type(row).__name__}, not an object; write each row as "
                             "{\"prompt\": ...}.")
        rows.append(row)
    return rows


def _source_names() -> list[str]:
    from gadbench.data import list_sources

    return list_sources()


def _dataset_rows(data: str, prompt_field: str, limit: int | None) -> list[dict] | None:
    """Rows of the named data source, or None when `data` names none."""
    name, _, split = data.partition(":")
    if name not in _source_names():
        return None
    from gadbench.data import DataSpec, load_examples

    examples, report = load_examples(DataSpec(source=name, split=split or None, limit=limit))
    if not examples:
        raise ValueError(f"the dataset {data} gave no usable prompts ({report.summary()}).")
    return [{prompt_field: ex.prompt, "teacher_response": ex.teacher_response, "meta": ex.meta} for ex in examples]


def cache_path_for(out: str | Path) -> Path:
    return Path(f"{out}.cache.sqlite")


def collect(teacher: str, data: str, out: str | Path, *, concurrency: int = 8, prompt_field: str = "prompt",
            teacher_opts: dict | None = None, limit: int | None = None):
    """Collect and write `out`; returns the teacher (its `usage`, for API teachers, says what was spent).

    `teacher_opts` go to the teacher's constructor (e.g. temperature, max_tokens, max_retries) over the defaults.
    """
    t, rows = prepare(teacher, data, out, concurrency=concurrency, prompt_field=prompt_field,
                      teacher_opts=teacher_opts, limit=limit)
    answer(t, rows, teacher, out, prompt_field)
    return t


def prepare(teacher: str, data: str, out: str | Path, *, concurrency: int = 8, prompt_field: str = "prompt",
            teacher_opts: dict | None = None, limit: int | None = None) -> tuple[Teacher, list[dict]]:
    """Everything that can be checked before a teacher is asked: `out` can be written, the data is read, the
    teacher is built. Returns (teacher, rows)."""
    if problem := file_problem(out):
        raise ValueError(f"--out {out}: {problem}; pass a file path in a folder you can write to.")
    rows = read_prompts(data, prompt_field, limit)
    backend = teacher.partition(":")[0]
    given = teacher_opts or {}
    if backend == "dataset":  # its answers are the data's own
        given = {"examples": [{"prompt": r[prompt_field], "teacher_response": r.get("teacher_response")}
                              for r in rows]} | given
    try:
        t = teacher_from(TeacherConfig(spec=teacher, concurrency=concurrency), cache_path_for(out), **given)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        raise ValueError(f"the {backend} teacher does not take an option given here ({exc}); remove it.") from None
    return t, rows


def answer(t: Teacher, rows: list[dict], teacher: str, out: str | Path, prompt_field: str = "prompt") -> None:
    """Ask teacher `t` (spec `teacher`) to answer every row and write `out` atomically."""
    responses = t.respond([r[prompt_field] for r in rows])
    lines = []
    for row, response in zip(rows, responses, strict=True):
        given = row.get("meta")
        meta = {**(given if isinstance(given, dict) else {} if given is None else {"meta": given}),
                **{k: v for k, v in row.items() if k not in (prompt_field, "teacher_response", "meta")},
                "teacher": teacher}
        record = {"prompt": row[prompt_field], "teacher_response": response, "meta": meta}
        lines.append(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
    atomic_write_text(out, "".join(lines))
