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
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from gadbench.errors import OneLineError, shown


class ConfigError(OneLineError, ValueError):
    """A suite configuration problem, stated in one sentence with its fix."""


_DOTTED = re.compile(r"[A-Za-z_][\w.]*[.:][A-Za-z_]\w*")


INT_MAX = 2**63 - 1  # every integer setting: what torch, numpy and the RNGs take


def _range(lo: float | None = None, hi: float | None = None) -> dict:
    return {"range": (lo, hi)}


@dataclass(frozen=True)
class ModelConfig:
    """A causal LM: `world:<name>` (the synthetic world's student), a hub id, a local folder or a .gguf file."""

    path: str
    template: Literal["chat", "paper", "plain"] = "chat"
    gguf_file: str | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"


@dataclass(frozen=True)
class MethodConfig:
    """One training method; the paper's ablations are switches on `gad`."""

    kind: str
    generator_warmup: bool = True
    discriminator_warmup: bool = True
    discriminator: Literal["online", "frozen-after-warmup", "none"] = "online"
    d_loss: Literal["bt", "ce"] = "bt"
    d_model: str | None = None
    reward: str = "discriminator"
    # hyperparameter search: TrainConfig field -> values; every combination becomes a run variant named
    # `<method>+<field>=<value>...`, and reports keep the variant with the best validation score
    search: dict[str, tuple[float, ...]] = field(default_factory=dict)
    description: str = ""

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
    """Where examples come from: `world` (synthetic), a named source (see gadbench.data) or a local file.
    `max_chars` skips (and counts) rows whose prompt is longer than that many characters."""

    source: str
    path: str | None = None
    split: str = "train"
    limit: int | None = field(default=None, metadata=_range(1))
    prompt_field: str | None = None
    response_field: str | None = None
    id_field: str | None = None
    bad_rows: Literal["skip", "error"] = "skip"
    max_chars: int | None = field(default=None, metadata=_range(1))


@dataclass(frozen=True)
class DataConfig:
    train: DatasetConfig
    eval: dict[str, DatasetConfig] = field(default_factory=dict)
    validation_size: int = field(default=0, metadata=_range(0))


