"""Read local dataset files as numbered records and turn them into `Row`s.

Row numbers are 1-based: the physical line for .jsonl (blank lines are not rows), the array position
for .json, the table position for .parquet. Text is UTF-8; a byte-order mark is dropped. A JSONL line
that is not UTF-8 or does not parse, and a non-object record, become a `Row` with a problem, so the bad-row
policy sees it (`gadbench.io.read_jsonl` is meant for logs: it drops a torn last line silently and carries
no row numbers, so it does not fit here). A whole file that cannot be read stops with a DataError.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gadbench.data.base import DataError, Row

Convert = Callable[[int, dict], Row]
BOM = "\ufeff"


@dataclass(frozen=True)
class Unreadable:
    """A record that could not be decoded: its `REASONS` key and the specifics for the error line."""

    problem: str
    detail: str = ""


def rows_from_file(path: str | Path, convert: Convert) -> Iterator[Row]:
    """Yield `convert(number, record)` for each object record of `path`, a problem `Row` otherwise."""
    return rows_from_records(_records(Path(path)), convert)


def rows_from_records(records: Iterable[tuple[int, Any]], convert: Convert) -> Iterator[Row]:
    for number, record in records:
        if isinstance(record, Unreadable):
            yield Row(number, problem=record.problem, detail=record.detail)
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
    # undecodable bytes become lone surrogates (surrogateescape), so one bad line does not stop the file
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for number, line in enumerate(f, start=1):
            line = line.removeprefix(BOM)  # the file's, or one left inside by concatenating files
            if line.strip():
                yield number, parse_line(line)


def parse_line(line: str) -> Any:
    """One JSONL line, decoded with errors="surrogateescape": its JSON value, or why it has none."""
    try:
        line.encode("utf-8")
    except UnicodeEncodeError as e:
        byte = ord(line[e.start]) - 0xDC00
        return Unreadable("not_utf8", f" (byte 0x{byte:02x} at column {e.start + 1})")
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        return Unreadable("invalid_json", f" ({e.msg} at column {e.colno})")
    except ValueError:  # Python's limit on integer digits
        return Unreadable("invalid_json", " (a number has more than 4300 digits)")
    except RecursionError:
        return Unreadable("invalid_json", " (nested too deeply)")


def read_text(path: Path) -> str:
    """The UTF-8 text of `path` (a byte-order mark dropped); a byte that is not UTF-8 stops with a DataError
    naming the file and the line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8").removeprefix(BOM)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path}: byte 0x{data[e.start]:02x} at line {line} is not UTF-8 text; save the file as "
                        "UTF-8 or repair that line.") from None


def _json_array(path: Path) -> Iterator[tuple[int, Any]]:
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(
            f"{path}: not valid JSON ({e.msg} at line {e.lineno}); repair the file or convert it to JSONL."
        ) from None
    except (ValueError, RecursionError):  # an integer of over 4300 digits, or nesting too deep
        raise DataError(f"{path}: the JSON holds a number too long or nesting too deep to read; repair the "
                        "file or convert it to JSONL.") from None
    if not isinstance(data, list):
        raise DataError(
            f"{path}: the top level is not a JSON array; store one record per array element or per JSONL line."
        )
    return enumerate(data, start=1)


def _parquet(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path}: reading parquet needs pyarrow; run `pip install gadbench[data]`.") from None
    return enumerate(_parquet_records(path, pa, pq), start=1)


def _parquet_records(path: Path, pa, pq) -> Iterator[dict]:
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            yield from batch.to_pylist()
    except (pa.ArrowException, OSError, UnicodeDecodeError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: not a readable Parquet file ({reason}); rewrite it, e.g. with "
                        "pandas.DataFrame.to_parquet, or convert it to JSONL.") from None
