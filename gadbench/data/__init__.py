"""Dataset loaders: every source becomes a list of `Example(prompt, teacher_response, meta)` plus a
`LoadReport`; see docs/data.md for the sources, their formats and the bad-row policy."""

from gadbench.data import dolly, fastchat, lmsys, local, selfinst, sharegpt, world  # noqa: F401  (register sources)
from gadbench.data.base import (
    SOURCES,
    DataError,
    DataSpec,
    Example,
    LoadReport,
    list_sources,
    load_examples,
    register_source,
)

__all__ = [
    "SOURCES",
    "DataError",
    "DataSpec",
    "Example",
    "LoadReport",
    "list_sources",
    "load_examples",
    "register_source",
]
