"""Transformers rollouts: batched, left-padded `generate` with the KV cache and counter-based sampling.

With `dtype=torch.bfloat16` (`train.precision: bf16`) an unsharded fp32 model generates through a bf16 copy of
its parameters, refreshed from the live weights at every call (a cast: 0.03-0.06 s for 135M parameters on a
CPU): decoding reads half the bytes and skips autocast's per-step weight casts. Buffers (rotary frequencies)
stay fp32. Samples then come from the bf16 policy, as with vLLM in bf16.

A module whose weights are already bf16/fp16 generates with autocast off (it would only add casts) and, on a
CPU, with its one-token attention steps packed by key/value head (`cpu_attention`). With several samples of a
prompt in one generate call, its KV cache is computed once and shared by those rows (`shared_prompt_cache`).
Timings: `benchmarks/README.md` ("Rollouts").
"""

from __future__ import annotations

import copy
import inspect
from contextlib import ExitStack

import torch
from transformers import GenerationConfig, LogitsProcessorList

from gadbench import dist
from gadbench.rollout.base import Rollout, decode_response
from gadbench.rollout.cpu_attention import packed_attention
from gadbench.rollout.sampling import SeededSampler, sequence_seed


class HFRolloutEngine:
    def __init__(self, tokenizer, batch_size: int = 0, dtype: torch.dtype | None = None, fast: bool = True):
        """`fast=False` (`rollout.hf_fast: false`) generates as the engine did before the decoding changes of the
        module docstring: one `generate` over all rows, the model's own attention, the caller's autocast; bit for
        bit the rollouts of earlier versions, and slower (benchmarks/README.md, "Rollouts")."""
        self.tok = tokenizer
        self.batch_size = batch_size
        self.dtype = dtype
        self.fast = fast
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
        the seed sequence_seed(seeds[i], j), drawn from torch's RNG when `seeds` is None. At most `batch_size`
        sequences (prompts x samples) go into one generate call (all when 0), which bounds the KV cache; a
        prompt's samples may be split over two calls (each sample has its own seed)."""
        if seeds is None:
            seeds = torch.randint(0, 2**31 - 1, (len(prompts),)).tolist()
        rows = [(i, j) for i in range(len(prompts)) for j in range(n)]  # prompt-major: prompt i's samples adjacent
        step = self.batch_size or max(1, len(rows))  # sequences per generate call
        out = Rollout([], [], [], [])
        was_training = model.training
        model.eval()
        generator = self.generator_for(model)
        for start in range(0, len(rows), step):
            self._generate_rows(generator, prompts, seeds, rows[start : start + step], temperature, max_new_tokens,
                                top_p, out)
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

    def _generate_rows(self, model, prompts, seeds, rows: list[tuple[int, int]], temperature, max_new_tokens, top_p,
                       out: Rollout) -> None:
        """Sample j of prompt i for each (i, j) of `rows`, in one generate call."""
        pad, eos = self.tok.pad_token_id, self.tok.eos_token_id
        width = max(len(prompts[i]) for i, _ in rows)
        device = dist.compute_device(model)  # a sharded model's shards may sit in host memory (cpu_offload)
        uniq = list(dict.fromkeys(i for i, _ in rows))  # the chunk's prompts, each once
        pick = torch.tensor([uniq.index(i) for i, _ in rows], device=device)  # row -> its prompt among them
        ids = torch.tensor([[pad] * (width - len(prompts[i])) + prompts[i] for i in uniq], device=device)
        attn = torch.tensor([[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in uniq], device=device)
        processors = LogitsProcessorList()
        if temperature > 0:
            row_seeds = torch.tensor([sequence_seed(seeds[i], j) for i, j in rows])
            processors.append(SeededSampler(row_seeds, temperature, top_p, width))
        # A fresh config: a checkpoint's own generation defaults (top_k, repetition penalty, ...) never apply.
        config = GenerationConfig(do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=eos,
                                  num_beams=1)
        # A sharded model is gathered once for the whole generation; every rank keeps stepping until the last
        # one finishes (`synced_gpus`), so the ranks' collectives stay matched.
        with dist.gathered(model), _decoding(model) if self.fast else ExitStack():
            extra = {}
            if self.fast:
                extra = shared_prompt_cache(model, ids, attn, pick) if len(rows) > len(uniq) and width > 1 else {}
                extra.update(_last_logits_only(model))
            gen = model.generate(input_ids=ids[pick], attention_mask=attn[pick], generation_config=config,
                                 logits_processor=processors, synced_gpus=dist.is_sharded(model), **extra)
        gen = gen[:, width:].tolist()
        for (i, _), row in zip(rows, gen, strict=True):
            finished = eos in row
            resp = row[: row.index(eos) + 1] if finished else [t for t in row if t != pad or pad == eos]
            out.prompt_index.append(i)
            out.response_ids.append(resp)
            out.truncated.append(not finished)
            out.texts.append(decode_response(self.tok, resp))


def _decoding(model) -> ExitStack:
    """Autocast off for a module whose weights are already bf16/fp16 (casts to its own dtype would be all it
    adds), and on a CPU its one-token attention steps packed by key/value head (`cpu_attention`)."""
    stack = ExitStack()
    param = next(model.parameters())
    if param.dtype in (torch.bfloat16, torch.float16):
        stack.enter_context(torch.autocast(param.device.type, enabled=False))
    stack.enter_context(packed_attention(model))
    return stack


def _last_logits_only(model) -> dict:
    """`logits_to_keep` as an index tensor: the LM head then gets the last position as a contiguous [rows, 1,
    hidden] copy. `generate`'s own `logits_to_keep=1` slices a strided view out of the prompt's hidden states,
    which torch.matmul does not fold into one matrix product: on a CPU it runs a batched product over the LM
    head's weight copied once per row (pytorch#151934, #186148), 1 s in bf16 for 8 rows of SmolLM2 where the
    contiguous input takes 9 ms with the same result."""
    params = inspect.signature(model.forward).parameters
    device = dist.compute_device(model)
    return {"logits_to_keep": torch.tensor([-1], device=device)} if "logits_to_keep" in params else {}


def _cache_keyword(model) -> str:
    """The keyword under which `model` takes a KV cache: `cache` (transformers >= 5.2x) or `past_key_values`."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def shared_prompt_cache(model, ids: torch.Tensor, attn: torch.Tensor, pick: torch.Tensor) -> dict:
    """`generate`'s cache keyword argument for prompts `ids` [P, W] (left-padded, mask `attn`) whose rows are
    `ids[pick]` (a prompt's samples): the KV cache of every prompt's first W - 1 tokens, computed once per prompt
    and copied to each of its rows. `generate` then runs only the last prompt token of each row (as a 1-token
    step) before decoding; positions are generate's own, cumsum(mask) - 1."""
    from transformers import DynamicCache

    key = _cache_keyword(model)
    cache = DynamicCache(config=model.config)
    positions = (attn.cumsum(-1) - 1).masked_fill(attn == 0, 0)
    model(input_ids=ids[:, :-1], attention_mask=attn[:, :-1], position_ids=positions[:, :-1], use_cache=True,
          **_last_logits_only(model), **{key: cache})
    cache.batch_select_indices(pick)
    return {key: cache}
