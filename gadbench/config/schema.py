"""The suite settings: typed, frozen, documented dataclasses. Every field is declared with `setting(default, doc,
paper=..., lo=..., hi=...)`: `gadbench suites --explain KEY` prints it and docs/config.md is generated from it.
Checks that need only a dataclass's own fields live in its `check()`; checks against the records of methods,
judges, teachers and data sources live in gadbench.suite."""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from gadbench import GadbenchError
from gadbench.metrics import RESAMPLES


class ConfigError(GadbenchError, ValueError):
    """A suite configuration problem, stated in one sentence with its fix."""


def setting(default: Any = dataclasses.MISSING, doc: str = "", paper: str = "", lo: float | None = None,
            hi: float | None = None, factory: Any = dataclasses.MISSING, in_run_id: bool = True) -> Any:
    """A config field with its one-line documentation (`gadbench suites --explain KEY` prints it), the
    paper's value where it has one, and the range a number must lie in. `in_run_id=False`: a setting that
    cannot change a run's results (how long to wait for an endpoint), left out of the run id's hash, so that
    changing it resumes the same run."""
    meta = {"doc": doc, "paper": paper, "range": (lo, hi), "in_run_id": in_run_id}
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
    cpu_offload: bool = setting(False, "train.sharding fsdp/hsdp: FSDP2's CPU offload of this student's shards "
                                       "(G, D, reference), gradients and AdamW states to host memory, AdamW "
                                       "stepping on the CPU; for students whose states do not fit the GPUs "
                                       "(docs/scale.md)")


@dataclass(frozen=True)
class MethodConfig:
    """One training method; the paper's ablations are switches on `gad`."""

    kind: str = setting(doc="a method record of gadbench.methods: seqkd, gad or gad-offpolicy (the paper's off-policy "
                            "D)")
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
    shaping: dict[str, float] = setting(
        doc="rewards added to the GRPO reward (D's score, or `reward`), each times its weight: a built-in reward "
            "(rouge-l, gold) or a dotted `package.module:function` -> weight (TRL's reward_funcs with reward_weights)",
        factory=dict)
    search: dict[str, tuple[float, ...]] = setting(
        doc="hyperparameter search: train setting -> values; each combination is a run variant "
            "`<method>+<key>=<value>`, and reports keep the one with the best validation score",
        paper="lr searched over [1e-6, 5e-6] for every method", factory=dict)
    description: str = setting("", "free text: the report's runs table shows it beside the method's variant")

    def check(self) -> str | None:
        """Every search key is a numeric train setting with values (the method's own switches are checked by its
        record, gadbench.suite.check_suite)."""
        numeric = {k for k, tp in typing.get_type_hints(TrainConfig).items() if tp in (int, float)}
        for key, values in self.search.items():
            if key not in numeric:
                close = difflib.get_close_matches(key, sorted(numeric), n=1)
                hint = f" (did you mean `{close[0]}`?)" if close else ""
                return f"search key `{key}` is not a numeric train setting{hint}"
            if not values:
                return f"search key `{key}` has no values; list at least one"
        return None


@dataclass(frozen=True)
class DatasetConfig:
    """Where examples come from: `world` (synthetic), a named source (see gadbench.data) or a local file."""

    source: str = setting(doc="world, a named source (lmsys-gad, dolly, selfinst, vicuna, mtbench, sharegpt, ...; "
                              "docs/data.md), jsonl or parquet")
    path: str | None = setting(None, "a local file; wins over $GADBENCH_DATA_DIR and the hub; a relative path is "
                                     "read from the suite file's folder (from the current directory with --set)")
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
    allow_overlap: bool = setting(False, "run even when eval prompts are also training prompts (the same normalised "
                                         "text, or the same id in the same data); the overlap is reported either way")


