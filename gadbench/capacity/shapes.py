"""A causal LM's shape without loading it: the paper's students from a table of their published configs, a
local folder from its config.json, a GGUF file from its metadata, a world student from its sizes."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class Shape:
    """The sizes that decide a decoder-only transformer's memory (Llama/Qwen2 layout: RMSNorm, rotary
    attention with `kv_heads` key/value heads, a gated MLP)."""

    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool  # the LM head is the embedding matrix
    qkv_bias: bool = False  # Qwen2 has biases on q, k and v

    @property
    def block_params(self) -> int:
        """Parameters of one decoder layer."""
        h, q, kv = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        attention = h * q + 2 * h * kv + q * h + ((q + 2 * kv) if self.qkv_bias else 0)
        return attention + 3 * h * self.intermediate + 2 * h

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def root_params(self) -> int:
        """Parameters outside the layers (FSDP's root unit): embeddings, final norm and an untied LM head."""
        return self.embedding_params * (1 if self.tied else 2) + self.hidden

    @property
    def params(self) -> int:
        return self.layers * self.block_params + self.root_params

    @property
    def body_params(self) -> int:
        """The transformer body alone (what D's backbone holds): everything but an untied LM head."""
        return self.params - (0 if self.tied else self.embedding_params)

    def kv_bytes_per_token(self, dtype_bytes: int) -> int:
        """Key and value cache of one token over all layers."""
        return 2 * self.layers * self.kv_heads * self.head_dim * dtype_bytes


def _qwen2(hidden, layers, intermediate, heads, kv_heads, vocab, tied) -> Shape:
    return Shape(hidden, layers, intermediate, heads, kv_heads, hidden // heads, vocab, tied, qkv_bias=True)


def _llama(hidden, layers, intermediate, heads, kv_heads, vocab, tied) -> Shape:
    return Shape(hidden, layers, intermediate, heads, kv_heads, hidden // heads, vocab, tied)


# The config.json of each hub model the paper's suites name (hidden, layers, intermediate, heads, kv heads, vocab,
# tied embeddings), as published on the Hugging Face hub.
KNOWN = {
    "Qwen/Qwen2.5-3B-Instruct": _qwen2(2048, 36, 11008, 16, 2, 151936, True),
    "Qwen/Qwen2.5-7B-Instruct": _qwen2(3584, 28, 18944, 28, 4, 152064, False),
    "Qwen/Qwen2.5-14B-Instruct": _qwen2(5120, 48, 13824, 40, 8, 152064, False),
    "meta-llama/Llama-3.2-3B-Instruct": _llama(3072, 28, 8192, 24, 8, 128256, True),
    "meta-llama/Llama-3.1-8B-Instruct": _llama(4096, 32, 14336, 32, 8, 128256, False),
    "HuggingFaceTB/SmolLM2-135M-Instruct": _llama(576, 30, 1536, 9, 3, 49152, True),
}


def from_config(c: dict) -> Shape:
    """The shape a transformers config.json describes."""
    h, heads = c["hidden_size"], c["num_attention_heads"]
    return Shape(h, c["num_hidden_layers"], c.get("intermediate_size", 4 * h), heads,
                 c.get("num_key_value_heads") or heads, c.get("head_dim") or h // heads, c["vocab_size"],
                 bool(c.get("tie_word_embeddings", True)), c.get("model_type") == "qwen2")


def _from_gguf(path: Path) -> Shape:
    from gguf import GGUFReader

    r = GGUFReader(str(path))
    arch = r.fields["general.architecture"].contents()
    get = lambda key, default=None: r.fields[f"{arch}.{key}"].contents() if f"{arch}.{key}" in r.fields else default  # noqa: E731
    h, heads = get("embedding_length"), get("attention.head_count")
    vocab = get("vocab_size") or len(r.fields["tokenizer.ggml.tokens"].data)
    tied = not any(t.name == "output.weight" for t in r.tensors)
    return Shape(h, get("block_count"), get("feed_forward_length"), heads, get("attention.head_count_kv", heads),
                 get("attention.key_length", h // heads), vocab, tied, arch == "qwen2")


def _package_file(path: str) -> Path:
    """`pkg:MODULE/FILE` as a path inside the installed package (as gadbench.models reads it)."""
    import importlib.util

    module, _, rest = path[4:].partition("/")
    spec = importlib.util.find_spec(module)
    if spec is None:
        raise FileNotFoundError(path)
    base = Path(spec.origin).parent if spec.origin else Path(next(iter(spec.submodule_search_locations)))
    return base / rest


def shape_of(path: str, gguf_file: str | None = None) -> Shape | None:
    """The shape of the model `path` names (a ModelConfig path), or None when it cannot be known without
    downloading it (a hub id outside `KNOWN` whose config is not on disk)."""
    if path.startswith("world:"):
        from gadbench.worlds.student import SIZES
        from gadbench.worlds.synthetic import vocabulary

        s = SIZES[path.split(":", 1)[1]]
        return Shape(s["hidden_size"], s["num_hidden_layers"], s["intermediate_size"], s["heads"], 2,
                     s["hidden_size"] // s["heads"], len(vocabulary()) + 6, True, qkv_bias=True)
    if path in KNOWN:
        return KNOWN[path]
    try:
        local = _package_file(path) if path.startswith("pkg:") else Path(path).expanduser()
    except FileNotFoundError:
        return None
    if gguf_file:
        local = local / gguf_file
    if local.suffix == ".gguf" and local.is_file():
        return _from_gguf(local)
    if (local / "config.json").is_file():
        c = json.loads((local / "config.json").read_text())
        return from_config(c.get("text_config", c))
    return None


def discriminator_shape(student: Shape) -> Shape:
    """D's backbone: the student's body (its LM head is not used; D's scalar head adds `hidden` parameters)."""
    return replace(student, tied=True)  # the embedding matrix once, no separate head


def weight_files(path: str) -> list[Path]:
    """The safetensors files a model folder holds (for a GGUF file: those of its converted folder, once
    converted); [] when they are not on disk."""
    local = Path(path).expanduser()
    if path.startswith("pkg:") or local.suffix == ".gguf":
        from gadbench.worlds.student import cache_root

        try:
            gguf = _package_file(path) if path.startswith("pkg:") else local
        except FileNotFoundError:
            return []
        return sorted(cache_root().glob(f"gguf-{gguf.stem}-*/*.safetensors"))
    return sorted(local.glob("*.safetensors")) if local.is_dir() else []


def file_dtype_bytes(path: Path) -> int:
    """Bytes per entry of the first tensor a safetensors file holds (from its JSON header)."""
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
    dtype = next(v["dtype"] for k, v in header.items() if k != "__metadata__")
    return {"F64": 8, "F32": 4, "BF16": 2, "F16": 2}.get(dtype, 4)
