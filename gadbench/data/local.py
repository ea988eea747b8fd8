"""Sources `jsonl` and `parquet`: any local file (.jsonl, .json array or .parquet, by extension) with
a field mapping `DataSpec.fields`: `prompt` (default "prompt"), optional `response` (default
"response"; a missing column means no teacher response) and optional `id` (default "id")."""

from __future__ import annotations

from collections.abc import Iterator

from gadbench.data.base import DataError, DataSpec, Row, register_source
from gadbench.data.files import rows_from_file


def _loader(spec: DataSpec) -> tuple[str, Iterator[Row]]:
    if not spec.path:
        raise DataError(
            f"source {spec.source!r} reads a local file; set path to a .jsonl, .json or .parquet file."
        )
    prompt_key = spec.fields.get("prompt", "prompt")
    response_key = spec.fields.get("response", "response")
    id_key = spec.fields.get("id", "id")

    def row(number: int, record: dict) -> Row:
        if prompt_key not in record:
            return Row(
                number,
                problem="missing_fields",
                detail=f" ({prompt_key!r}; map another column with fields={{'prompt': ...}})",
            )
        meta = {"id": record[id_key]} if record.get(id_key) is not None else {}
        return Row(number, record[prompt_key], record.get(response_key), meta)

    return str(spec.path), rows_from_file(spec.path, row)


register_source("jsonl")(_loader)
register_source("parquet")(_loader)
