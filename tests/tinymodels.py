"""Tiny random-init causal LMs built offline: a byte-level BPE trained on local stdlib sources + a ChatML template."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast, Qwen2Config

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' }}"
    "{% endgeneration %}{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _corpus(max_chars: int = 600_000) -> list[str]:
    texts, total = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        texts.append(path.read_text(encoding="utf-8", errors="ignore"))
        total += len(texts[-1])
        if total >= max_chars:
            break
    return texts


def build_tokenizer(vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|pad|>",
                                   bos_token=None, unk_token=None)
    fast.chat_template = CHATML
    return fast


def build_tiny_model(tmpdir: str | Path, arch: str = "qwen2", tokenizer: PreTrainedTokenizerFast | None = None,
                     heads: int = 4):
    """Build, save to `tmpdir` and reload a 0.75 M-parameter model and its tokenizer (the BPE one below unless
    `tokenizer` is given); returns (model, tokenizer). Hidden size 128 over `heads` attention heads.

    initializer_range=0.2 makes greedy answers varied text rather than one repeated token.
    """
    tmpdir = Path(tmpdir)
    tokenizer = tokenizer or build_tokenizer()
    config_cls = {"qwen2": Qwen2Config, "llama": LlamaConfig}[arch]
    config = config_cls(vocab_size=len(tokenizer), hidden_size=128, num_hidden_layers=2, intermediate_size=512,
                        num_attention_heads=heads, num_key_value_heads=heads // 2, tie_word_embeddings=True,
                        max_position_embeddings=1024, initializer_range=0.2, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(tmpdir)
    tokenizer.save_pretrained(tmpdir)
    return AutoModelForCausalLM.from_pretrained(tmpdir).eval(), PreTrainedTokenizerFast.from_pretrained(tmpdir)
