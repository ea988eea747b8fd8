"""Grouped-query attention of one-token steps, packed by key/value head, while a bf16 (or fp16) model generates
on a CPU.

transformers' SDPA attention hands a decoding step (one query per row) to `scaled_dot_product_attention` in one
of two ways: with a padding mask it packs the query heads that share a key/value head into rows of one query
block (`pack_gqa`); without one (every prompt of the batch the same length) it passes `enable_gqa=True`. On a
CPU in bf16 the second is several times slower: 2.0 ms against 0.35 ms per call for 16 rows, SmolLM2-135M's 9
query and 3 key/value heads of 64 and 130 keys (1 thread, AVX512-BF16), once per layer and token. While such a
model generates, its attention is therefore transformers' own SDPA attention with one-token steps always packed:
a step without a mask gets an all-true one, which changes no score. Registered with transformers as the
attention implementation `gadbench_sdpa_packed` (`AttentionInterface`, with SDPA's mask function).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

NAME = "gadbench_sdpa_packed"
_REDUCED = (torch.bfloat16, torch.float16)


def _sdpa_packed(module, query, key, value, attention_mask, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if attention_mask is None and query.shape[2] == 1:
        attention_mask = torch.ones((1, 1, 1, 1), dtype=torch.bool, device=query.device)
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(NAME, _sdpa_packed)
        AttentionMaskInterface.register(NAME, sdpa_mask)


def applies(model) -> bool:
    """True for a model on a CPU whose weights are bf16/fp16 and whose attention is transformers' SDPA."""
    param = next(model.parameters())
    return (param.device.type == "cpu" and param.dtype in _REDUCED
            and getattr(model.config, "_attn_implementation", None) == "sdpa"
            and hasattr(model, "set_attn_implementation"))


@contextmanager
def packed_attention(model):
    """Inside the block `model` packs one-token attention steps (module docstring) when `applies(model)`."""
    if not applies(model):
        yield
        return
    _register()
    model.set_attn_implementation(NAME)
    try:
        yield
    finally:
        model.set_attn_implementation("sdpa")
