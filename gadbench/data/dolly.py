"""Source `dolly`: databricks-dolly-15k JSONL (`instruction`, `context`, `response`, `category`) or
MiniLLM/dolly's files (see `instruct.minillm_row`).

prompt = instruction, plus "\n\n" + context when the context is non-empty; the context is also kept in
meta so that a template may place it under "### Input:" instead. teacher_response = the human-written
`response`. Without a local file the hub copy databricks/databricks-dolly-15k (train) is used.
"""

from __future__ import annotations

from collections.abc import Iterator

from gadbench.data.base import DataSpec, Row, register_source
from gadbench.data.hub import open_source
from gadbench.data.instruct import join_input, minillm_row

HUB_ID = "databricks/databricks-dolly-15k"
FILENAME = "databricks-dolly-15k.jsonl"


def _row(number: int, record: dict) -> Row:
    if "instruction" not in record or "context" not in record:
        if "prompt" in record or "output" in record:
            return minillm_row(number, record)
        return Row(number, problem="missing_fields", detail=" ('instruction' and 'context')")
    meta = {"category": record.get("category"), "context": record["context"] or ""}
    return Row(number, join_input(record["instruction"], record["context"]), record.get("response"), meta)


@register_source("dolly", size=500)
def load(spec: DataSpec) -> tuple[str, Iterator[Row]]:
    return open_source(spec, [FILENAME], HUB_ID, spec.split or "train", _row)
