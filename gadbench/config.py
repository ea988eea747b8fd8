"""Typed, frozen suite configuration: YAML loading with `extends:`, `--set` overrides and validation.

A suite file is a UTF-8 YAML mapping whose keys are the fields of `SuiteConfig`. `extends: NAME` deep-merges
this file over suite NAME, and `extends: PATH.yaml` over that file, relative to this one (a `null` value
deletes an inherited key, e.g. a method). Every value is type-checked;
an unknown key, a wrong type, a bad enum value or an out-of-range number stops with one line naming the
key, the file and the fix (for unknown keys: the closest valid key).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import itertools
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from gadbench import GadbenchError, shown


class ConfigError(GadbenchError, ValueError):
    """A suite configuration problem, stated in one sentence with its fix."""


_DOTTED = re.compile(r"[A-Za-z_][\w.]*[.:][A-Za-z_]\w*")


def setting(default: Any = dataclasses.MISSING, doc: str = "", paper: str = "", lo: float | None = None,
            hi: float | None = None, factory: Any = dataclasses.MISSING) -> Any:
    """A config field with its one-line documentation (`gadbench suites --explain KEY` prints it), the
    paper's value where it has one, and the range a number must lie in."""
    meta = {"doc": doc, "paper": paper, "range": (lo, hi)}
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


INT_MAX = 2**63 - 1  # every integer setting: what torch, numpy and the RNGs take


@dataclass(frozen=True)
class ModelConfig:
    """A causal LM: `world:<name>` (the synthetic world's student), a hub id, a local folder or a .gguf file."""

    path: str = setting(doc="`world:tiny|small`, a hub id, a local folder, a .gguf file, or `pkg:MODULE/FILE.gguf` "
                            "(a file shipped in an installed package)")
    template: Literal["chat", "paper", "plain"] = setting(
        "chat", "how a prompt is shown: the model's chat template, the paper's Fig. 7 instruction template inside "
        "it, or the raw text", paper="paper")
    gguf_file: str | None = setting(None, "the .gguf file inside `path` when `path` is a folder")
    dtype: Literal["float32", "bfloat16", "float16"] = setting("float32", "dtype the weights load in (bf16 "
                                                                "training keeps fp32 weights and autocasts)")


