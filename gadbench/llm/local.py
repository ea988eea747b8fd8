"""Chat generation with a local transformers model (loaded by gadbench.models.load_causal_lm): batched and
left-padded.

Sampling follows OpenAI semantics: temperature 0 is greedy; otherwise plain temperature + top-p sampling
(no top-k, no repetition penalty, whatever the model's generation_config says). With `choices` the reply is
one of those strings (vLLM's `guided_choice`): each step may only extend a choice's tokens (each choice
tokenized alone) or, once a choice is complete, end; greedy decoding takes the likeliest allowed token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import GenerationConfig


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int  # generated tokens, the stop token included
    finish_reason: str  # "stop" (an end-of-turn token) or "length"


def generate_chat(model, tokenizer, conversations: list[list[dict]], *, max_new_tokens: int = 256,
                  temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None,
                  n: int = 1, choices: tuple[str, ...] | None = None) -> list[list[Completion]]:
    """`n` completions for each conversation (a list of chat messages), generated as one left-padded batch.

    Greedy decoding (temperature 0) is generated once and repeated `n` times."""
    texts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]
    stop_ids = _stop_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    sample = temperature > 0
    config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=sample, num_return_sequences=n if sample else 1,
        eos_token_id=stop_ids, pad_token_id=pad_id, repetition_penalty=1.0,
        **({"temperature": temperature, "top_p": top_p, "top_k": 0} if sample else {}),
    )
    constraint = None
    if choices:
        constraint = _choice_constraint(tokenizer, choices, stop_ids[0], enc["input_ids"].shape[1])
    if seed is not None:
        torch.manual_seed(seed)
    with torch.inference_mode():
        out = model.generate(**enc, generation_config=config, prefix_allowed_tokens_fn=constraint)
    new = out[:, enc["input_ids"].shape[1]:].tolist()
    prompt_lens = enc["attention_mask"].sum(dim=1).tolist()
    per_prompt = n if sample else 1
    results = []
    for i, prompt_len in enumerate(prompt_lens):
        outs = [_completion(tokenizer, new[i * per_prompt + j], prompt_len, set(stop_ids)) for j in range(per_prompt)]
        results.append(outs if sample else outs * n)
    return results


def _choice_constraint(tokenizer, choices: tuple[str, ...], stop_id: int, prompt_width: int):
    """transformers' prefix_allowed_tokens_fn for replies that are one of `choices`, then `stop_id`: a trie
    of the choices' token ids, walked along the tokens generated so far."""
    trie: dict = {}
    for text in choices:
        node = trie
        for token in [*tokenizer.encode(text, add_special_tokens=False), stop_id]:
            node = node.setdefault(token, {})

    def allowed(batch_id: int, input_ids: torch.Tensor) -> list[int]:
        node = trie
        for token in input_ids[prompt_width:].tolist():
            node = node.get(token)
            if node is None:  # a finished row (padding after the stop token)
                return [stop_id]
        return list(node) or [stop_id]

    return allowed


def _completion(tokenizer, ids: list[int], prompt_len: int, stops: set[int]) -> Completion:
    end = next((k for k, t in enumerate(ids) if t in stops), None)
    if end is None:
        return Completion(tokenizer.decode(ids, skip_special_tokens=True), prompt_len, len(ids), "length")
    return Completion(tokenizer.decode(ids[:end], skip_special_tokens=True), prompt_len, end + 1, "stop")


def _stop_ids(model, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError("the model and its tokenizer define no end-of-sequence token; set eos_token in the "
                         "tokenizer or eos_token_id in generation_config.json.")
    return ids
