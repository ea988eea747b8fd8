"""Transformers rollouts: batched, left-padded `generate` with the KV cache and counter-based sampling.

With `dtype=torch.bfloat16` (`train.precision: bf16`) an unsharded fp32 model generates through a bf16 copy of
its parameters, refreshed from the live weights at every call (a cast: 0.03-0.06 s for 135M parameters on a
CPU): decoding reads half the bytes and skips autocast's per-step weight casts. Buffers (rotary frequencies)
stay fp32. Samples then come from the bf16 policy, as with vLLM in bf16.
"""

from __future__ import annotations

import copy

import torch
from transformers import GenerationConfig, LogitsProcessorList

from gadbench import dist
from gadbench.rollout.base import Rollout, decode_response
from gadbench.rollout.sampling import SeededSampler, sequence_seed


class HFRolloutEngine:
    def __init__(self, tokenizer, batch_size: int = 0, dtype: torch.dtype | None = None):
        self.tok = tokenizer
        self.batch_size = batch_size
        self.dtype = dtype
        self._copy: tuple[torch.nn.Module, torch.nn.Module] | None = None  # (source model, its low-precision copy)

    def update_weights(self, model) -> None:
        """Nothing to push: `generate` reads the live weights (or refreshes its low-precision copy from them)."""

    def close(self) -> None:
        """Release the low-precision copy, if any."""
        self._copy = None

    @torch.no_grad()
    def generate(
        self, model, prompts: list[list[int]], n: int, temperature: float, max_new_tokens: int, top_p: float = 1.0,
        seeds: list[int] | None = None,
    ) -> Rollout:
        """`n` responses per prompt: greedy when temperature == 0, else sampled; sample j of prompt i uses
        the seed sequence_seed(seeds[i], j), drawn from torch's RNG when `seeds` is None."""
        if seeds is None:
            seeds = torch.randint(0, 2**31 - 1, (len(prompts),)).tolist()
        step = self.batch_size or len(prompts)
        out = Rollout([], [], [], [])
        was_training = model.training
        model.eval()
        generator = self.generator_for(model)
        for start in range(0, len(prompts), step):
            chunk = slice(start, start + step)
            self._generate_chunk(generator, prompts[chunk], seeds[chunk], start, n, temperature, max_new_tokens, top_p,
                                 out)
        model.train(was_training)
        return out

    def generator_for(self, model):
        """The module that generates for `model`: `model` itself, or its `self.dtype` copy holding the current
        weights (see the module docstring)."""
        first = next(model.parameters())
        if self.dtype is None or first.dtype == self.dtype or dist.is_sharded(model):
            return model
        if self._copy is None or self._copy[0] is not model:
            low = copy.deepcopy(model).eval()
            for p in low.parameters():
                p.requires_grad_(False)
                p.data = p.data.to(self.dtype)
            self._copy = (model, low)
        low = self._copy[1]
        for dst, src in zip(low.parameters(), model.parameters(), strict=True):  # shared (tied) ones once each
            dst.copy_(src)
        return low

    def _generate_chunk(self, model, prompts, seeds, offset, n, temperature, max_new_tokens, top_p, out: Rollout) -> None:
        pad, eos = self.tok.pad_token_id, self.tok.eos_token_id
        width = max(map(len, prompts))
        device = dist.compute_device(model)  # a sharded model's shards may sit in host memory (cpu_offload)
        rows = [p for p in prompts for _ in range(n)]  # prompt-major: prompt i's n samples are adjacent
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in rows], device=device)
        attn = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in rows], device=device)
        processors = LogitsProcessorList()
        if temperature > 0:
            row_seeds = torch.tensor([sequence_seed(s, j) for s in seeds for j in range(n)])
            processors.append(SeededSampler(row_seeds, temperature, top_p, width))
        # A fresh config: a checkpoint's own generation defaults (top_k, repetition penalty, ...) never apply.
        config = GenerationConfig(do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=eos,
                                  num_beams=1)
        # A sharded model is gathered once for the whole generation; every rank keeps stepping until the last
        # one finishes (`synced_gpus`), so the ranks' collectives stay matched.
        with dist.gathered(model):
            gen = model.generate(input_ids=ids, attention_mask=attn, generation_config=config,
                                 logits_processor=processors, synced_gpus=dist.is_sharded(model))
        gen = gen[:, width:].tolist()
        for i, row in enumerate(gen):
            finished = eos in row
            resp = row[: row.index(eos) + 1] if finished else [t for t in row if t != pad or pad == eos]
            out.prompt_index.append(offset + i // n)
            out.response_ids.append(resp)
            out.truncated.append(not finished)
            out.texts.append(decode_response(self.tok, resp))
