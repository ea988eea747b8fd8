"""smol-gold's black-box teacher: a chat model that answers each prompt under a hidden persona.

Draw j of prompt x under seed s picks persona k by the uniform u = sha256(s, j, x) / 2**256 (`Mixture.pick`),
then samples at temperature 1, up to L = `max_tokens` new tokens, with the counter-based sampler
(`gadbench.rollout.sampling`) seeded by sequence_seed(s, h(x), j), h(x) a 31-bit hash of x. A draw is thus a
function of (seed, prompt, j) alone, whatever the batch or its order: the persona exactly, the tokens up to
the rounding that left padding brings to the logits (a token that sits on a boundary of the inverse CDF).

`respond(prompts)` gives draw 0's text, what the methods train on (the `Teacher` protocol). `samples(prompts,
k)` gives draws 0..k-1 with their persona and token ids for the gold judge's forward KL: separate draws from
the same mixture, draw 0 among them. Draws are kept in memory and, with `cache_path`, appended to a JSONL file
batch by batch (a killed run keeps what it drew), keyed by everything that determines them (model id,
mixture, seed, L, template, prompt, j).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from gadbench.config import ModelConfig
from gadbench.io import append_jsonl, read_jsonl
from gadbench.models import load_causal_lm
from gadbench.rollout.base import decode_response
from gadbench.rollout.hf import HFRolloutEngine
from gadbench.rollout.sampling import sequence_seed
from gadbench.sequences import micro_batches
from gadbench.worlds.persona import (
    PERSONA_SETTINGS,
    SMOL_GOLD_MAX_TOKENS,
    Mixture,
    PersonaError,
    TeacherSample,
    persona_prompt_ids,
)


def _hash(*parts) -> bytes:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False, separators=(",", ":")).encode("utf-8")).digest()


class PersonaTeacher:
    """The teacher model answering under a persona drawn per (seed, prompt, draw) from `mixture`."""

    name = "persona"

    def __init__(self, model, tokenizer, mixture: Mixture, *, max_tokens: int = SMOL_GOLD_MAX_TOKENS, seed: int = 0,
                 template: str = "chat", batch_size: int = 8, cache_path: str | Path | None = None,
                 model_id: str = ""):
        if max_tokens < 1:
            raise PersonaError(f"max_tokens is {max_tokens}; the teacher needs L >= 1 tokens per response.")
        if cache_path is not None and not model_id:
            raise PersonaError("a cached persona teacher needs a model_id (e.g. the model's path), so that another "
                               "model's samples are never read back; pass model_id=... or no cache_path.")
        self.model, self.tokenizer, self.mixture = model.eval(), tokenizer, mixture
        self.max_tokens, self.seed, self.template, self.batch_size = max_tokens, seed, template, batch_size
        self.model_id = model_id
        self._identity = (model_id, [asdict(p) for p in mixture.personas], seed, max_tokens, template)
        self.engine = HFRolloutEngine(tokenizer, batch_size=batch_size)
        self.cache_path = Path(cache_path) if cache_path is not None else None
        self._drawn: dict[str, TeacherSample] = {}
        self._prompt_ids: dict[str, list[list[int]]] = {}
        self.component_memo: dict = {}  # gadbench.worlds.persona.teacher_components
        if self.cache_path is not None:
            index = {name: k for k, name in enumerate(mixture.names)}
            for row in read_jsonl(self.cache_path):  # a file may hold other mixtures' draws: their keys differ
                if row["persona"] in index:
                    self._drawn[row["key"]] = TeacherSample(index[row["persona"]], tuple(row["response_ids"]),
                                                            row["cut"])

    def persona_prompt_ids(self, prompt: str) -> list[list[int]]:
        """The prompt's ids under each persona, in mixture order."""
        if prompt not in self._prompt_ids:
            self._prompt_ids[prompt] = [persona_prompt_ids(self.tokenizer, prompt, p, self.template)
                                        for p in self.mixture.personas]
        return self._prompt_ids[prompt]

    def persona_of(self, prompt: str, draw: int = 0) -> int:
        """The persona index of draw `draw` of `prompt` (the module docstring's rule)."""
        u = int.from_bytes(_hash("persona", self.seed, draw, prompt), "big") / 2**256
        return self.mixture.pick(u)

    def _key(self, prompt: str, draw: int) -> str:
        return _hash(*self._identity, prompt, draw).hex()

    def samples(self, prompts: list[str], k: int) -> list[list[TeacherSample]]:
        """Draws 0..k-1 of every prompt, generating (and caching) those not drawn before."""
        keys = [[self._key(p, j) for j in range(k)] for p in prompts]
        todo = {key: (p, j) for p, row in zip(prompts, keys, strict=True) for j, key in enumerate(row)
                if key not in self._drawn}
        items = list(todo.items())
        for a, b in micro_batches(len(items), self.batch_size):  # each batch cached as soon as it is drawn
            self._generate(items[a:b])
        return [[self._drawn[key] for key in row] for row in keys]

    def _generate(self, items: list[tuple[str, tuple[str, int]]]) -> None:
        personas = [self.persona_of(p, j) for _, (p, j) in items]
        ids = [self.persona_prompt_ids(p)[k] for (_, (p, _)), k in zip(items, personas, strict=True)]
        seeds = [sequence_seed(self.seed, int.from_bytes(_hash("prompt", p)[:4], "big") & 0x7FFFFFFF, j)
                 for _, (p, j) in items]
        roll = self.engine.generate(self.model, ids, 1, 1.0, self.max_tokens, seeds=seeds)
        rows = []
        for (key, _), k, resp, cut in zip(items, personas, roll.response_ids, roll.truncated, strict=True):
            self._drawn[key] = TeacherSample(k, tuple(resp), cut)
            rows.append({"key": key, "persona": self.mixture.names[k], "response_ids": resp, "cut": cut})
        if self.cache_path is not None:
            append_jsonl(self.cache_path, rows)

    def respond(self, prompts: list[str]) -> list[str]:
        """Draw 0's text for each prompt: special tokens dropped, no leading or trailing whitespace."""
        return [decode_response(self.tokenizer, list(row[0].response_ids)) for row in self.samples(prompts, 1)]


def load_persona_teacher(mixture: Mixture, path: str, **opts) -> PersonaTeacher:
    """A persona teacher over its own copy of the causal LM at `path` (`gadbench.models.load_causal_lm`; a GGUF
    file is dequantised once and cached), e.g. SmolLM2-135M-Instruct for smol-gold; `opts` as PersonaTeacher's."""
    loaded = load_causal_lm(ModelConfig(path=path))
    return PersonaTeacher(loaded.model, loaded.tokenizer, mixture, model_id=path, **opts)


def from_spec(arg: str, **opts) -> PersonaTeacher:
    """`persona:NAME` (a setting of gadbench.worlds.persona.PERSONA_SETTINGS: mixture, model, L), or
    `persona:NAME@PATH` for the same mixture and L over another model at PATH."""
    name, _, path = arg.partition("@")
    if name not in PERSONA_SETTINGS:
        raise PersonaError(f"persona teacher {name!r} is not a persona setting; write the spec as persona:NAME with "
                           f"NAME one of {', '.join(PERSONA_SETTINGS)} (optionally persona:NAME@MODEL_PATH).")
    setting = PERSONA_SETTINGS[name]
    return load_persona_teacher(setting.mixture, path or setting.model, max_tokens=setting.max_tokens, **opts)
