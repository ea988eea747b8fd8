"""Local transformers chat models: offline loading and batched, left-padded chat generation.

Sampling follows OpenAI semantics: temperature 0 is greedy; otherwise plain temperature + top-p sampling
(no top-k, no repetition penalty, whatever the model's generation_config says).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig


class ModelNotAvailable(ValueError):
    """The model cannot be loaded without a download; the message says how to provide it."""


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int  # generated tokens, the stop token included
    finish_reason: str  # "stop" (an end-of-turn token) or "length"


def load_causal_lm(name: str):
    """(model, tokenizer) from a local folder, a .gguf file, or a Hub id already in the local HF cache.

    Never downloads. The model is fp32 in eval mode; its tokenizer must have a chat template.
    """
    path = Path(name).expanduser()
    extra: dict = {}
    local = path.is_dir() or path.is_file()
    if path.suffix == ".gguf" and path.is_file():
        source, extra = str(path.parent), {"gguf_file": path.name}
    elif path.is_dir():
        source = str(path)
    elif name.startswith(("/", ".", "~")) or path.suffix == ".gguf" or name.count("/") > 1:
        raise ModelNotAvailable(f"there is no model folder or .gguf file at {name}; check the path "
                                f"(models are never downloaded at run time).")
    else:
        source = name
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True, **extra)
        model = AutoModelForCausalLM.from_pretrained(source, local_files_only=True, dtype=torch.float32, **extra)
    except (OSError, ValueError) as exc:
        if local:  # a local folder or file that exists but does not load: show the real error
            raise
        raise ModelNotAvailable(
            f"model {name!r} is not in the local Hugging Face cache and nothing is downloaded at run time; "
            f"download it where there is network (`hf download {name} --local-dir DIR`) and pass that folder."
        ) from exc
    if not tokenizer.chat_template:
        raise ValueError(f"the tokenizer of {name!r} has no chat template; use an instruct/chat model or add a "
                         f"chat_template to its tokenizer_config.json.")
    return model.eval(), tokenizer


def generate_chat(model, tokenizer, conversations: list[list[dict]], *, max_new_tokens: int = 256,
                  temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None,
                  n: int = 1) -> list[list[Completion]]:
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
    if seed is not None:
        torch.manual_seed(seed)
    with torch.inference_mode():
        out = model.generate(**enc, generation_config=config)
    new = out[:, enc["input_ids"].shape[1]:].tolist()
    prompt_lens = enc["attention_mask"].sum(dim=1).tolist()
    per_prompt = n if sample else 1
    results = []
    for i, prompt_len in enumerate(prompt_lens):
        outs = [_completion(tokenizer, new[i * per_prompt + j], prompt_len, set(stop_ids)) for j in range(per_prompt)]
        results.append(outs if sample else outs * n)
    return results


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
