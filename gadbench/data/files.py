"""Read local dataset files as numbered records and turn them into `Row`s.

Row numbers are 1-based: the physical line for .jsonl (blank lines are not rows), the array position
for .json, the table position for .parquet. An unparsable JSONL line or a non-object record becomes a
`Row` with a problem, so the bad-row policy sees it (`gadbench.io.read_jsonl` is meant for logs: it
drops a torn last line silently and carries no row numbers, so it does not fit here).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from gadbench.data.base import DataError, Row

Convert = Callable[[int, dict], Row]
_INVALID = object()


def rows_from_file(path: str | Path, convert: Convert) -> Iterator[Row]:
    """Yield `convert(number, record)` for each object record of `path`, a problem `Row` otherwise."""
    return rows_from_records(_records(Path(path)), convert)


def rows_from_records(records: Iterable[tuple[int, Any]], convert: Convert) -> Iterator[Row]:
    for number, record in records:
        if record is _INVALID:
            yield Row(number, problem="invalid_json")
        elif not isinstance(record, dict):
            yield Row(number, problem="not_an_object")
        else:
            yield convert(number, record)


def check_file(path: str | Path) -> Path:
    """Return `path` as a Path if it is an existing file, else stop with a DataError."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise DataError(f"data path {p} is a directory; pass the file inside it.")
    if not p.is_file():
        raise DataError(
            f"data file {p} does not exist; check the path (or unset it to use the source's default)."
        )
    return p


def _records(path: Path) -> Iterator[tuple[int, Any]]:
    path = check_file(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _jsonl(path)
    if suffix == ".json":
        return _json_array(path)
    if suffix == ".parquet":
        return _parquet(path)
    raise DataError(
        f"{path}: unsupported file type {suffix or '(none)'}; use a .jsonl, .json or .parquet file."
    )


def _jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError:
                yield number, _INVALID


def _json_array(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(
            f"{path}: not valid JSON ({e.msg} at line {e.lineno}); repair the file or convert it to JSONL."
        ) from None
    if not isinstance(data, list):
        raise DataError(
            f"{path}: the top level is not a JSON array; store one record per array element or per JSONL line."
        )
    return enumerate(data, start=1)


def _parquet(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path}: reading parquet needs pyarrow; run `pip install gadbench[data]`.") from None
    number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for record in batch.to_pylist():
            number += 1
            yield number, record
