"""The `hf` teacher: a local transformers chat model, batched left-padded generation with its chat template."""

from __future__ import annotations

import sys

from tqdm import tqdm

from gadbench.config import ModelConfig
from gadbench.llm.local import generate_chat
from gadbench.models import load_causal_lm


class HFTeacher:
    """temperature defaults to 1.0 (0 = greedy); batch b is seeded with seed + b, so answers are reproducible."""

    def __init__(self, model, tokenizer, *, batch_size: int = 8, max_tokens: int = 512, temperature: float = 1.0,
                 top_p: float = 1.0, seed: int | None = 0, system_prompt: str | None = None):
        if batch_size < 1 or max_tokens < 1:
            raise ValueError("the hf teacher needs batch_size >= 1 and max_tokens >= 1.")
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.max_tokens = batch_size, max_tokens
        self.temperature, self.top_p, self.seed = temperature, top_p, seed
        self.system_prompt = system_prompt

    def respond(self, prompts: list[str]) -> list[str]:
        head = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        out: list[str] = []
        starts = range(0, len(prompts), self.batch_size)
        for b, start in enumerate(tqdm(starts, desc="teacher", disable=not sys.stderr.isatty())):
            chats = [head + [{"role": "user", "content": p}] for p in prompts[start:start + self.batch_size]]
            batch = generate_chat(self.model, self.tokenizer, chats, max_new_tokens=self.max_tokens,
                                  temperature=self.temperature, top_p=self.top_p,
                                  seed=None if self.seed is None else self.seed + b)
            out.extend(c[0].text for c in batch)
        return out


def from_spec(arg: str, **opts) -> HFTeacher:
    """`hf:PATH` (a local folder, a .gguf file, or a Hub id already in the local cache)."""
    if not arg:
        raise ValueError("the hf teacher needs a model: write the spec as hf:PATH.")
    loaded = load_causal_lm(ModelConfig(path=arg), download=False)
    return HFTeacher(loaded.model.eval(), loaded.tokenizer, **opts)
