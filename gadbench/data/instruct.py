"""Instruction-style records, shared by the dolly, selfinst and vicuna sources.

`join_input`: the prompt is the instruction, plus "\\n\\n" + the input/context when that is non-empty
(the MiniLLM convention; wrapping it in the Alpaca "### Input:" template is the prompt template's job).

`minillm_row`: MiniLLM's files (HF MiniLLM/dolly, MiniLLM/self-inst, MiniLLM/Vicuna): either
`{instruction, input, output}` or `{prompt, output}` where newlines in `prompt` are escaped as `<n>`
and the prompt may already be wrapped in the Alpaca template, which is removed here so that it is not
applied twice. `output` is a string or a list of references (the first is the response).
"""

from __future__ import annotations

import re
from typing import Any

from gadbench.data.base import Row

_ALPACA = re.compile(
    r"^(?:<\|im_start\|>)?Below is an instruction that describes a task.*?### Instruction:\n(?P<instruction>.*?)"
    r"(?:\n\n### Input:\n(?P<input>.*?))?\n\n### Response:\n?(?:<\|im_end\|><\|im_start\|>Assistant:)?\s*$",
    re.S,
)


def join_input(instruction: Any, extra: Any) -> Any:
    """instruction + "\\n\\n" + extra when extra is a non-empty string; the instruction alone when extra
    is empty or None; None (a bad prompt) when either part is not text."""
    if extra is None or (isinstance(extra, str) and not extra.strip()):
        return instruction
    if not isinstance(instruction, str) or not isinstance(extra, str):
        return None
    return f"{instruction}\n\n{extra}"


def minillm_row(number: int, record: dict, meta: dict | None = None) -> Row:
    meta = {**(meta or {}), "format": "minillm"}
    output = record.get("output")
    if isinstance(output, list):
        meta["references"] = output
        output = output[0] if output else None
    if "instruction" in record:
        meta["input"] = record.get("input") or ""
        return Row(number, join_input(record["instruction"], record.get("input")), output, meta)
    if "prompt" not in record:
        return Row(number, meta=meta, problem="missing_fields", detail=" ('prompt' or 'instruction')")
    prompt = record["prompt"]
    if isinstance(prompt, str):
        prompt = prompt.replace("<n>", "\n")
        wrapped = _ALPACA.match(prompt)
        if wrapped:
            meta["input"] = wrapped["input"] or ""
            prompt = join_input(wrapped["instruction"], wrapped["input"])
    return Row(number, prompt, output, meta)