@dataclass(frozen=True)
class TeacherConfig:
    """The black-box teacher, asked once per prompt without a response (answers cached)."""

    spec: str = setting("dataset", "dataset (responses in the data), program (the world), openai:MODEL[@URL], "
                                   "hf:PATH or persona:NAME[@PATH] (smol-gold's hidden-persona teacher)",
                        paper="dataset (GPT-5-Chat responses, released)")
    api_key_env: str = setting("OPENAI_API_KEY", "the environment variable holding an API teacher's key")
    concurrency: int = setting(8, "requests in flight to an API teacher", lo=1)
    timeout: float = setting(60.0, "seconds an API teacher may take to answer one request before it is retried",
                             lo=0.001, in_run_id=False)
    max_retries: int = setting(6, "retries of a failed API teacher request (with backoff); a hung endpoint costs "
                                  "up to (max_retries + 1) x timeout per request", lo=0, in_run_id=False)


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
    max_tokens_per_micro_batch: int = setting(
        0, "pack micro-batches by tokens instead: at most this many per forward/backward, padding included (a "
           "longer sequence, or D's group of a teacher response and its samples, goes alone); 0: by "
           "micro_batch_size. Bounds activation memory (docs/scale.md); the step is the same",
        paper="12288 per GPU without padding (verl's dynamic batch size in the scripts)", lo=0)
    logprob_chunk_tokens: int = setting(
        0, "G's and the reference's log-probabilities: the LM head runs on response positions only, this many "
           "at a time, recomputed in backward, so full-vocabulary logits exist for one chunk only (0: for the "
           "whole micro-batch at once); the same numbers", lo=0)
    group_size: int = setting(8, "samples per prompt (GRPO's group; D pairs each with the teacher response)",
                              paper="8", lo=2)
    temperature: float = setting(0.8, "sampling temperature of rollouts; log-probs are of this tempered policy",
                                 paper="0.8", lo=0.0)
    top_p: float = setting(1.0, "nucleus of rollout sampling", paper="1.0 (verl default)", lo=0.0, hi=1.0)
    max_prompt_tokens: int = setting(2048, "prompts are left-truncated to this", paper="2048", lo=1)
    max_response_tokens: int = setting(1536, "rollouts stop here; teacher responses are cut to it (then EOS)",
                                       paper="1536", lo=1)
    lr_sft: float = setting(5e-6, "G's learning rate in SFT stages (SeqKD, gad-offpolicy's SeqKD, and GAD's warmup "
                                  "without discriminator warmup: one SeqKD epoch)", paper="5e-6", lo=0.0)
    lr_generator: float = setting(1e-6, "G's learning rate in the adversarial stage", paper="1e-6", lo=0.0)
    lr_warmup: float = setting(1e-6, "G's learning rate in GAD's joint warmup (G and D)",
                               paper="1e-6 (5e-6 with the Qwen teacher)", lo=0.0)
    lr_discriminator: float = setting(1e-6, "D's learning rate", paper="1e-6 (scripts)", lo=0.0)
    weight_decay: float = setting(0.01, "AdamW weight decay of G and D", paper="0.01 (verl default)", lo=0.0)
    kl_beta: float = setting(0.001, "weight of the k3 KL to the stage's reference in GRPO", paper="0.001", lo=0.0)
    clip_ratio: float = setting(0.2, "PPO ratio clip", paper="0.2 (verl default)", lo=0.0)
    grad_clip: float = setting(0.2, "gradient-norm clip of G and D (0: none)", paper="0.2 (scripts)", lo=0.0)
    checkpoint_every: int = setting(50, "steps between checkpoints (stage ends are always checkpointed)",
                                    paper="50", lo=1)
    keep_checkpoints: int = setting(2, "newest checkpoints kept, besides stage ends", lo=1)
    checkpoints_after_run: bool = setting(True, "keep a run's checkpoints once it is complete (false: delete them "
                                                "after summary.json; `gadbench eval` of new steps then has no weights)",
                                          in_run_id=False)
    length_warning_ratio: float = setting(2.0, "warn when rollouts grow past this many times the teacher's length",
                                          lo=1.0)
    truncation_warning: float = setting(0.5, "warn when more than this share of a step's rollouts, or of its teacher "
                                             "responses, is cut at max_response_tokens", lo=0.0, hi=1.0)
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
    log_memory: bool = setting(False, "record each phase's peak memory: `mem/<phase>` (GiB) in metrics.jsonl rows "
                                      "and every process's peaks in memory.json (GPUs: allocated by torch; CPUs: "
                                      "resident set)", in_run_id=False)


