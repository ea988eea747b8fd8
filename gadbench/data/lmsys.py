"""LMSYS-Chat sources.

`lmsys-gad`: the GAD release ytz20/LMSYS-Chat-GPT-5-Chat-Response (train/test), or its export
lmsys_gpt5_chat_filtered_{split}.parquet. `content` is the prompt (a string, or a list of chat
messages in copies prepared for verl: then the first user message), `teacher_response` the GPT-5-Chat
reply; `id`, `category`, `grounded` go to meta when present.

`lmsys-chat-1m-clean`: OpenLeecher/lmsys_chat_1m_clean (train only). prompt = first user turn of
`conversations` (ShareGPT turns) or `conversation` (role/content turns, as in LMSYS-Chat-1M). It is a
prompt source: the logged replies come from arena models, not from a teacher, so teacher_response is None.
"""

from __future__ import annotations

from collections.abc import Iterator

from gadbench.data.base import DataSpec, Row, register_source
from gadbench.data.conversation import first_exchange
from gadbench.data.hub import open_source

GAD_HUB = "ytz20/LMSYS-Chat-GPT-5-Chat-Response"
CLEAN_HUB = "OpenLeecher/lmsys_chat_1m_clean"
_META = ("id", "category", "subcategory", "grounded", "language")


def _meta(record: dict) -> dict:
    meta = {k: record[k] for k in _META if record.get(k) is not None}
    if "id" not in meta and record.get("conversation_id") is not None:  # LMSYS-Chat-1M's own id column
        meta["id"] = record["conversation_id"]
    return meta


def _gad_row(number: int, record: dict) -> Row:
    if "content" not in record:
        return Row(number, problem="missing_fields", detail=" ('content')")
    content, response = record["content"], record.get("teacher_response")
    if isinstance(content, list):
        row = first_exchange(number, content, _meta(record))
        row.response = response
        return row
    return Row(number, content, response, _meta(record))


def _clean_row(number: int, record: dict) -> Row:
    turns = record.get("conversations", record.get("conversation"))
    if turns is None:
        return Row(number, problem="missing_fields", detail=" ('conversations' or 'conversation')")
    row = first_exchange(number, turns, _meta(record))
    row.response = None
    return row


@register_source("lmsys-gad", size=500)
def load_gad(spec: DataSpec) -> tuple[str, Iterator[Row]]:
    split = spec.split or "train"
    names = [f"lmsys_gpt5_chat_filtered_{split}.parquet", f"lmsys_gpt5_chat_4k_filtered_{split}.parquet"]
    return open_source(spec, names, GAD_HUB, split, _gad_row)


@register_source("lmsys-chat-1m-clean")
def load_clean(spec: DataSpec) -> tuple[str, Iterator[Row]]:
    split = spec.split or "train"
    names = [f"lmsys_chat_1m_clean_{split}.parquet", f"lmsys_chat_1m_clean_{split}.jsonl"]
    return open_source(spec, names, CLEAN_HUB, split, _clean_row)
