"""The memory bounds change no number: micro-batches packed by a token budget (train.max_tokens_per_micro_batch),
log-probabilities computed in chunks of positions (train.logprob_chunk_tokens) and generate calls capped in
sequences (rollout.batch_size) give the same rollouts, losses and gradients as the whole-batch path, through the
real step functions of the world's tiny student; and the full-vocabulary logits never exist for more than one
chunk, and never for D."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ckpt import read_checkpoint
from torch.optim.optimizer import register_optimizer_step_pre_hook
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from gadbench.methods.gad import adversarial_step, warmup_step
from gadbench.methods.updates import d_score_and_update, grpo_update, rollout
from gadbench.rundata import load_run_data, run_teacher
from gadbench.sequences import budget_ranges
from gadbench.suite import get_suite, runs_of
from gadbench.trainer import Trainer

REPO = Path(__file__).resolve().parent.parent
TINY = [
    "train.steps=4", "train.warmup_steps=2", "train.batch_size=4", "train.group_size=2", "train.max_response_tokens=16",
    "train.max_prompt_tokens=32", "data.train.limit=16", "data.validation_size=0", "train.cpu_threads=1",
]
BOUNDED = ["train.max_tokens_per_micro_batch=40", "train.logprob_chunk_tokens=5", "rollout.batch_size=3"]
LAYOUTS = {  # the three ways a forward runs: prompt groups, whole sequences, whole sequences recomputed
    "groups": ["train.shared_prefix=true"],
    "packed": ["train.shared_prefix=false"],
    "checkpointed": ["train.gradient_checkpointing=true"],
}


@pytest.fixture(scope="module", autouse=True)
def _env():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GADBENCH_CACHE", str(REPO / "results" / "cache"))
        yield
    torch.set_num_threads(threads)


def _trainer(tmp_path: Path, method: str, extra: list[str]) -> Trainer:
    spec = next(r for r in runs_of(get_suite("smoke", [*TINY, *extra])) if r.method_name == method)
    return Trainer(spec, tmp_path / spec.run_id, load_run_data(spec, run_teacher(spec)), progress=False)


def _steps(tmp_path: Path, extra: list[str]) -> tuple[list[dict], list[dict], list]:
    """A GAD warmup step (D update, then SFT) and an adversarial step (rollout, D update, GRPO with the KL
    to the reference): the metrics of each, every optimizer step's gradients (name -> tensor, for the
    parameters that received one), and the rollout texts."""
    tr = _trainer(tmp_path, "gad", ["train.d_only_steps=0", *extra])
    names = {id(p): f"{tag}.{n}" for tag, m in (("g", tr.ctx.g.model), ("d", tr.ctx.d.model))
             for n, p in m.named_parameters()}
    grads: list[dict] = []

    def record(opt, args, kwargs):
        grads.append({names[id(p)]: p.grad.clone() for group in opt.param_groups for p in group["params"]
                      if p.grad is not None and p.grad.abs().max() > 0})

    handle = register_optimizer_step_pre_hook(record)
    try:
        tr._begin_stage(0)
        torch.manual_seed(0)
        warm, _ = warmup_step(tr.ctx, tr.data.batch(1, 4), 1, 0)
        tr._begin_stage(1)
        adv, _ = adversarial_step(tr.ctx, tr.data.batch(2, 4), 2, 0)
        roll, _ = rollout(tr.ctx, tr.data.batch(3, 4), 3)
    finally:
        handle.remove()
    return [warm, adv], grads, roll.texts


@pytest.mark.parametrize("layout", LAYOUTS)
def test_token_budget_and_chunked_logprobs_give_the_same_losses_and_gradients(tmp_path, layout):
    whole_metrics, whole_grads, whole_texts = _steps(tmp_path / "whole", LAYOUTS[layout])
    metrics, grads, texts = _steps(tmp_path / "bounded", [*LAYOUTS[layout], *BOUNDED])
    assert texts == whole_texts  # generate calls of 3 sequences: the same samples
    for a, b in zip(whole_metrics, metrics, strict=True):
        for key in ("d_loss", "sft_loss", "pg_loss", "kl", "teacher_score", "student_score", "reward_mean"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), (key, a[key], b[key])
    assert len(grads) == len(whole_grads) == 4  # D and G in the warmup, D and G in the adversarial step
    for step, (a, b) in enumerate(zip(whole_grads, grads, strict=True)):
        assert a.keys() == b.keys(), (step, a.keys() ^ b.keys())
        off = {n: gap for n in a if (gap := float((b[n] - a[n]).abs().max() / a[n].abs().max())) > 1e-5}
        assert not off, f"optimizer step {step}: gradients differ beyond rounding (max |diff| / max |grad|): {off}"


def test_budget_ranges_cover_the_units_within_the_budget():
    g = torch.Generator().manual_seed(0)
    for trial in range(200):
        n = int(torch.randint(1, 30, (1,), generator=g))
        widths = [tuple(int(w) for w in torch.randint(1, 50, (2,), generator=g)) for _ in range(n)]
        rows, budget = (1, int(torch.randint(1, 5, (1,), generator=g))), int(torch.randint(1, 300, (1,), generator=g))
        ranges = budget_ranges(widths, rows, budget)
        assert [a for a, _ in ranges] == [0] + [b for _, b in ranges[:-1]] and ranges[-1][1] == n  # consecutive
        for a, b in ranges:
            cost = sum(r * (b - a) * max(w[k] for w in widths[a:b]) for k, r in enumerate(rows))
            assert cost <= budget or b - a == 1, (trial, widths, budget, a, b, cost)
            if b < n:  # greedy: the next unit did not fit
                grown = sum(r * (b + 1 - a) * max(w[k] for w in widths[a : b + 1]) for k, r in enumerate(rows))
                assert grown > budget
    assert budget_ranges([], (1,), 10) == []


class _VocabTensors(TorchDispatchMode):
    """The most rows of any tensor with a vocabulary-wide last dimension that an operation allocates (views and
    transposes of the LM head's weight allocate nothing and are not counted)."""

    VIEWS = {"t", "transpose", "permute", "view", "_unsafe_view", "expand", "detach", "alias", "as_strided",
             "slice", "select", "unsqueeze", "squeeze", "_reshape_alias", "reshape", "unbind", "split"}

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab, self.rows = vocab, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket.__name__ not in self.VIEWS:
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor) and t.dim() > 1 and t.shape[-1] == self.vocab:
                    self.rows = max(self.rows, t.numel() // self.vocab)
        return out


@pytest.mark.parametrize("chunk", [0, 3])
def test_full_vocabulary_logits_exist_for_one_chunk_at_a_time(tmp_path, chunk):
    """Forward and backward of a GRPO update (G and the reference): with chunks of 3 positions no allocated
    tensor spans the vocabulary for more than 3 positions; without chunking, whole micro-batches do."""
    tr = _trainer(tmp_path, "gad", ["train.shared_prefix=false", f"train.logprob_chunk_tokens={chunk}"])
    ctx = tr.ctx
    tr._begin_stage(1)
    batch = tr.data.batch(1, 4)
    roll, _ = rollout(ctx, batch, 1)
    vocab = ctx.g.model.config.vocab_size
    assert vocab != ctx.g.model.config.hidden_size
    with _VocabTensors(vocab) as seen:
        grpo_update(ctx, batch, roll, torch.randn(len(roll.texts)))
    assert seen.rows == 3 if chunk else seen.rows > 3, seen.rows


def test_d_builds_no_vocabulary_logits(tmp_path):
    tr = _trainer(tmp_path, "gad", [])
    ctx = tr.ctx
    tr._begin_stage(0)
    batch = tr.data.batch(1, 4)
    roll, _ = rollout(ctx, batch, 1)
    with _VocabTensors(ctx.g.model.config.vocab_size) as seen:
        d_score_and_update(ctx, batch, roll, update=True)  # scores, BT loss, backward, AdamW step
    assert seen.rows == 0


@pytest.mark.slow
def test_bounded_fsdp_runs_match_whole_batches_and_one_process(tmp_path):
    """2 processes with FSDP (gloo), micro-batches packed by tokens (the two processes' rollouts have other
    lengths, so their micro-batch counts are evened out, as FSDP's collectives need), log-probabilities in
    chunks and generate calls of 3 sequences: the same rollouts, and G, D and the reference within 1e-4 of the
    whole-batch FSDP run (other micro-batches sum in another order; Adam turns that into differences of up to
    1.4e-5 on parameters whose exact gradient is 0, such as the key biases; tests/test_distributed.py allows
    1e-4 between partitions too); D's diagnostics, shared out over the processes, agree with one process's."""
    import glob
    import json
    import os
    import subprocess
    import sys

    suite = REPO / "tests" / "fixtures" / "suites" / "dp.yaml"
    env = {**os.environ, "GADBENCH_EXPERIMENTS": str(REPO / "experiments"), "PYTHONWARNINGS": "ignore",
           "OMP_NUM_THREADS": "1"}
    two = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "-m", "gadbench.cli"]
    one = [sys.executable, "-m", "gadbench.cli"]

    def run(cmd: list[str], out: str, *settings: str) -> tuple[dict, list[dict], dict]:
        args = [x for s in ("train.checkpoint_every=3", *settings) for x in ("--set", s)]
        proc = subprocess.run([*cmd, "-q", "run", "--suite", str(suite), "--out", str(tmp_path / out), *args],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        path = Path(glob.glob(str(tmp_path / out / "dp" / "tiny--gad--*"))[0])
        state = read_checkpoint(path / "checkpoints" / "step-6")
        rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
        return state, rows, json.loads((path / "eval" / "step-6" / "metrics.json").read_text())["validation"]["d"]

    whole, rows_w, _ = run(two, "whole", "train.sharding=fsdp")
    bounded, rows_b, diag_two = run(two, "bounded", "train.sharding=fsdp", *BOUNDED)
    _, _, diag_one = run(one, "one", *BOUNDED)
    for a, b in zip(rows_w, rows_b, strict=True):
        assert {k: a.get(k) for k in ("response_len", "gold/accuracy", "truncated_frac")} == \
               {k: b.get(k) for k in ("response_len", "gold/accuracy", "truncated_frac")}
    off = {f"{m}.{n}": gap for m in ("g", "d", "ref") for n in whole[m]
           if (gap := float((whole[m][n].double() - bounded[m][n].double()).abs().max())) > 1e-4}
    assert not off, f"tensors differ by more than 1e-4: {off}"
    assert diag_two["pairs"] == diag_one["pairs"] == 8 * 4
    for key in ("auc", "teacher_score", "student_score", "identical_gap_max"):
        assert diag_two[key] == pytest.approx(diag_one[key], abs=1e-4), key
