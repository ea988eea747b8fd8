"""The synthetic world's students: a word-level tokenizer with a ChatML template and tiny Qwen2-shaped
causal LMs, briefly pre-trained on an answer style the teacher never uses, cached on disk.

`world:<size>` names a student; sizes are in SIZES. The cache key covers the size, the world's vocabulary
and the pre-training recipe, so a changed recipe never reuses a stale model. The cache is a run's
`<out>/cache` (`cache_root`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import tempfile
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, Qwen2Config

from gadbench.worlds import synthetic as world

SPECIALS = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>", "user", "assistant"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }} {{ m['content'] }}<|im_end|>{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant {% endif %}"
)
SIZES = {
    "tiny": {"hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 192, "heads": 4, "pretrain_steps": 800},
    "small": {"hidden_size": 96, "num_hidden_layers": 3, "intermediate_size": 256, "heads": 4, "pretrain_steps": 300},
}
PRETRAIN = {"batch_size": 64, "lr": 3e-3, "problems": 4000, "seed": 1234, "version": 4}


log = logging.getLogger("gadbench")


def cache_root(cache: Path | None = None) -> Path:
    """Where models built or converted once are kept: `$GADBENCH_CACHE` when set, else `cache` (the cache of
    the `--out` root a run writes to, `RunDir.cache`), else ./results/cache (the default `--out`'s)."""
    return Path(os.environ.get("GADBENCH_CACHE") or cache or "results/cache")


def build_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {w: i for i, w in enumerate(SPECIALS + world.vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with single spaces
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<pad>", unk_token="<unk>",
        bos_token=None, additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(size: str, vocab_size: int, seed: int) -> torch.nn.Module:
    s = SIZES[size]
    config = Qwen2Config(
        vocab_size=vocab_size, hidden_size=s["hidden_size"], num_hidden_layers=s["num_hidden_layers"],
        intermediate_size=s["intermediate_size"], num_attention_heads=s["heads"], num_key_value_heads=2,
        max_position_embeddings=256, tie_word_embeddings=True, pad_token_id=0, eos_token_id=3, bos_token_id=None,
    )
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config)


def _key(size: str) -> str:
    """The recipe, plus the CPU kernels it was trained with: pre-training rounds differently on AVX2 and
    AVX-512 code paths, so a student built under `train.portable_cpu` is never mixed with a native one."""
    kernels = [torch.backends.cpu.get_cpu_capability(), os.environ.get("MKL_CBWR", "")]
    blob = json.dumps([size, SIZES[size], PRETRAIN, world.vocabulary(), CHAT_TEMPLATE, world.STYLES, kernels],
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def world_student_dir(size: str, cache: Path | None = None) -> Path:
    """The cached, pre-trained student folder for `size` under `cache_root(cache)`, building it (seconds) on
    first use."""
    if size not in SIZES:
        raise ValueError(f"unknown world student `world:{size}`; choose one of {', '.join('world:' + s for s in SIZES)}.")
    out = cache_root(cache) / f"world-{size}-{_key(size)}"
    if (out / "config.json").exists():
        return out
    log.info("building the world student world:%s (pre-training %d steps, once) into %s", size,
             SIZES[size]["pretrain_steps"], out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        tok = build_tokenizer()
        model = build_model(size, len(tok), PRETRAIN["seed"])
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny models train several times faster on one thread
        try:
            pretrain(model, tok, SIZES[size]["pretrain_steps"])
        finally:
            torch.set_num_threads(threads)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        try:
            os.rename(tmp, out)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def load_world_student(size: str, dtype: torch.dtype = torch.float32, cache: Path | None = None):
    path = world_student_dir(size, cache)
    # PreTrainedTokenizerFast explicitly: AutoTokenizer would map the qwen2 model type to Qwen's BPE class.
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype), PreTrainedTokenizerFast.from_pretrained(path)


def pretrain(model: torch.nn.Module, tok: PreTrainedTokenizerFast, steps: int) -> None:
    """SFT on the prior style (`result : <answer>`) over in-distribution problems, response tokens only."""
    rng = random.Random(PRETRAIN["seed"])
    problems = world.sample_problems(PRETRAIN["problems"], "id", seed=10_000 + PRETRAIN["seed"])
    examples = []
    for p in problems:
        prompt = tok.apply_chat_template([{"role": "user", "content": p.prompt}], add_generation_prompt=True, tokenize=False)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        r_ids = tok(" ".join(world.render(p, world.STUDENT_PRIOR_STYLE)), add_special_tokens=False)["input_ids"]
        examples.append((p_ids + r_ids + [tok.eos_token_id], [-100] * len(p_ids) + r_ids + [tok.eos_token_id]))
    opt = torch.optim.AdamW(model.parameters(), lr=PRETRAIN["lr"], weight_decay=0.0)
    model.train()
    for _ in range(steps):
        batch = rng.sample(examples, PRETRAIN["batch_size"])
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.tensor([ids + [tok.pad_token_id] * (width - len(ids)) for ids, _ in batch])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
        loss = model(input_ids=input_ids, attention_mask=(input_ids != tok.pad_token_id).long(), labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