@dataclass(frozen=True)
class RolloutConfig:
    """Rollout generation (docs/scale.md)."""

    engine: Literal["hf", "vllm"] = setting("hf", "hf (transformers, KV cache, batched left-padded) or vllm (an "
                                                  "engine fed G's weights after each update)",
                                            paper="vllm")
    batch_size: int = setting(0, "hf: sequences (prompts x samples) per generate call on each process, in training, "
                                 "D's diagnostics and evaluation (0: all at once); bounds the KV cache", lo=0)
    hf_fast: bool = setting(True, "hf: a prompt's KV cache shared by its samples; bf16 copies decode without autocast "
                                  "and, on CPU, with packed attention (false: one plain generate call, bit-for-bit the "
                                  "rollouts of earlier versions)")
    gpu_memory_utilization: float = setting(0.3, "vllm: share of GPU memory it may take beside training",
                                            paper="0.7", lo=0.05, hi=0.95)
    enforce_eager: bool = setting(False, "vllm: skip CUDA graphs / torch.compile (faster start, slower decoding)")
    tensor_parallel_size: int = setting(1, "vllm: processes (GPUs) per engine; 1: every process holds a whole "
                                           "engine and generates its own prompts; k: each k consecutive processes "
                                           "share one tensor-parallel engine", paper="2", lo=1)
    sleep: bool = setting(True, "vllm: release the KV cache and move the weights to host memory while G and D "
                                "train (vLLM sleep mode, level 1; CUDA only, the calls do nothing elsewhere)")


@dataclass(frozen=True)
class EvalConfig:
    every: int = setting(50, "steps between evaluations (stage ends and the last step are always evaluated)",
                         paper="50", lo=1)
    start: int = setting(0, "evaluation points before this step are skipped, except step 0 (the `before` row) and "
                            "the last step", paper="800 (the eval script scans GAD checkpoints 800-2400)", lo=0)
    max_new_tokens: int = setting(1536, "greedy answers stop here", paper="1536", lo=1)
    judges: tuple[str, ...] = setting(("gad-paper",), "judges of the answers (gadbench.judge.records): gad-paper, "
                                                     "mtbench-single, pairwise (LLM), rouge-l, embedding, gold and "
                                                     "gold-sampled (world), persona-gold (a persona teacher)",
                                   paper="gad-paper")
    samples: int = setting(0, "answers per prompt sampled at temperature 1 for the judges that score samples "
                              "(gold-sampled; persona-gold: student samples and teacher draws per prompt)", lo=0)
    selection: Literal["validation", "paper", "last"] = setting(
        "validation", "the checkpoint a run reports: best on the validation split, best on the test sets with the "
        "length in range (the paper's), or the last", paper="paper")
    selection_metric: str = setting("", "the metric checkpoint selection optimises, in the direction its judge "
                                        "declares (default: the first judge's primary metric)")
    d_diagnostics_prompts: int = setting(0, "validation prompts D's diagnostics use at each evaluation (0: the whole "
                                            "split), shared out over the processes", lo=0)
    bootstrap: int = setting(RESAMPLES, "bootstrap resamples of every interval, at least (the report adds more "
                                        "until each bound's Monte-Carlo error is settled)", lo=100)
    share_step0: bool = setting(True, "runs of the same student and seed take step 0's answers and judgments from the "
                                      "first run that judged them (the same model; gadbench.eval.evaluator)",
                                in_run_id=False)
    judge_in_background: bool = setting(True, "with an LLM judge, an evaluation's answers are generated at its step "
                                              "and judged in a background thread while training goes on; the run "
                                              "waits for every judgment before selecting", in_run_id=False)


