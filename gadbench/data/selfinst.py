"""Source `selfinst`: the 252 user-oriented Self-Instruct tasks (JSONL rows `id`, `motivation_app`,
`instruction`, `instances: [{input, output}]`), or MiniLLM/self-inst's files (see `instruct.minillm_row`).

prompt = instruction, plus "\n\n" + the first instance's input when it is non-empty;
teacher_response = that instance's reference `output`. Local files only (path or $GADBENCH_DATA_DIR).
"""

from __future__ import annotations

from collections.abc import Iterator

from gadbench.data.base import DataSpec, Row, register_source
from gadbench.data.hub import open_source
from gadbench.data.instruct import join_input, minillm_row

FILENAMES = ["selfinst_user_oriented_252.jsonl", "user_oriented_instructions.jsonl"]


def _row(number: int, record: dict) -> Row:
    if "instances" not in record:
        if "prompt" in record or "output" in record:
            return minillm_row(number, record)
        return Row(number, problem="missing_fields", detail=" ('instruction' and 'instances')")
    instances = record["instances"]
    if not isinstance(instances, list) or not instances or not isinstance(instances[0], dict):
        return Row(
            number, problem="missing_fields", detail=" ('instances' must hold at least one {input, output})"
        )
    first = instances[0]
    meta = {k: record[k] for k in ("id", "motivation_app") if k in record}
    meta.update(input=first.get("input") or "", instances=len(instances))
    return Row(number, join_input(record.get("instruction"), first.get("input")), first.get("output"), meta)


@register_source("selfinst", size=252)
def load(spec: DataSpec) -> tuple[str, Iterator[Row]]:
    return open_source(spec, FILENAMES, None, spec.split or "test", _row)