@dataclass(frozen=True)
class MethodConfig:
    """One training method; the paper's ablations are switches on `gad`."""

    kind: str = setting(doc="a method of gadbench.methods: seqkd, gad or gad-offpolicy (the paper's off-policy D)")
    generator_warmup: bool = setting(True, "gad: train G with SFT during the warmup (Table 3 turns it off)",
                                     paper="true")
    discriminator_warmup: bool = setting(True, "gad: train D during the warmup (Table 3 turns it off)",
                                         paper="true")
    discriminator: Literal["online", "frozen-after-warmup", "none"] = setting(
        "online", "gad's D in the adversarial stage: trained every step, frozen after the joint warmup, or absent "
        "(GRPO on `reward`)", paper="online")
    d_loss: Literal["bt", "ce"] = setting("bt", "D's loss: Bradley-Terry (teacher over student) or the GAN "
                                          "cross-entropy (Table 4)", paper="bt")
    d_model: str | None = setting(None, "build D from this model instead of a copy of the student (Table 5)")
    reward: str = setting("discriminator", "the GRPO reward: D's score, or with discriminator: none rouge-l, gold "
                                           "(world only) or a `package.module:function`")
    search: dict[str, tuple[float, ...]] = setting(
        doc="hyperparameter search: train setting -> values; each combination is a run variant "
            "`<method>+<key>=<value>`, and reports keep the one with the best validation score",
        paper="lr searched over [1e-6, 5e-6] for every method", factory=dict)
    description: str = setting("", "free text shown in `gadbench suites` and reports")

    def check(self) -> str | None:
        """`kind` names a method of gadbench.methods; the reward must match the discriminator switch (see
        gadbench.methods.rewards)."""
        from gadbench.methods import METHODS

        if self.kind not in METHODS:
            close = difflib.get_close_matches(self.kind, list(METHODS), n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            return f"kind `{self.kind}` is not a method{hint}; use one of {', '.join(METHODS)}"
        problem = METHODS[self.kind].check(self)
        if problem:
            return problem
        numeric = {k for k, tp in typing.get_type_hints(TrainConfig).items() if tp in (int, float)}
        for key, values in self.search.items():
            if key not in numeric:
                close = difflib.get_close_matches(key, sorted(numeric), n=1)
                hint = f" (did you mean `{close[0]}`?)" if close else ""
                return f"search key `{key}` is not a numeric train setting{hint}"
            if not values:
                return f"search key `{key}` has no values; list at least one"
        fixed = self.reward in ("rouge-l", "gold") or _DOTTED.fullmatch(self.reward) is not None
        if self.reward != "discriminator" and not fixed:
            return (f"reward `{self.reward}` is unknown; use discriminator, rouge-l, gold or a dotted "
                    "`package.module:function`")
        if self.kind == "gad" and self.discriminator == "none" and not fixed:
            return "discriminator: none needs a fixed reward; set reward to rouge-l, gold or a dotted path"
        if fixed and not (self.kind == "gad" and self.discriminator == "none"):
            return f"reward `{self.reward}` replaces the discriminator; it needs kind: gad with discriminator: none"
        return None


@dataclass(frozen=True)
class DatasetConfig:
    """Where examples come from: `world` (synthetic), a named source (see gadbench.data) or a local file."""

    source: str = setting(doc="world, a named source (lmsys-gad, dolly, selfinst, vicuna, mtbench, sharegpt, ...; "
                              "docs/data.md), jsonl or parquet")
    path: str | None = setting(None, "a local file; wins over $GADBENCH_DATA_DIR and the hub")
    split: str = setting("train", "the split to read (world: id or ood)")
    limit: int | None = setting(None, "read at most this many usable rows", lo=1)
    prompt_field: str | None = setting(None, "jsonl/parquet: the column holding the prompt")
    response_field: str | None = setting(None, "jsonl/parquet: the column holding the teacher response")
    id_field: str | None = setting(None, "jsonl/parquet: the column holding a row id")
    bad_rows: Literal["skip", "error"] = setting("skip", "a malformed row is skipped and counted, or stops the load "
                                                         "naming file and row")
    max_chars: int | None = setting(None, "skip (and count) rows whose prompt is longer than this", lo=1)
    max_response_chars: int | None = setting(None, "skip (and count) rows whose teacher response is longer than "
                                                   "this", lo=1)
    max_repetition: float | None = setting(None, "skip (and count) rows whose teacher response repeats itself: "
                                                 "the share of repeated word 4-grams above this (0.5 catches "
                                                 "degenerate loops)", lo=0.0, hi=1.0)
    multi_turn: Literal["first", "skip"] = setting("first", "a conversation with several user turns: keep its "
                                                            "first turn, or skip it", paper="first (unconfirmed)")
    hub_id: str | None = setting(None, "read this hub dataset instead of the source's default")
    test_fraction: float = setting(0.02, "sharegpt: the share of conversation ids hashed into the test split",
                                   lo=0.0, hi=1.0)


@dataclass(frozen=True)
class DataConfig:
    train: DatasetConfig = setting(doc="the training prompts (and teacher responses, for teacher: dataset)")
    eval: dict[str, DatasetConfig] = setting(doc="the test sets, by the name reports show",
                                             paper="lmsys (500), dolly (500), selfinst (252), vicuna (80)",
                                             factory=dict)
    validation_size: int = setting(0, "training prompts held out for checkpoint selection and D's diagnostics",
                                   paper="none (the paper selected on the test sets)", lo=0)


@dataclass(frozen=True)
class TeacherConfig:
    """The black-box teacher, asked once per prompt without a response (answers cached)."""

    spec: str = setting("dataset", "dataset (responses in the data), program (the world), openai:MODEL[@URL] or "
                                   "hf:PATH", paper="dataset (GPT-5-Chat responses, released)")
    api_key_env: str = setting("OPENAI_API_KEY", "the environment variable holding an API teacher's key")
    concurrency: int = setting(8, "requests in flight to an API teacher", lo=1)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; the defaults are the paper's."""

    steps: int = setting(2400, "G's training steps (a gad-offpolicy run's D-only steps come on top)",
                         paper="2400 (3 epochs of ~800)", lo=1)
    warmup_steps: int = setting(800, "gad: joint warmup steps; gad-offpolicy: SeqKD steps", paper="800 (1 epoch)",
                                lo=0)
    d_only_steps: int = setting(10, "gad: the first warmup steps train D alone", paper="10", lo=0)
    offpolicy_d_steps: int = setting(1600, "gad-offpolicy: steps of D alone against the frozen SeqKD student",
                                     paper="2 epochs", lo=0)
    batch_size: int = setting(256, "prompts per step", paper="256", lo=1)
    micro_batch_size: int = setting(0, "sequences per forward/backward (0: the whole batch); the step is the same",
                                    lo=0)
    group_size: int = setting(8, "samples per prompt (GRPO's group; D pairs each with the teacher response)",
                              paper="8", lo=2)
    temperature: float = setting(0.8, "sampling temperature of rollouts; log-probs are of this tempered policy",
                                 paper="0.8", lo=0.0)
    top_p: float = setting(1.0, "nucleus of rollout sampling", paper="1.0 (verl default)", lo=0.0, hi=1.0)
    max_prompt_tokens: int = setting(2048, "prompts are left-truncated to this", paper="2048", lo=1)
    max_response_tokens: int = setting(1536, "rollouts stop here; teacher responses are cut to it (then EOS)",
                                       paper="1536", lo=1)
    lr_sft: float = setting(5e-6, "G's learning rate in SFT stages (SeqKD, gad-offpolicy's SeqKD)", paper="5e-6",
                            lo=0.0)
    lr_generator: float = setting(1e-6, "G's learning rate in the adversarial stage", paper="1e-6", lo=0.0)
    lr_warmup: float = setting(1e-6, "G's learning rate in GAD's warmup", paper="1e-6 (5e-6 with the Qwen teacher)",
                               lo=0.0)
    lr_discriminator: float = setting(1e-6, "D's learning rate", paper="1e-6 (scripts)", lo=0.0)
    weight_decay: float = setting(0.01, "AdamW weight decay of G and D", paper="0.01 (verl default)", lo=0.0)
    kl_beta: float = setting(0.001, "weight of the k3 KL to the stage's reference in GRPO", paper="0.001", lo=0.0)
    clip_ratio: float = setting(0.2, "PPO ratio clip", paper="0.2 (verl default)", lo=0.0)
    grad_clip: float = setting(0.2, "gradient-norm clip of G and D (0: none)", paper="0.2 (scripts)", lo=0.0)
    checkpoint_every: int = setting(50, "steps between checkpoints (stage ends are always checkpointed)",
                                    paper="50", lo=1)
    keep_checkpoints: int = setting(2, "newest checkpoints kept, besides stage ends", lo=1)
    length_warning_ratio: float = setting(2.0, "warn when rollouts grow past this many times the teacher's length",
                                          lo=1.0)
    device: Literal["auto", "cpu", "cuda"] = setting("auto", "where to train (auto: cuda when visible)")
    precision: Literal["fp32", "bf16"] = setting("fp32", "bf16: forwards autocast to bf16 over fp32 weights and "
                                                         "optimizer states, and hf rollouts generate from a bf16 "
                                                         "copy of G (GPUs, or CPUs with AVX512-BF16 or AMX)")
    gradient_checkpointing: bool = setting(False, "recompute activations in backward (G and D)", paper="true")
    sharding: Literal["none", "fsdp", "hsdp"] = setting(
        "none", "several processes: a replica each, FSDP2 shards over all, or shards within a node and replicas "
        "across nodes (docs/scale.md)")
    cpu_threads: int = setting(0, "torch threads on CPU (0: torch's default)", lo=0)
    shared_prefix: bool = setting(True, "training forwards compute each prompt once for its group of samples (G, "
                                        "reference, D); the same numbers up to rounding, 37-40% fewer tokens; "
                                        "off under FSDP or gradient checkpointing")
    portable_cpu: bool = setting(False, "pin x86 CPU kernels to their AVX2 code paths, so a CPU run gives the same "
                                        "bits on AVX2 and AVX-512 machines")


@dataclass(frozen=True)
class RolloutConfig:
    """Rollout generation (docs/scale.md)."""

    engine: Literal["hf", "vllm"] = setting("hf", "hf (transformers, KV cache, batched left-padded) or vllm (an "
                                                  "engine fed G's weights after each update)",
                                            paper="vllm")
    batch_size: int = setting(0, "hf: prompts per generate call (0: all)", lo=0)
    hf_fast: bool = setting(True, "hf: a prompt's KV cache shared by its samples; bf16 copies decode without autocast "
                                  "and, on CPU, with packed attention (false: one plain generate call, bit-for-bit the "
                                  "rollouts of earlier versions)")
    gpu_memory_utilization: float = setting(0.3, "vllm: share of GPU memory it may take beside training",
                                            paper="0.7", lo=0.05, hi=0.95)
    enforce_eager: bool = setting(False, "vllm: skip CUDA graphs / torch.compile (faster start, slower decoding)")


@dataclass(frozen=True)
class EvalConfig:
    every: int = setting(50, "steps between evaluations (stage ends and the last step are always evaluated)",
                         paper="50", lo=1)
    max_new_tokens: int = setting(1536, "greedy answers stop here", paper="1536", lo=1)
    judges: tuple[str, ...] = setting(("gad-paper",), "judges of the answers: gad-paper, mtbench-single, pairwise "
                                                     "(LLM), rouge-l, embedding, gold (world)", paper="gad-paper")
    samples: int = setting(0, "also score this many answers per prompt sampled at temperature 1 (world)", lo=0)
    selection: Literal["validation", "paper", "last"] = setting(
        "validation", "the checkpoint a run reports: best on the validation split, best on the test sets with the "
        "length in range (the paper's), or the last", paper="paper")
    selection_metric: str = setting("", "the metric selection maximises (default: the first judge's score)")
    bootstrap: int = setting(2000, "bootstrap resamples of every interval", lo=100)


@dataclass(frozen=True)
class JudgeConfig:
    model: str = setting("gpt-4o", "the LLM judge's model name at the endpoint", paper="gpt-4o")
    base_url: str | None = setting(None, "an OpenAI-compatible endpoint (default: OpenAI's)")
    api_key_env: str = setting("OPENAI_API_KEY", "the environment variable holding the judge's key")
    concurrency: int = setting(8, "judge requests in flight", lo=1)
    price_per_mtok: tuple[float, ...] = setting((), "USD per million prompt and completion tokens, for the cost "
                                                    "estimate and report; empty: the list price of `model` "
                                                    "(gadbench/llm/pricing.py), unknown for other models")
    max_tokens: int = setting(1024, "the most tokens a judge reply may take", lo=1)
    guided: bool = setting(False, "constrain each verdict reply to the protocol's verdict lines (vLLM's "
                                  "guided_choice, honoured by gadbench serve): for small judges that cannot follow "
                                  "the format; not the paper's protocol", paper="false")

    def check(self) -> str | None:
        if self.price_per_mtok and (len(self.price_per_mtok) != 2 or min(self.price_per_mtok) < 0):
            return (f"price_per_mtok = {list(self.price_per_mtok)} must be two prices >= 0 (USD per million prompt "
                    "and completion tokens), or [] for the judge model's list price")
        return None


@dataclass(frozen=True)
class BudgetConfig:
    """How methods are matched, and the mean lengths the dry-run plan assumes for its estimates."""

    match: Literal["steps", "flops"] = setting("steps", "what every method gets the same of", paper="steps")
    tolerance: float = setting(0.05, "a run outside this relative difference is flagged", lo=0.0, hi=1.0)
    assumed_prompt_tokens: int = setting(100, "mean prompt length the dry-run estimates assume", lo=1)
    assumed_response_tokens: int = setting(350, "mean response length the dry-run estimates assume", lo=1)


@dataclass(frozen=True)
class Requirements:
    """What a suite needs before it may start; `gadbench run` stops at once when something is missing."""

    gpu: bool = setting(False, "a CUDA GPU")
    judge_endpoint: bool = setting(False, "a judge key (judge.api_key_env) or judge.base_url")
    online_data: bool = setting(False, "hub data (or local paths / $GADBENCH_DATA_DIR)")


@dataclass(frozen=True)
class ToyConfig:
    """The paper's Fig. 5 toy: a 10-class Gaussian-mixture teacher, a single discretised Gaussian student."""

    classes: int = setting(10, "number of classes", paper="10", lo=2)
    teacher_means: tuple[float, ...] = setting((1.5, 6.5), "the mixture's component means")
    teacher_stds: tuple[float, ...] = setting((0.8, 1.0), "the mixture's component standard deviations")
    teacher_weights: tuple[float, ...] = setting((0.7, 0.3), "the mixture's component weights")
    teacher_samples: int = setting(4000, "teacher samples the methods see", lo=10)
    steps: int = setting(600, "optimisation steps per method", lo=1)
    batch_size: int = setting(256, "samples per step", lo=2)
    lr_student: float = setting(0.05, "the student's learning rate", lo=0.0)
    lr_discriminator: float = setting(0.05, "the discriminator's learning rate", lo=0.0)
    init_mean: float = setting(4.5, "the student's initial mean")
    init_std: float = setting(3.0, "the student's initial standard deviation")


@dataclass(frozen=True)
class SuiteConfig:
    name: str = setting(doc="the suite's name (results/<name>/)")
    students: dict[str, ModelConfig] = setting(doc="the students, by the name reports show", factory=dict)
    methods: dict[str, MethodConfig] = setting(doc="the methods, by the name reports show", factory=dict)
    data: DataConfig = setting(DataConfig(train=DatasetConfig(source="world")), "training, validation and test data")
    toy: ToyConfig | None = setting(None, "the Fig. 5 toy instead of LLM training")
    description: str = setting("", "one line shown by `gadbench suites`")
    seeds: tuple[int, ...] = setting((0,), "every run is repeated with each seed", paper="one run")
    teacher: TeacherConfig = setting(TeacherConfig(), "the black-box teacher")
    train: TrainConfig = setting(TrainConfig(), "optimisation")
    rollout: RolloutConfig = setting(RolloutConfig(), "rollout generation")
    eval: EvalConfig = setting(EvalConfig(), "evaluation and checkpoint selection")
    judge: JudgeConfig = setting(JudgeConfig(), "the LLM judge")
    budget: BudgetConfig = setting(BudgetConfig(), "matched budgets")
    requires: Requirements = setting(Requirements(), "what the suite needs to start")
    baseline: str | None = setting(None, "a regression baseline file compared after the run (the ci suite)")
    paper_baseline: bool = setting(False, "show the paper's published numbers beside ours in the report")


@dataclass(frozen=True)
class RunSpec:
    """One training run of a suite: a student x method x seed, with the suite's shared settings."""

    suite: str
    student_name: str
    student: ModelConfig
    method_name: str
    method: MethodConfig
    seed: int
    teacher: TeacherConfig
    data: DataConfig
    train: TrainConfig
    rollout: RolloutConfig
    eval: EvalConfig
    judge: JudgeConfig
    budget: BudgetConfig
    variant: dict[str, float] = field(default_factory=dict)  # this run's point of its method's search

    @property
    def config_hash(self) -> str:
        return hashlib.sha256(to_yaml(self).encode()).hexdigest()[:8]

    @property
    def run_id(self) -> str:
        return f"{self.student_name}--{self.method_name}--s{self.seed}--{self.config_hash}"


def runs_of(suite: SuiteConfig) -> list[RunSpec]:
    """Every (student x method x search point x seed) run of a suite, in a fixed order."""
    shared = {k: getattr(suite, k) for k in ("teacher", "data", "rollout", "eval", "judge", "budget")}
    return [
        RunSpec(suite=suite.name, student_name=s, student=sc, method_name=name, method=mc, seed=seed,
                train=train, variant=point, **shared)
        for s, sc in suite.students.items()
        for m, mc in suite.methods.items()
        for name, point, train in search_points(suite.train, m, mc)
        for seed in suite.seeds
    ]


def search_points(train: TrainConfig, name: str, method: MethodConfig) -> list[tuple[str, dict, TrainConfig]]:
    """(variant name, overrides, train settings) of each combination of `method.search` (one point, the
    method itself, without a search); every point's settings are validated like the suite's."""
    keys, hints = list(method.search), typing.get_type_hints(TrainConfig)
    whole = lambda k, v: int(v) if hints[k] is int and float(v).is_integer() else v  # noqa: E731  (20.0 -> 20)
    points = [{k: whole(k, v) for k, v in zip(keys, values, strict=True)}
              for values in itertools.product(*method.search.values())]
    out = []
    for point in points or [{}]:
        label = name + "".join(f"+{k}={v:g}" for k, v in point.items())
        settings = build(TrainConfig, {**to_dict(train), **point}, f"methods.{name}.search", "train")
        out.append((label, point, settings))
    return out


# ----------------------------------------------------------------------------------------------- loading


def experiments_dir() -> Path:
    """`$GADBENCH_EXPERIMENTS`, else the `experiments/` folder of the checkout this package runs from."""
    env = os.environ.get("GADBENCH_EXPERIMENTS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "experiments"


def suite_names() -> list[str]:
    """The suites: one per `experiments/*.yaml` file, named after it."""
    return sorted(p.stem for p in experiments_dir().glob("*.yaml"))


def suite_path(name: str) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    path = experiments_dir() / f"{name}.yaml"
    if not path.exists():
        close = difflib.get_close_matches(name, suite_names(), n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"available: {', '.join(suite_names())}."
        raise ConfigError(f"no suite named `{name}` in {experiments_dir()}; {hint}")
    return path


def get_suite(name: str, overrides: list[str] = ()) -> SuiteConfig:
    """A suite by name (or YAML path), with `--set` overrides; `extends:` resolves within experiments/."""
    return load_suite(suite_path(name), overrides, search_dir=experiments_dir())


def load_suite(path: str | Path, overrides: list[str] = (), search_dir: Path | None = None) -> SuiteConfig:
    """Load a suite file, resolve `extends:`, apply `--set a.b=c` overrides, and validate."""
    path = Path(path)
    raw = _resolve_extends(path, search_dir or path.parent, seen=())
    for item in overrides:
        apply_override(raw, item)
    return build(SuiteConfig, raw, str(path), "")


def _read_yaml(path: Path) -> dict:
    """The mapping in suite file `path`; anything else stops with a ConfigError naming the file and the fix."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found; check the suite name with `gadbench suites`.") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror}); check the path and its permissions.") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigError(f"{path}: byte 0x{data[e.start]:02x} at line {line} is not UTF-8 text; save the file "
                          "as UTF-8.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or getattr(e, "reason", None) or type(e).__name__
        raise ConfigError(f"{path}: malformed YAML{where} ({problem}); fix the syntax there.") from None
    except RecursionError:
        raise ConfigError(f"{path}: the YAML is nested too deeply to read; flatten it.") from None
    except ValueError as e:  # a value YAML types but Python cannot hold: 2025-13-45, an int of 5000 digits
        raise ConfigError(f"{path}: a value cannot be read ({str(e).split(';')[0]}); fix it, or quote it to make "
                          "it a string.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a suite file must be a YAML mapping of settings; found {type(data).__name__}.")
    return data


def _resolve_extends(path: Path, search_dir: Path, seen: tuple[str, ...]) -> dict:
    if str(path.resolve()) in seen:
        raise ConfigError(f"{path}: `extends` forms a cycle ({' -> '.join(seen)}); remove one of them.")
    data = _read_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    base = _resolve_extends(_parent_file(path, parent, search_dir), search_dir, seen + (str(path.resolve()),))
    return _deep_merge(base, data)


def _parent_file(path: Path, parent: Any, search_dir: Path) -> Path:
    """The file that `extends: parent` in suite file `path` names: a path ending in .yaml/.yml, relative to
    `path`'s folder, or a suite name, NAME.yaml in `search_dir`."""
    if not isinstance(parent, str) or not parent.strip() or "\0" in parent:
        raise ConfigError(f"{path}: `extends` = {shown(parent)} is neither a suite name nor a .yaml path; write "
                          "e.g. `extends: smoke` or `extends: ../smoke.yaml`.")
    by_path = parent.endswith((".yaml", ".yml"))
    found = path.parent / parent if by_path else search_dir / f"{parent}.yaml"
    try:
        exists = found.is_file()
    except OSError:  # e.g. a name too long for the filesystem
        exists = False
    if not exists:
        how = (f"a path is read from the folder of {path.name}" if by_path
               else f"a name without .yaml is a suite in {search_dir}")
        raise ConfigError(f"{path}: `extends: {parent}` names no suite file {found} ({how}); fix the name.")
    return found


def _deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if v is None:  # null deletes an inherited entry, i.e. resets it to its default
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def apply_override(raw: dict, item: str) -> None:
    """Apply one `--set KEY=VALUE` (VALUE parsed as YAML; null removes the key) to a raw config mapping."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set train.steps=20.")
    key, _, value = item.partition("=")
    parts = key.strip().split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node.get(part), dict):
            node[part] = {} if part not in node else _not_mapping(key, ".".join(parts[: i + 1]))
        node = node[part]
    try:
        parsed = yaml.safe_load(value)
    except (yaml.YAMLError, ValueError, RecursionError):  # not YAML, or a value Python cannot hold: a string
        parsed = value
    if parsed is None:  # `--set methods.gad-ce=null` removes an entry or resets a setting to its default
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = parsed


def _not_mapping(key: str, prefix: str) -> dict:
    raise ConfigError(f"--set {key}: {prefix} is a single value, not a group of settings; set {prefix}=VALUE.")


def build(cls: type, raw: Any, source: str, where: str) -> Any:
    """Build dataclass `cls` from plain data, type-checking each field; `where` is the dotted key path."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: `{where or '<top>'}` must be a mapping of settings, got {shown(raw)}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(_text(key), list(fields), n=1, cutoff=0.5)
            hint = f"; did you mean `{_join(where, close[0])}`?" if close else f"; valid keys: {', '.join(fields)}."
            raise ConfigError(f"{source}: unknown key `{_join(where, _text(key))}`{hint}")
    kwargs = {}
    for name, f in fields.items():
        key = _join(where, name)
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{source}: missing required key `{key}`; add it to the suite.")
            continue
        value = _coerce(hints[name], raw[name], source, key)
        lo, hi = f.metadata.get("range", (None, None))
        if isinstance(value, int | float) and not isinstance(value, bool):
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                bounds = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
                raise ConfigError(f"{source}: `{key}` = {shown(value)} is out of range {bounds}; pick a value inside it.")
        kwargs[name] = value
    obj = cls(**kwargs)
    problem = obj.check() if hasattr(obj, "check") else None
    if problem:
        raise ConfigError(f"{source}: `{where or '<top>'}`: {problem}.")
    return obj


def _coerce(tp: Any, value: Any, source: str, key: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, source, key)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, source, key)
            except ConfigError as e:
                errors.append(e)
        raise errors[0]
    if origin is Literal:
        if value not in args:
            text = _text(value)
            close = difflib.get_close_matches(text, [str(a) for a in args], n=1) or [
                str(a) for a in args if str(a).startswith(text)][:1]
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            choices = ", ".join(str(a) for a in args)
            raise ConfigError(f"{source}: `{key}` = {shown(value)} is not one of {choices}{hint}; use one of those.")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: `{key}` must be a mapping of name -> settings, got {shown(value)}.")
        return {_text(k): _coerce(args[1], v, source, _join(key, _text(k))) for k, v in value.items()}
    if origin is tuple:
        items = value if isinstance(value, list | tuple) else [value]
        return tuple(_coerce(args[0], v, source, f"{key}[{i}]") for i, v in enumerate(items))
    if tp is float and not isinstance(value, bool) and isinstance(value, int | float | str):
        return _as_float(value, source, key)
    if tp is int and type(value) is int and abs(value) > INT_MAX:
        raise ConfigError(f"{source}: `{key}` = {shown(value)} is out of range [-{INT_MAX}, {INT_MAX}]; pick a "
                          "value inside it.")
    if tp in (int, str, bool) and type(value) is tp:
        return value
    raise ConfigError(
        f"{source}: `{key}` = {shown(value)} should be of type {getattr(tp, '__name__', tp)}; write it as one."
    )


def _as_float(value: int | float | str, source: str, key: str) -> float:
    """`value` as a float setting: a number, or text that reads as one ("3e-6"); never NaN."""
    try:
        number = float(value)
    except OverflowError:
        raise ConfigError(f"{source}: `{key}` = {shown(value)} is too large for a float; write a smaller number.") from None
    except ValueError:
        raise ConfigError(f"{source}: `{key}` = {shown(value)} should be of type float; write it as one.") from None
    if math.isnan(number):
        raise ConfigError(f"{source}: `{key}` is NaN; write a number.")
    return number


def _text(value: Any) -> str:
    """A key or value as message text: a string as it is, anything else as `shown` writes it."""
    return value if isinstance(value, str) else shown(value)


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


# ------------------------------------------------------------------------------------------ explaining


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return " | ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is dict:
        return f"mapping of name -> {_type_name(args[1])}"
    if origin is tuple:
        return f"list of {_type_name(args[0])}"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _settings(cls: type, prefix: str):
    """(dotted key, type, field) of every setting under `cls`, groups expanded (mapping entries as `<name>`)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, key = hints[f.name], prefix + f.name
        yield key, tp, f
        entry = typing.get_args(tp)[1] if typing.get_origin(tp) is dict else tp
        inner = next((a for a in (entry, *typing.get_args(entry)) if dataclasses.is_dataclass(a)), None)
        if inner is not None:
            yield from _settings(inner, f"{key}.<name>." if entry is not tp else f"{key}.")


def _default(f: dataclasses.Field) -> str:
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
        return "required"
    value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    return "a group" if dataclasses.is_dataclass(value) else f"default {to_dict(value)!r}"


def explain(key: str = "") -> list[str]:
    """One line per suite setting under `key` ("" for all): key, type, default, range, what it does and the
    paper's value. Mapping entries are written `<name>` (`methods.<name>.kind`); any name matches them."""
    parts = key.split(".") if key else []
    lines = []
    for k, tp, f in _settings(SuiteConfig, ""):
        names = k.split(".")
        if len(names) < len(parts) or not all(n in (q, "<name>") for q, n in zip(parts, names, strict=False)):
            continue
        lo, hi = f.metadata.get("range", (None, None))
        bounds = "" if (lo, hi) == (None, None) else f", range [{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        paper = f" (paper: {f.metadata['paper']})" if f.metadata.get("paper") else ""
        lines.append(f"{k} ({_type_name(tp)}, {_default(f)}{bounds}): {f.metadata.get('doc', '')}{paper}")
    if not lines:
        close = difflib.get_close_matches(key, [k for k, _, _ in _settings(SuiteConfig, "")], n=1)
        hint = f"; did you mean `{close[0]}`?" if close else "; `gadbench suites --explain` lists them all."
        raise ConfigError(f"no setting `{key}`{hint}")
    return lines


# --------------------------------------------------------------------------------------------- dumping


def to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    return obj


def to_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=True)


def run_spec_from_dict(raw: dict, source: str = "config.yaml") -> RunSpec:
    """Rebuild a RunSpec from a run directory's config.yaml (used by --resume and `gadbench eval`)."""
    return build(RunSpec, raw, source, "")
