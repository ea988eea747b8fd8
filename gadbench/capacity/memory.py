"""The memory a run needs: each phase's peak per process, on the accelerator and on the host, predicted from
the run's settings, the model's shape (gadbench.capacity.shapes) and the launch, before anything is loaded.

A phase's peak is what stays resident through the stage it runs in (weights, AdamW states, the frozen
reference, the bf16 rollout copy; all sharded 1/S under FSDP) plus what the phase allocates at its worst:

    rollout     hf: G gathered (FSDP) + KV cache of one generate call (rows x (prompt + new tokens), plus the
                layer being extended) + the larger of the prefill's one-layer activations and a decoding step's
                logits; vllm: the engine awake, its rollout.gpu_memory_utilization share of the GPU (its weights,
                KV cache and activations; the weight push gathers one tensor at a time before the KV cache wakes)
    d, g        gradients + activations of one micro-batch of T tokens + (G) the logits of a chunk or of the
                micro-batch + FSDP's gathered root unit and two blocks, and its fp32 reduce-scatter buffers
    ref         one layer's activations of a micro-batch + its logits (no gradients)
    eval        D's diagnostics (a rollout and D's scoring) and greedy answers: hf on process 0 (an unsharded
                copy of G under FSDP, and its KV cache); vllm on every process's engine (no copy of G)
    checkpoint  each process stages one tensor (shard) at a time on the host (torch.distributed.checkpoint:
                nothing is gathered); replicas compare float64 checksums one tensor at a time
    load        sharded: process 0 reads G once in its files' dtype, every process allocates its shards and
                receives one full tensor at a time; otherwise every process builds G and D's backbone on the
                host before placing them

Under a vLLM engine that sleeps (rollout.sleep, CUDA), the engine's weights wait in host memory while G and D
train and only its CUDA graphs' memory stays on the GPU (an estimate). With a student's cpu_offload under
FSDP, the sharded weights, gradients and AdamW states (of G, D and the reference) are host memory, not GPU.

Activations of a micro-batch of T tokens of width W (so T / W rows), per layer and token, are the tensors
autograd keeps for backward in transformers' Llama/Qwen2 decoder layer, counted with
torch.autograd.graph.saved_tensors_hooks: 40H + 16I bytes in fp32; 34H + 8I under bf16 autocast over fp32
weights (norms in fp32, each linear keeping its own bf16 copy of its input); 24H + 8I with bf16 weights (FSDP's
bf16 parameters); plus the attention mask, W bytes of the compute dtype (key and value repeated to every head
are in the counts). Without gradient checkpointing every layer keeps them; with it each layer keeps its input
and one layer is recomputed at a time; backward frees a layer's tensors before the next one's gradients need
room. Under autocast over fp32 weights, the bf16 copy of every weight a forward casts is kept for backward
(2 bytes per parameter). Logits take 12 bytes an entry with gradients (measured on CPU: the log-softmax kept
for backward and the gradients through it), the compute dtype's bytes + 8 without.

The lengths are the worst case the settings allow (every prompt at train.max_prompt_tokens, every response at
train.max_response_tokens, evaluation answers at eval.max_new_tokens) unless `Lengths` says otherwise.
Constants that are not counted are labelled where they are defined: estimates for GPUs (the CUDA context and
NCCL's buffers, the host's Python runtime), measurements for this machine's CPU runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from gadbench import GadbenchError
from gadbench.capacity.shapes import Shape, discriminator_shape, shape_of

GiB = 2**30
DEVICE_RESERVE = 2 * GiB  # estimate: CUDA context, NCCL and cuBLAS buffers, not counted by torch's allocator
DEVICE_USABLE = 0.95  # estimate: the share of a GPU's memory the caching allocator can use (fragmentation)
HOST_RUNTIME = 3 * GiB  # estimate: Python, torch and CUDA libraries, tokenizer and data, per process on a GPU node
HOST_RUNTIME_CPU = 1 * GiB  # estimate: the same without CUDA, per process of a CPU run
# Measured on this machine's CPU runs (docs/scale.md): a process grows by this much once it has loaded and run a
# model, whatever the model's size (transformers' modeling code, oneDNN's kernels; with a process group, gloo's
# and FSDP's state too). The predictions of CPU runs count it; GPU runs' host figures have HOST_RUNTIME instead.
CPU_RUNTIME_GROWTH = GiB // 8
CPU_GROUP_GROWTH = GiB // 16
VLLM_ASLEEP = GiB // 2  # estimate: what a sleeping vLLM engine keeps on its GPU (CUDA graphs' memory pools)
# What FSDP2's CPU offload keeps in host memory instead of on the GPU (the sharded states; gathered parameters,
# activations and unsharded gradients stay on the GPU)
OFFLOADED = ("G weights", "G AdamW", "G gradients", "D weights", "D AdamW", "D gradients", "reference")
PHASES = {"load": "load", "rollout": "rollout", "d": "D score/update", "ref": "reference", "g": "G update",
          "eval": "evaluation", "checkpoint": "checkpoint"}


@dataclass(frozen=True)
class Launch:
    """Where a run runs: `processes` in all over `nodes`; `device` cuda or cpu; memory per accelerator and per
    node (bytes; None: unknown)."""

    processes: int = 1
    nodes: int = 1
    device: str = "cuda"
    device_bytes: int | None = None
    host_bytes: int | None = None

    @property
    def local(self) -> int:
        return max(1, self.processes // self.nodes)

    def describe(self) -> str:
        where = f"{self.processes} process{'es' if self.processes > 1 else ''}"
        if self.nodes > 1:
            where += f" on {self.nodes} nodes"
        if self.device == "cuda":
            size = f" of {self.device_bytes / GiB:.0f} GiB" if self.device_bytes else ""
            return f"{where}, one GPU{size} each"
        return f"{where} on CPU"


@dataclass(frozen=True)
class Lengths:
    """Token lengths a prediction assumes; None: the worst case the run's settings allow."""

    prompt_min: int | None = None
    prompt_max: int | None = None
    response: int | None = None
    eval_new: int | None = None


