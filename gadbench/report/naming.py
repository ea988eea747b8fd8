"""Display names and orders: the paper's dataset names, student names, and the order of method families in tables."""

from __future__ import annotations

import re

PAPER_DATASETS = ("LMSYS", "Dolly", "SelfInst", "Vicuna")
OOD = ("Dolly", "SelfInst", "Vicuna")
OTHERS = "Others"
_DATASET_ALIASES = {
    "lmsys": "LMSYS",
    "lmsyschat": "LMSYS",
    "lmsyschat1m": "LMSYS",
    "lmsyschat1mclean": "LMSYS",
    "dolly": "Dolly",
    "selfinst": "SelfInst",
    "selfinstruct": "SelfInst",
    "vicuna": "Vicuna",
}
_METHOD_ORDER = ("teacher", "before", "seqkd", "gad")  # families in table order; others after them


def dataset_label(name: str) -> str:
    """The paper's name for a dataset (`self-inst` -> `SelfInst`); other names are kept as they are."""
    return _DATASET_ALIASES.get(re.sub(r"[^a-z0-9]", "", name.lower()), name)


def dataset_order(label: str) -> tuple:
    return (PAPER_DATASETS.index(label), "") if label in PAPER_DATASETS else (len(PAPER_DATASETS), label)


def student_label(name: str) -> str:
    """`Qwen/Qwen2.5-7B-Instruct` -> `Qwen2.5-7B-Instruct`."""
    return str(name).rstrip("/").split("/")[-1]


def same_model(a: str, b: str) -> bool:
    return student_label(a).lower() == student_label(b).lower()


def method_order(family: str, key: str) -> tuple:
    """Teacher, before, SeqKD, GAD, then other families; within a family the plain method first."""
    rank = _METHOD_ORDER.index(family) if family in _METHOD_ORDER else len(_METHOD_ORDER)
    return (rank, family, key != family, key)
