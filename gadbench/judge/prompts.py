"""Versioned judge prompt templates stored as `prompts/<name>.v<N>.txt` (or any `.txt` file given by its path).

A file has a `[system]` section and a `[user]` section; `{field}` placeholders are filled in one pass, so
text inside a filled-in answer is never substituted again. The file's id (`<name>.v<N>`) and a short hash of
its text go into the judge cache namespace, so editing a prompt never reuses stale judgments.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PROMPT_DIR = Path(__file__).parent / "prompts"
_FIELD = re.compile(r"\{(\w+)\}")
_SECTION = re.compile(r"^\[(system|user)\]\s*$", re.MULTILINE)


@dataclass(frozen=True)
class PromptTemplate:
    id: str  # e.g. "gad-paper.v2"
    system: str
    user: str
    sha: str  # first 8 hex of sha256 of the file

    @property
    def fields(self) -> set[str]:
        return set(_FIELD.findall(self.system)) | set(_FIELD.findall(self.user))

    def render(self, **values: str) -> list[dict]:
        """Chat messages with every `{field}` replaced; a missing or unused field is an error."""
        if set(values) != self.fields:
            raise ValueError(f"prompt {self.id} needs fields {sorted(self.fields)}, got {sorted(values)}")

        def fill(text: str) -> str:
            return _FIELD.sub(lambda m: values[m.group(1)], text)

        messages = [{"role": "system", "content": fill(self.system)}] if self.system else []
        return messages + [{"role": "user", "content": fill(self.user)}]


@cache
def load_prompt(prompt_id: str) -> PromptTemplate:
    """Load `prompts/<prompt_id>.txt`, e.g. `load_prompt("gad-paper.v2")`, or the file at path `prompt_id`
    when it ends in `.txt` (its id is the file name without `.txt`)."""
    path = Path(prompt_id) if prompt_id.endswith(".txt") else PROMPT_DIR / f"{prompt_id}.txt"
    if not path.exists():
        known = sorted(p.stem for p in PROMPT_DIR.glob("*.txt"))
        raise FileNotFoundError(f"no judge prompt {prompt_id!r}; available: {', '.join(known)}, or a .txt path")
    prompt_id = path.stem
    text = path.read_text(encoding="utf-8")
    parts = _SECTION.split(text)
    sections = dict(zip(parts[1::2], (p.strip("\n") for p in parts[2::2]), strict=True))
    if "user" not in sections or parts[0].strip():
        raise ValueError(f"{path}: expected an optional [system] section and a [user] section")
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    return PromptTemplate(prompt_id, sections.get("system", ""), sections["user"], sha)
