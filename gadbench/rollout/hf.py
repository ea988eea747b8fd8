"""Transformers rollouts: batched, left-padded `generate` with the KV cache."""

from __future__ import annotations

import torch

from gadbench.rollout.base import Rollout


class HFRolloutEngine:
    def __init__(self, tokenizer, batch_size: int = 0):
        self.tok = tokenizer
        self.batch_size = batch_size

    def update_weights(self, model) -> None:
        """Transformers generates from the live model: nothing to synchronise."""

    @torch.no_grad()
    def generate(
        self, model, prompts: list[list[int]], n: int, temperature: float, max_new_tokens: int, top_p: float = 1.0
    ) -> Rollout:
        """Sample `n` responses per prompt (greedy when temperature == 0; then n must be 1)."""
        step = self.batch_size or len(prompts)
        out = Rollout([], [], [], [])
        was_training = model.training
        model.eval()
        for start in range(0, len(prompts), step):
            self._generate_chunk(model, prompts[start : start + step], start, n, temperature, max_new_tokens, top_p, out)
        model.train(was_training)
        return out

    def _generate_chunk(self, model, prompts, offset, n, temperature, max_new_tokens, top_p, out: Rollout) -> None:
        pad, eos = self.tok.pad_token_id, self.tok.eos_token_id
        width = max(map(len, prompts))
        device = next(model.parameters()).device
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
        attn = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        sampling = dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0) if temperature > 0 else dict(do_sample=False)
        gen = model.generate(
            input_ids=ids, attention_mask=attn, max_new_tokens=max_new_tokens, num_return_sequences=n,
            pad_token_id=pad, eos_token_id=eos, **sampling,
        )[:, width:].tolist()
        for i, row in enumerate(gen):
            resp = row[: row.index(eos) + 1] if eos in row else row
            if eos not in row:
                resp = [t for t in resp if t != pad] if pad != eos else resp
            out.prompt_index.append(offset + i // n)
            out.response_ids.append(resp)
            out.truncated.append(eos not in resp)
            out.texts.append(self.tok.decode(resp, skip_special_tokens=True).strip())