@dataclass(frozen=True)
class TeacherConfig:
    """The black-box teacher: `dataset` (responses in the data), `program` (synthetic world), `openai:M[@URL]`, `hf:PATH`."""

    spec: str = "dataset"
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = field(default=8, metadata=_range(1))


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (paper values as defaults, see docs/paper-settings.md)."""

    steps: int = field(default=2400, metadata=_range(1))
    warmup_steps: int = field(default=800, metadata=_range(0))
    d_only_steps: int = field(default=10, metadata=_range(0))
    offpolicy_d_steps: int = field(default=1600, metadata=_range(0))  # gad-offpolicy: D alone, 2 epochs in the paper
    batch_size: int = field(default=256, metadata=_range(1))
    micro_batch_size: int = field(default=0, metadata=_range(0))
    group_size: int = field(default=8, metadata=_range(2))
    temperature: float = field(default=0.8, metadata=_range(0.0))
    top_p: float = field(default=1.0, metadata=_range(0.0, 1.0))
    max_prompt_tokens: int = field(default=2048, metadata=_range(1))
    max_response_tokens: int = field(default=1536, metadata=_range(1))
    lr_sft: float = field(default=5e-6, metadata=_range(0.0))
    lr_generator: float = field(default=1e-6, metadata=_range(0.0))
    lr_warmup: float = field(default=1e-6, metadata=_range(0.0))
    lr_discriminator: float = field(default=1e-6, metadata=_range(0.0))
    weight_decay: float = field(default=0.01, metadata=_range(0.0))
    kl_beta: float = field(default=0.001, metadata=_range(0.0))
    clip_ratio: float = field(default=0.2, metadata=_range(0.0))
    grad_clip: float = field(default=0.2, metadata=_range(0.0))
    checkpoint_every: int = field(default=50, metadata=_range(1))
    keep_checkpoints: int = field(default=2, metadata=_range(1))
    length_warning_ratio: float = field(default=2.0, metadata=_range(1.0))
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    gradient_checkpointing: bool = False
    # none: a replica per process; fsdp: FSDP2 shards over all processes; hsdp: shards within a node,
    # replicas across nodes (docs/scale.md)
    sharding: Literal["none", "fsdp", "hsdp"] = "none"
    cpu_threads: int = field(default=0, metadata=_range(0))
    # x86 CPU kernels pinned to their AVX2 code paths, so the run gives the same bits on AVX2 and AVX-512
    # machines (applied by `gadbench run`/`eval` before torch is imported; see gadbench.cli)
    portable_cpu: bool = False


@dataclass(frozen=True)
class RolloutConfig:
    """Rollout generation: `hf` (transformers, KV cache, batched left-padded) in chunks of `batch_size` prompts,
    or `vllm` (a vLLM engine fed G's weights after each update; docs/scale.md). `gpu_memory_utilization` is
    the share of GPU memory vLLM may take (weights + KV cache) beside training; `enforce_eager` skips CUDA
    graphs / torch.compile (faster start, slower decoding). Both apply to `vllm` only."""

    engine: Literal["hf", "vllm"] = "hf"
    batch_size: int = field(default=0, metadata=_range(0))
    gpu_memory_utilization: float = field(default=0.3, metadata=_range(0.05, 0.95))
    enforce_eager: bool = False


@dataclass(frozen=True)
class EvalConfig:
    every: int = field(default=50, metadata=_range(1))
    max_new_tokens: int = field(default=1536, metadata=_range(1))
    judges: tuple[str, ...] = ("gad-paper",)
    samples: int = field(default=0, metadata=_range(0))
    selection: Literal["validation", "paper", "last"] = "validation"
    selection_metric: str = ""
    bootstrap: int = field(default=2000, metadata=_range(100))


@dataclass(frozen=True)
class JudgeConfig:
    model: str = "gpt-4o"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = field(default=8, metadata=_range(1))
    price_per_mtok: tuple[float, ...] = (2.5, 10.0)
    max_tokens: int = field(default=1024, metadata=_range(1))


@dataclass(frozen=True)
class BudgetConfig:
    """How methods are matched, and the mean lengths the dry-run plan assumes for its estimates."""

    match: Literal["steps", "flops"] = "steps"
    tolerance: float = field(default=0.05, metadata=_range(0.0, 1.0))
    assumed_prompt_tokens: int = field(default=100, metadata=_range(1))
    assumed_response_tokens: int = field(default=350, metadata=_range(1))


@dataclass(frozen=True)
class Requirements:
    """What a suite needs before it may start; `gadbench run` stops at once when something is missing."""

    gpu: bool = False
    judge_endpoint: bool = False
    online_data: bool = False


@dataclass(frozen=True)
class ToyConfig:
    """The paper's Fig. 5 toy: a 10-class Gaussian-mixture teacher, a single discretised Gaussian student."""

    classes: int = field(default=10, metadata=_range(2))
    teacher_means: tuple[float, ...] = (1.5, 6.5)
    teacher_stds: tuple[float, ...] = (0.8, 1.0)
    teacher_weights: tuple[float, ...] = (0.7, 0.3)
    teacher_samples: int = field(default=4000, metadata=_range(10))
    steps: int = field(default=600, metadata=_range(1))
    batch_size: int = field(default=256, metadata=_range(2))
    lr_student: float = field(default=0.05, metadata=_range(0.0))
    lr_discriminator: float = field(default=0.05, metadata=_range(0.0))
    init_mean: float = 4.5
    init_std: float = 3.0


@dataclass(frozen=True)
class SuiteConfig:
    name: str
    students: dict[str, ModelConfig] = field(default_factory=dict)
    methods: dict[str, MethodConfig] = field(default_factory=dict)
    data: DataConfig = DataConfig(train=DatasetConfig(source="world"))
    toy: ToyConfig | None = None
    description: str = ""
    seeds: tuple[int, ...] = (0,)
    teacher: TeacherConfig = TeacherConfig()
    train: TrainConfig = TrainConfig()
    rollout: RolloutConfig = RolloutConfig()
    eval: EvalConfig = EvalConfig()
    judge: JudgeConfig = JudgeConfig()
    budget: BudgetConfig = BudgetConfig()
    requires: Requirements = Requirements()
    baseline: str | None = None
    paper_baseline: bool = False


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


def load_suite(path: str | Path, overrides: list[str] = (), search_dir: Path | None = None) -> SuiteConfig:
    """Load a suite file, resolve `extends:`, apply `--set a.b=c` overrides, and validate."""
    path = Path(path)
    raw = _resolve_extends(path, search_dir or path.parent, seen=())
    for item in overrides:
        _apply_override(raw, item, path)
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


def _apply_override(raw: dict, item: str, path: Path) -> None:
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