@dataclass
class Phase:
    """A phase's predicted peak per process (bytes), the parts it is made of, and the setting that lowers it."""

    name: str
    device: int
    host: int
    parts: dict[str, int] = field(default_factory=dict)
    fix: str = ""
    resident: int = 0  # the part that stays allocated through the stage (the rest is the phase's own)


@dataclass
class Prediction:
    run_id: str
    launch: Launch
    phases: list[Phase]
    note: str = ""  # why there is no prediction, when there is none

    def phase(self, name: str) -> Phase:
        return next(p for p in self.phases if p.name == name)


def _bytes(dtype: str) -> int:
    return 2 if dtype in ("bfloat16", "float16") else 4


class _Run:
    """The quantities every phase needs, worked out once."""

    def __init__(self, spec, launch: Launch, lengths: Lengths, g: Shape, d: Shape | None):
        t = self.t = spec.train
        self.spec, self.launch, self.g, self.d = spec, launch, g, d
        n = launch.processes
        self.sharded = t.sharding != "none" and n > 1
        self.s = (launch.local if t.sharding == "hsdp" else n) if self.sharded else 1
        self.cuda = launch.device == "cuda"
        self.bf16 = t.precision == "bf16"
        self.w = _bytes(spec.student.dtype)  # weights, gradients and AdamW states
        fsdp_bf16 = self.sharded and self.cuda and self.bf16  # FSDP gathers parameters in bf16
        self.mp = 2 if fsdp_bf16 else self.w  # gathered parameters
        self.a = 2 if (self.bf16 or self.w == 2) else 4  # matmul outputs
        self.low_weights = fsdp_bf16 or self.w == 2  # forwards run on 16-bit weights
        self.casts = self.bf16 and not self.low_weights  # autocast keeps bf16 copies of fp32 weights
        self.prompt_max = lengths.prompt_max or t.max_prompt_tokens
        self.prompt_min = lengths.prompt_min or (self.prompt_max if lengths.prompt_max else 1)
        self.response = lengths.response or t.max_response_tokens
        self.eval_new = lengths.eval_new or spec.eval.max_new_tokens
        self.width = self.prompt_max + self.response
        self.local_batch = max(1, t.batch_size // n)
        self.groups = t.shared_prefix and not t.gradient_checkpointing and not self.sharded
        r = spec.rollout
        self.vllm = r.engine == "vllm"
        self.offload = self.sharded and self.cuda and spec.student.cpu_offload  # on CPUs it moves nothing
        # the engine's share of the GPU while it generates, and what it keeps while asleep (unknown GPU: none)
        self.engine = int(r.gpu_memory_utilization * launch.device_bytes) if (
            self.vllm and self.cuda and launch.device_bytes) else 0
        self.engine_asleep = min(self.engine, VLLM_ASLEEP) if r.sleep else self.engine
        engine_bytes = 2 if (self.bf16 or self.w == 2) else 4  # the engine's dtype (gadbench.rollout.vllm)
        self.engine_weights_host = engine_bytes * self.g.params // r.tensor_parallel_size if (
            self.engine and r.sleep) else 0

    # ------------------------------------------------------------------------------------------ pieces

    def layer_bytes(self, shape: Shape) -> int:
        """Bytes autograd keeps per token and layer (module docstring), without the mask."""
        h, i = shape.hidden, shape.intermediate
        if not self.bf16 and self.w == 4:
            return 40 * h + 16 * i
        return (24 * h if self.low_weights else 34 * h) + 8 * i

    def trained(self, shape: Shape, tokens: int, width: int, head: bool) -> int:
        """Activations of a forward and backward over `tokens` tokens of rows `width` long: what autograd keeps
        (backward frees a layer's before the next layer's gradients need room)."""
        layer = tokens * (self.layer_bytes(shape) + width * self.a)
        residual = 2 if self.low_weights else 4
        kept = (shape.layers * tokens * shape.hidden * residual + layer if self.t.gradient_checkpointing
                else shape.layers * layer)
        casts = 0
        if self.casts:  # bf16 copies of the weights a forward casts, kept for backward (one layer's if recomputed)
            body = shape.layers * shape.block_params
            casts = 2 * ((shape.block_params if self.t.gradient_checkpointing else body)
                         + (shape.embedding_params if head else 0))
        return kept + 8 * tokens * shape.hidden + casts

    def forward_only(self, shape: Shape, tokens: int, width: int, casts: bool) -> int:
        """The largest transient of a forward without gradients: one layer at a time. Under autocast over fp32
        weights, the bf16 copies of a model's weights that requires gradients (`casts`) are cached for the
        whole forward; a frozen model's are made one weight at a time."""
        h, i = shape.hidden, shape.intermediate
        layer = tokens * (max(3 * i, 6 * h) * self.a + 2 * h * (2 if self.low_weights else 4) + width * (self.a + 1))
        if not self.casts:
            return layer
        return layer + (2 * shape.layers * shape.block_params if casts else 2 * largest_weight(shape))

    def logits(self, positions: int, grad: bool) -> int:
        """Full-vocabulary logits of `positions` positions: the head's output, its fp32 copy scaled by the
        temperature and the log-softmax (the fp32 copy is freed before the log-softmax is made); with
        gradients, the log-softmax kept for backward and the gradients flowing through it, 12 bytes an entry
        at the peak whatever the precision (measured on this CPU, docs/scale.md)."""
        return positions * self.g.vocab * (12 if grad else self.a + 8)

    def fsdp_compute(self, shape: Shape, grad: bool) -> int:
        """FSDP's transients in a forward (and backward): the root unit gathered, two blocks gathered at a time,
        and in backward their unsharded gradients with the fp32 copies reduce-scatter sends."""
        if not self.sharded:
            return 0
        root, block = shape.root_params, shape.block_params
        if not grad:  # the root unit stays gathered from the first such forward on: resident (see _resident)
            return self.mp * 2 * block
        return self.mp * (root + 2 * block) + (self.mp + (4 if self.mp != 4 else 0)) * (root + block)

    def micro_batch(self, unit_tokens: int, units: int, per_batch: int) -> int:
        """Tokens of the largest micro-batch over `units` units (a sequence, or a prompt group) of `unit_tokens`
        tokens each: as many as the token budget holds (at least one), or `per_batch` of them."""
        budget = self.t.max_tokens_per_micro_batch
        count = max(1, budget // unit_tokens) if budget > 0 else max(1, per_batch)
        return min(units, count) * unit_tokens

    def kv_call(self, rows: int, prompt: int, new: int) -> int:
        dtype = 2 if (self.bf16 or self.w == 2) else 4
        return rows * (prompt + new) * self.g.kv_bytes_per_token(dtype) * (self.g.layers + 1) // self.g.layers

    def generate(self, rows: int, prompt: int, new: int, sampled: bool) -> dict[str, int]:
        """One generate call of `rows` sequences: KV cache, and the larger of the prefill and a decoding step."""
        v, c = self.g.vocab, (2 if (self.bf16 or self.w == 2) else 4)
        prefill = self.forward_only(self.g, rows * prompt, prompt, casts=False) + rows * v * (c + 4)
        step = rows * v * (c + 4 + (36 if sampled else 0))  # logits, their fp32 copy; the sampler's float64 work
        out = {"KV cache": self.kv_call(rows, prompt, new), "prefill / decoding step": max(prefill, step)}
        if not self.cuda and c == 2 and not self.sharded:  # measured on this CPU: oneDNN's reordered copies of
            out["oneDNN weight reorders (measured)"] = 2 * 2 * self.g.params  # the bf16 copy's weights
        return out

    def rollout_rows(self, prompts: int, samples: int) -> int:
        rows = prompts * samples
        return min(rows, self.spec.rollout.batch_size or rows)


@dataclass(frozen=True)
class _Work:
    """What a stage's steps do, read from its record's cost estimate (gadbench.methods.cost), never from names:
    rollouts (then D scores them when the method has one), D trained, G trained, G trained on the rollouts
    (GRPO) rather than on the teacher's responses (SFT)."""

    rollouts: bool
    trains_d: bool
    trains_g: bool
    g_on_rollouts: bool


def _work(spec, planned) -> _Work:
    from gadbench.methods.cost import shape

    steps = [planned.stage.estimate(spec, 1, 1, k) for k in sorted({0, planned.steps - 1})]
    batch, group, seq, _ = shape(spec)
    g_tokens = max(s["g_trained_tokens"] for s in steps)
    return _Work(rollouts=any(s["generated_tokens"] for s in steps), trains_d=any(s["d_trained_tokens"] for s in steps),
                 trains_g=g_tokens > 0, g_on_rollouts=g_tokens >= batch * group * seq)


def _resident(run: _Run, work: _Work, stage, has_d: bool) -> dict[str, int]:
    """What stays allocated on the accelerator through `stage` on each process."""
    g, d, s, w, t = run.g, run.d, run.s, run.w, run.t
    out = {"G weights": w * g.params // s}
    if work.trains_g:
        out["G AdamW"] = 2 * w * g.params // s
    if has_d:
        out["D weights"] = w * d.params // s
        if work.trains_d:
            out["D AdamW"] = 2 * w * d.params // s
    if stage.reference and t.kl_beta > 0:
        out["reference"] = w * g.params // s
    if run.sharded:  # FSDP keeps a root unit gathered after a forward that no backward follows
        if "reference" in out:
            out["reference's root unit, gathered"] = run.mp * g.root_params
        if d is not None and "D AdamW" not in out:
            out["D's root unit, gathered"] = run.mp * d.root_params
    if run.spec.rollout.engine == "hf" and run.bf16 and not run.sharded and w != 2:
        out["bf16 rollout copy"] = 2 * g.params
    if not run.cuda:
        out["runtime growth (measured)"] = CPU_RUNTIME_GROWTH + (CPU_GROUP_GROWTH if run.launch.processes > 1 else 0)
    if run.engine_asleep:
        out["vLLM engine" + (", asleep (estimate)" if run.spec.rollout.sleep else "")] = run.engine_asleep
    return out


def _resident_host(run: _Run) -> dict[str, int]:
    """What stays in host memory through a stage on each process, besides the runtime: a sleeping vLLM
    engine's weights (level 1 moves them there)."""
    return {"vLLM weights, asleep on the host": run.engine_weights_host} if run.engine_weights_host else {}


def _awake(run: _Run) -> dict[str, int]:
    """A vLLM engine generating: its gpu_memory_utilization share, beyond what it keeps asleep (resident)."""
    return {"vLLM engine, awake": run.engine - run.engine_asleep}


def _rollout(run: _Run, prompts: int, samples: int) -> dict[str, int]:
    """A rollout of `samples` per prompt for `prompts` prompts on this process."""
    if run.vllm:  # the engine schedules the prompts within its own KV cache (rollout.batch_size does not apply)
        return _awake(run)
    out = {}
    if run.sharded:  # gathered for the whole generation (bf16 copies of fp32 weights cached under autocast)
        out["G gathered"] = run.mp * run.g.params + (2 * run.g.params if run.casts else 0)
    return {**out, **run.generate(run.rollout_rows(prompts, samples), run.prompt_max, run.response, sampled=True)}


def _prompt_keys(run: _Run, shape: Shape, rows: int) -> dict[str, int]:
    """Prompt groups (train.shared_prefix): each response row attends to its prompt's keys and values, repeated
    for it and to every head, kept for backward in every layer."""
    if not run.groups:
        return {}
    return {"prompt keys and values per response": shape.layers * rows * run.prompt_max * 2 * shape.hidden * run.a}


def _d_pass(run: _Run, update: bool) -> dict[str, int]:
    """D's micro-batch: whole groups of a teacher response and its samples."""
    d, t, n = run.d, run.t, run.t.group_size
    unit = run.prompt_max + (n + 1) * run.response if run.groups else (n + 1) * run.width
    per_batch = max(1, (t.micro_batch_size or run.local_batch * (n + 1)) // (n + 1))
    tokens = run.micro_batch(unit, run.local_batch, per_batch)
    if update:
        out = {"D gradients": run.w * d.params // run.s, "activations": run.trained(d, tokens, run.width, head=False),
               **_prompt_keys(run, d, tokens // unit * (n + 1))}
    else:
        out = {"activations": run.forward_only(d, tokens, run.width, casts=True)}
    if run.sharded:
        out["FSDP buffers"] = run.fsdp_compute(d, update)
    return out


def _g_micro_batch(run: _Run, sft: bool) -> tuple[int, int, int, int]:
    """(tokens, rows, logit positions, micro-batches) of G's largest micro-batch: of teacher sequences (SFT) or
    rollouts, and how many micro-batches the step has."""
    t, n = run.t, run.t.group_size
    if sft or not run.groups:
        rows = run.local_batch * (1 if sft else n)
        tokens = run.micro_batch(run.width, rows, t.micro_batch_size or rows)
        keep = run.prompt_max - run.prompt_min + run.response + 1  # from the earliest response position on
        per_row = run.response if t.logprob_chunk_tokens else keep
        return tokens, tokens // run.width, tokens // run.width * per_row, -(-rows * run.width // tokens)
    unit = run.prompt_max + n * run.response
    tokens = run.micro_batch(unit, run.local_batch, max(1, t.micro_batch_size // n) if t.micro_batch_size
                             else run.local_batch)
    return tokens, tokens // unit * n, tokens // unit * n * run.response, -(-run.local_batch * unit // tokens)


def _g_pass(run: _Run, sft: bool, grad: bool) -> dict[str, int]:
    """G's update (`grad`), or the reference's forward over the same micro-batch, which from the second
    micro-batch on runs beside the gradients G's first backward made."""
    tokens, rows, positions, batches = _g_micro_batch(run, sft)
    chunk = run.t.logprob_chunk_tokens
    logits = run.logits(min(chunk, positions) if chunk else positions, grad)
    if grad:
        out = {"G gradients": run.w * run.g.params // run.s,
               "activations": run.trained(run.g, tokens, run.width, head=True), "logits": logits}
    else:
        out = {"activations": run.forward_only(run.g, tokens, run.width, casts=False), "logits": logits}
        if batches > 1:
            out["G gradients"] = run.w * run.g.params // run.s
    if grad and not sft:
        out.update(_prompt_keys(run, run.g, rows))
    if run.sharded:
        out["FSDP buffers"] = run.fsdp_compute(run.g, grad)
    return out


def _eval(run: _Run, has_d: bool, main: bool) -> tuple[dict[str, int], dict[str, int]]:
    """(device, host) parts of an evaluation point: the larger of D's diagnostics (a rollout, then D's scoring)
    and the greedy answers to the largest set: on process 0 (`main`) with hf (from an unsharded copy of G
    under FSDP, gathered through the host), on every process's engine with vllm."""
    from gadbench.data import SOURCES

    spec, t = run.spec, run.t
    val = spec.data.validation_size
    diagnostics = {}
    if has_d and val:
        used = min(val, spec.eval.d_diagnostics_prompts or val)
        prompts = used // run.launch.processes if used >= run.launch.processes else used
        sampled = _rollout(run, prompts, t.group_size)
        rows = prompts * (t.group_size + 2)  # teacher, echo and samples, scored one by one, after the rollout
        tokens = run.micro_batch(run.width, rows, t.micro_batch_size or rows)
        scored = {"D scoring": run.forward_only(run.d, tokens, run.width, casts=True)}
        diagnostics = sampled if sum(sampled.values()) >= sum(scored.values()) else scored
    sizes = [d.limit or SOURCES[d.source].size or 500 for d in spec.data.eval.values()]
    if run.vllm:  # every process's engine answers its share (one process: the whole set)
        answers = _awake(run)
        return (diagnostics if sum(diagnostics.values()) > sum(answers.values()) else answers), {}
    answers = {}
    if run.sharded:  # gathered one full tensor at a time into the host, then copied
        answers["G unsharded copy"] = (2 if run.bf16 else run.w) * run.g.params
        answers["one full tensor"] = run.w * largest_weight(run.g)
    rows = run.rollout_rows(max(sizes + [val]), max(1, spec.eval.samples))
    answers.update(run.generate(rows, run.prompt_max, run.eval_new, sampled=spec.eval.samples > 0))
    if not main:
        return diagnostics, {}
    device = diagnostics if sum(diagnostics.values()) > sum(answers.values()) else answers
    host = {"G gathered on the host": run.w * run.g.params} if run.sharded else {}
    return device, host


def largest_weight(shape: Shape) -> int:
    """Entries of a model's largest weight matrix (the embedding, or an MLP projection)."""
    return max(shape.embedding_params, shape.intermediate * shape.hidden)


def _checkpoint(run: _Run) -> tuple[dict[str, int], dict[str, int]]:
    """(device, host) parts: torch.distributed.checkpoint copies each process's tensors (its shards under FSDP)
    to the host one at a time as it writes them (gadbench.state.checkpoint; nothing is gathered); replicas
    first compare float64 checksums, one tensor at a time."""
    largest = largest_weight(run.g)
    staged = {"one tensor staged on the host": run.w * largest // run.s} if run.cuda else {}
    if run.sharded:
        return {}, staged
    return ({"float64 checksum of one tensor": 8 * largest} if run.launch.processes > 1 else {}), staged


def _load(run: _Run, main: bool) -> tuple[dict[str, int], dict[str, int]]:
    """(device, host) parts while G and D's backbone are built on the host and placed on the GPU. G's weights
    come from memory-mapped safetensors files: stored in the dtype G loads in, transformers uses them in place
    and only what is read is resident (D's copy reads the body; an untied LM head stays on disk), otherwise
    they are converted, with the files mapped meanwhile (the hub publishes bf16: an estimate when the files
    are not on disk). Sharded (gadbench.state.loading): process 0 (`main`) alone reads G (and a `d_model` D)
    in its files' dtype, all of it read for the broadcast; every process allocates its shards (on the host
    under cpu_offload) and receives one full tensor at a time."""
    from gadbench.capacity.shapes import file_dtype_bytes, weight_files

    files = weight_files(run.spec.student.path)
    stored = file_dtype_bytes(files[0]) if files else 2
    if run.sharded:
        shards = {"G shards": run.w * run.g.params // run.s}
        if run.d is not None:
            shards["D shards"] = run.w * run.d.params // run.s
        host = {"G read once, in its files' dtype": stored * run.g.params} if main else {}
        if main and run.spec.method.d_model and run.d is not None:
            host["D's model read once"] = stored * run.d.params
        received = {"one full tensor received": run.w * largest_weight(run.g)}
        if not run.cuda:
            host["runtime growth (measured)"] = CPU_RUNTIME_GROWTH + CPU_GROUP_GROWTH
            return {**shards, **received}, host
        if run.offload:
            return received, {**host, **shards}
        return {**shards, **received}, host
    in_place = stored == run.w
    if in_place:
        host = {"G's weights read in place": run.w * (run.g.body_params if run.d is not None else run.g.params)}
    else:
        host = {"G on the host": run.w * run.g.params,
                "G's weight files, mapped": sum(f.stat().st_size for f in files) if files else 2 * run.g.params}
    if run.d is not None:
        host["D on the host"] = run.w * run.d.params
    if not run.cuda:
        host["runtime growth (measured)"] = CPU_RUNTIME_GROWTH + (CPU_GROUP_GROWTH if run.launch.processes > 1 else 0)
    device = {}
    if run.cuda:
        device = {"G weights": run.w * run.g.params // run.s}
        if run.d is not None:
            device["D weights"] = run.w * run.d.params // run.s
    return device, host


def _fixes(run: _Run) -> dict[str, str]:
    t, r = run.t, run.spec.rollout
    tokens = (f"lower train.max_tokens_per_micro_batch (now {t.max_tokens_per_micro_batch})"
              if t.max_tokens_per_micro_batch else "set train.max_tokens_per_micro_batch")
    chunk = "" if t.logprob_chunk_tokens else ", set train.logprob_chunk_tokens"
    checkpointing = "" if t.gradient_checkpointing else ", set train.gradient_checkpointing"
    rows = (f"lower rollout.gpu_memory_utilization (now {r.gpu_memory_utilization})" if run.vllm else
            f"lower rollout.batch_size (now {r.batch_size or 'all'} sequences per generate call)")
    more = "use more GPUs or train.sharding: fsdp" if not run.sharded else "use more GPUs"
    group = run.prompt_max + (t.group_size + 1) * run.response if run.groups else (t.group_size + 1) * run.width
    d_fix = tokens + checkpointing
    if 0 < t.max_tokens_per_micro_batch <= group:  # D's group of a teacher response and its samples goes alone
        offload = "" if run.offload or not run.sharded else f", or students.{run.spec.student_name}.cpu_offload"
        d_fix = (f"D's micro-batch is one group of a teacher response and its {t.group_size} samples already"
                 f"{checkpointing}; {more}{offload}")
    return {"load": more, "rollout": rows, "d": d_fix, "ref": tokens + chunk,
            "g": tokens + chunk + checkpointing, "eval": rows + " or eval.d_diagnostics_prompts",
            "checkpoint": more}


def predict(spec, launch: Launch, lengths: Lengths = Lengths(), shape: Shape | None = None,
            d_shape: Shape | None = None, main: bool = True) -> Prediction:
    """Each phase's peak per process of run `spec` under `launch` (module docstring): of process 0 (`main`, the
    largest: it evaluates and writes checkpoints), or of any other. `shape` overrides the student's shape
    (else read without loading it), `d_shape` D's."""
    from gadbench.methods import stage_plan, uses_discriminator

    g = shape or shape_of(spec.student.path, spec.student.gguf_file)
    if g is None:
        return Prediction(spec.run_id, launch, [], note=f"the shape of `{spec.student.path}` is unknown (not a "
                          "local folder with config.json, a .gguf file or a model in gadbench.capacity.shapes.KNOWN)")
    d = None
    if uses_discriminator(spec):
        d = d_shape or discriminator_shape(shape_of(spec.method.d_model) if spec.method.d_model else g)
        if d is None:
            return Prediction(spec.run_id, launch, [], note=f"the shape of D's model `{spec.method.d_model}` is unknown")
    run = _Run(spec, launch, lengths, g, d)
    fixes = _fixes(run)
    found: dict[str, Phase] = {}

    def keep(name: str, resident: dict[str, int], device: dict[str, int], host: dict[str, int] | None = None) -> None:
        if run.offload:  # the sharded states are host memory (OFFLOADED)
            host = {**(host or {}), **{k: v for k, v in {**resident, **device}.items() if k in OFFLOADED}}
            resident = {k: v for k, v in resident.items() if k not in OFFLOADED}
            device = {k: v for k, v in device.items() if k not in OFFLOADED}
        parts = {**resident, **device}
        total = sum(parts.values())
        host_total = sum((host or {}).values())
        if not run.cuda:  # the accelerator is the host
            total += host_total
            parts.update(host or {})
            host_total = total
        if name not in found or total > found[name].device:
            found[name] = Phase(name, total, host_total, parts, fixes[name], sum(resident.values()))
        else:
            found[name].host = max(found[name].host, host_total)

    device, host = _load(run, main)
    keep("load", {}, device, host)
    resident_host = _resident_host(run)
    for planned in stage_plan(spec):
        stage, work = planned.stage, _work(spec, planned)
        resident = _resident(run, work, stage, d is not None)
        if work.rollouts:
            keep("rollout", resident, _rollout(run, run.local_batch, run.t.group_size), resident_host)
        if work.rollouts and d is not None:
            keep("d", resident, _d_pass(run, update="D AdamW" in resident), resident_host)
        if "reference" in resident:
            keep("ref", resident, _g_pass(run, sft=False, grad=False), resident_host)
        if "G AdamW" in resident:
            keep("g", resident, _g_pass(run, sft=not work.g_on_rollouts, grad=True), resident_host)
        device, host = _eval(run, d is not None, main)
        keep("eval", resident, device, {**resident_host, **host})
        device, host = _checkpoint(run)
        keep("checkpoint", resident, device, {**resident_host, **host})
    order = list(PHASES)
    phases = sorted(found.values(), key=lambda p: order.index(p.name))
    if run.cuda:
        for p in phases:
            p.host += HOST_RUNTIME
    return Prediction(spec.run_id, launch, phases)


# ------------------------------------------------------------------------------------------ the plan


class MemoryPlanError(GadbenchError, RuntimeError):
    """A run whose predicted memory exceeds the device it would run on, or a launch the plan cannot read."""


def launch_of(device: str, gpus: int | None = None, gpu_mem_gib: float | None = None,
              accelerate_config: str | None = None) -> Launch:
    """The launch a plan is made for: as stated (`--gpus N --gpu-mem GB`, or an accelerate config file's
    num_processes and num_machines), else this process's own (torchrun's WORLD_SIZE and LOCAL_WORLD_SIZE, the
    memory of the GPU it would use and of the node)."""
    processes, nodes, cpu = None, 1, device == "cpu"
    if gpus is not None and gpus < 1:
        raise MemoryPlanError(f"--gpus {gpus} is not a process count; give --gpus 1 or more.")
    if gpu_mem_gib is not None and not 0 < gpu_mem_gib < float("inf"):
        raise MemoryPlanError(f"--gpu-mem {gpu_mem_gib} is not a GPU's memory; give it in GiB, e.g. --gpu-mem 80.")
    if accelerate_config:
        import yaml

        try:
            cfg = yaml.safe_load(open(accelerate_config, encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise MemoryPlanError(f"cannot read the accelerate config {accelerate_config} ({e}); give a readable "
                                  "YAML file or --gpus N instead.") from None
        try:
            processes, nodes = int(cfg.get("num_processes", 1)), int(cfg.get("num_machines", 1))
            cpu = cpu or bool(cfg.get("use_cpu", False))
        except (AttributeError, TypeError, ValueError):
            processes = nodes = 0
        if processes < 1 or nodes < 1:
            raise MemoryPlanError(f"the accelerate config {accelerate_config} has no usable num_processes and "
                                  "num_machines (positive integers); fix the file or give --gpus N instead.")
    if gpus:
        processes = gpus
    stated = processes is not None
    if not stated:
        processes = int(os.environ.get("WORLD_SIZE", "1"))
        nodes = max(1, processes // int(os.environ.get("LOCAL_WORLD_SIZE", processes)))
    device_bytes = int(gpu_mem_gib * GiB) if gpu_mem_gib else None
    host = None if stated else _host_memory()
    if not cpu and not stated and device_bytes is None:
        device_bytes = _visible_gpu()
        if device_bytes is None and device == "auto":  # no GPU here: an `auto` run trains on the CPU
            cpu = True
        elif device_bytes is None:  # a GPU run planned where there is none: its memory is unknown
            host = None
    return Launch(processes, nodes, "cpu" if cpu else "cuda", device_bytes, host)


def _visible_gpu() -> int | None:
    """The memory of the GPU this process would use; None without one."""
    import torch

    if not torch.cuda.is_available():
        return None
    local = int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count()
    return torch.cuda.get_device_properties(local).total_memory


def _host_memory() -> int | None:
    try:
        for line in open("/proc/meminfo", encoding="ascii"):
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def usable_device_bytes(launch: Launch) -> int | None:
    """What the phases may use of one GPU: its memory less the reserve and fragmentation (estimates)."""
    return int(launch.device_bytes * DEVICE_USABLE) - DEVICE_RESERVE if launch.device_bytes else None


def problem(pred: Prediction) -> str | None:
    """Why `pred` does not fit its launch, in one sentence with the setting that fixes it; None when it fits
    (or the memory is not known)."""
    launch = pred.launch
    if not pred.phases:
        return None
    if launch.device == "cuda":
        usable = usable_device_bytes(launch)
        worst = max(pred.phases, key=lambda p: p.device)
        if usable and worst.device > usable:
            return (f"run {pred.run_id}: {PHASES[worst.name]} needs about {worst.device / GiB:.1f} GiB per GPU, more "
                    f"than the {usable / GiB:.1f} GiB usable of {launch.device_bytes / GiB:.0f} (estimate); "
                    f"{worst.fix}, or rerun with --no-memory-check to try anyway")
    if launch.host_bytes:
        per_node = launch.local * max(p.host for p in pred.phases) + (HOST_RUNTIME_CPU * launch.local
                                                                      if launch.device == "cpu" else 0)
        worst = max(pred.phases, key=lambda p: p.host)
        if per_node > launch.host_bytes:
            return (f"run {pred.run_id}: {PHASES[worst.name]} needs about {per_node / GiB:.1f} GiB of host memory "
                    f"per node ({launch.local} processes), more than its {launch.host_bytes / GiB:.0f} GiB; "
                    f"{worst.fix}, or rerun with --no-memory-check to try anyway")
    return None


def predictions(suite, launch: Launch) -> list[Prediction]:
    from gadbench.suite import runs_of

    return [predict(spec, launch) for spec in runs_of(suite)] if suite.toy is None else []


def check(suite, launch: Launch) -> None:
    """Stop before anything loads when a run of `suite` would not fit `launch` (MemoryPlanError, one line)."""
    for pred in predictions(suite, launch):
        if text := problem(pred):
            raise MemoryPlanError(text + ".")


def plan_text(suite, launch: Launch) -> str:
    """The dry run's memory table: each run's peak per phase and process (GiB), and whether it fits."""
    from tabulate import tabulate

    preds = predictions(suite, launch)
    if not preds:
        return ""
    usable = usable_device_bytes(launch)
    rows, notes, seen = [], [], set()
    for pred in preds:
        name = pred.run_id.rsplit("--", 2)[0]  # student--method (seeds share a plan)
        if name in seen:
            continue
        seen.add(name)
        if not pred.phases:
            rows.append([name] + ["?"] * (len(PHASES) + 2))
            notes.append(f"{name}: {pred.note}")
            continue
        by = {p.name: p for p in pred.phases}
        fits = "?" if not (usable or launch.host_bytes) else ("no" if problem(pred) else "yes")
        rows.append([name] + [f"{by[k].device / GiB:.1f}" if k in by else "-" for k in PHASES]
                    + [f"{max(p.host for p in pred.phases) / GiB:.1f}", fits])
        if fits == "no":
            notes.append(problem(pred))
    where = launch.describe() + (f" ({usable / GiB:.1f} GiB usable, estimate)" if usable else "")
    head = (f"\nmemory per process, GiB, worst-case lengths ({where}; "
            f"{'accelerator' if launch.device == 'cuda' else 'host = accelerator'} per phase, then host peak):")
    table = tabulate(rows, headers=["run", *PHASES.values(), "host", "fits"], tablefmt="github")
    return "\n".join([head, table, *notes])