@dataclass(frozen=True)
class JudgeConfig:
    model: str = setting("gpt-4o", "the LLM judge's model name at the endpoint", paper="gpt-4o")
    base_url: str | None = setting(None, "an OpenAI-compatible endpoint (default: OpenAI's)")
    api_key_env: str = setting("OPENAI_API_KEY", "the environment variable holding the judge's key")
    concurrency: int = setting(8, "judge requests in flight", lo=1)
    timeout: float = setting(60.0, "seconds the judge may take to answer one request before it is retried",
                             lo=0.001, in_run_id=False)
    max_retries: int = setting(6, "retries of a failed judge request (with backoff), after which the judgment is "
                                  "invalid (an API error, asked again by --resume); a hung endpoint costs up to "
                                  "(max_retries + 1) x timeout per request", lo=0, in_run_id=False)
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
        if self.base_url is not None and (problem := url_problem(self.base_url)):
            return f"base_url {problem}"
        return None


def url_problem(url: str) -> str | None:
    """What is wrong with an endpoint's base URL (an http(s) URL with a host and a port in 1-65535), or None."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        return f"{url!r} is not a valid URL ({e}); write e.g. http://127.0.0.1:8000/v1"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) URL with a host; write e.g. http://127.0.0.1:8000/v1"
    if port == 0:
        return f"{url!r} has port 0; give the port the server listens on (1-65535)"
    return None


@dataclass(frozen=True)
class BudgetConfig:
    """How methods are matched, and the mean lengths the dry-run plan assumes for its estimates."""

    match: Literal["steps", "flops"] = setting("steps", "what every method gets the same of", paper="steps")
    tolerance: float = setting(0.05, "a run outside this relative difference is flagged", lo=0.0, hi=1.0)
    assumed_prompt_tokens: int = setting(100, "mean prompt length the dry-run estimates assume", lo=1)
    assumed_response_tokens: int = setting(350, "mean response length the dry-run estimates assume", lo=1)


@dataclass(frozen=True)
class LogConfig:
    """Live tracking of training (gadbench.tracking): each run's metrics.jsonl rows and evaluation means, logged
    at their step with the run's resolved config, one tracker run per gadbench run, from process 0. Not part of
    a run's identity: changing it changes no run id."""

    tracker: Literal["none", "tensorboard", "trackio", "wandb"] = setting(
        "none", "tensorboard (event files in each run's tensorboard/), trackio (its local store: $TRACKIO_DIR or "
        "its default) or wandb (each run's wandb/, offline unless $WANDB_API_KEY or $WANDB_MODE is set)",
        paper="wandb")
    project: str = setting("gadbench", "the trackio or wandb project the runs are logged to (each named by its run "
                                       "id)")


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
    log: LogConfig = setting(LogConfig(), "live tracking of training (tensorboard, trackio, wandb)")
    requires: Requirements = setting(Requirements(), "what the suite needs to start")
    baseline: str | None = setting(None, "a regression baseline file compared after the run (the ci suite); a "
                                         "relative path is read from the suite file's folder (from the current "
                                         "directory with --set); a missing file stops the run unless "
                                         "--update-baseline writes it")
    paper_baseline: bool = setting(False, "show the paper's published numbers beside ours in the report")
    report_note: str = setting("", "one or two sentences the report shows first: what this suite can and cannot "
                                   "show (scale, student, data, judge quality) and the doc that says more")

    def check(self) -> str | None:
        if not self.seeds:
            return "seeds is empty, so the suite has no runs; list at least one seed, e.g. seeds: [0]"
        return None


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
    search_point: dict[str, float] = field(default_factory=dict)  # this run's point of its method's search

    @property
    def config_hash(self) -> str:
        """sha256 of the run's settings, those declared `in_run_id=False` left out."""
        return hashlib.sha256(yaml.safe_dump(_identity(self), sort_keys=True).encode()).hexdigest()[:8]

    @property
    def run_id(self) -> str:
        return f"{self.student_name}--{self.method_name}--s{self.seed}--{self.config_hash}"


def to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    return obj


def _identity(obj: Any) -> Any:
    """to_dict without the settings declared `in_run_id=False`."""
    if dataclasses.is_dataclass(obj):
        return {f.name: _identity(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if f.metadata.get("in_run_id", True)}
    if isinstance(obj, dict):
        return {k: _identity(v) for k, v in obj.items()}
    return to_dict(obj)


def to_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=True)
