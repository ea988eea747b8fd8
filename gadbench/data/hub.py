"""Find a source's data: the spec's local path, else a known file name in `$GADBENCH_DATA_DIR`, else
the Hugging Face Hub through `datasets` (only when it is installed and the network answers)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from gadbench.data.base import DataError, DataSpec, Row
from gadbench.data.files import Convert, check_file, rows_from_file, rows_from_records

DATA_DIR_ENV = "GADBENCH_DATA_DIR"


def local_file(spec: DataSpec, names: Sequence[str]) -> Path | None:
    """The spec's path if set (it must exist), else the first of `names` in $GADBENCH_DATA_DIR, else None."""
    if spec.path:
        return check_file(spec.path)
    data_dir = os.environ.get(DATA_DIR_ENV)
    if data_dir:
        for name in names:
            candidate = Path(data_dir).expanduser() / name
            if candidate.is_file():
                return candidate
    return None


def open_source(
    spec: DataSpec, names: Sequence[str], hub_id: str | None, split: str, convert: Convert
) -> tuple[str, Iterator[Row]]:
    """Rows of the local file if there is one, else of `hub_id`'s `split`; with neither, one line on how to provide the data."""
    path = local_file(spec, names)
    if path is not None:
        return str(path), rows_from_file(path, convert)
    hub_id = spec.hub_id or hub_id
    how = f"set path to a local copy of it, or put {names[0]} in ${DATA_DIR_ENV}"
    if hub_id is None:
        raise DataError(f"data source {spec.source!r} has no local file; {how}.")
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"data source {spec.source!r} needs {hub_id} from the Hugging Face Hub; {how}, "
            "or run `pip install gadbench[data]` on a machine with network."
        ) from None
    try:
        dataset = datasets.load_dataset(hub_id, split=split)
    except Exception as e:  # offline, unknown split, gated repo: all end the same way for the user
        raise DataError(
            f"could not load {hub_id} (split {split!r}) from the Hugging Face Hub ({type(e).__name__}); "
            f"{how}, or connect to the network."
        ) from None
    return f"hf:{hub_id}:{split}", rows_from_records(enumerate(dataset, start=1), convert)
