"""`train.precision: bf16` on a CPU: training forwards autocast to bf16 over fp32 weights, and hf rollouts
generate from a bf16 copy of G that follows every weight update."""

from __future__ import annotations

import copy

import pytest
import torch
from test_engine import REPO, TINY

from gadbench.data import Example
from gadbench.methods.updates import sft_update
from gadbench.models import response_ids
from gadbench.rollout.hf import HFRolloutEngine
from gadbench.rundata import load_run_data, run_teacher
from gadbench.suite import get_suite, runs_of
from gadbench.trainer import Trainer

BATCH = [Example("add 3 5", "answer : 8", {}), Example("rev c a b d", "the answer is b a c d .", {})]


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("GADBENCH_CACHE", str(REPO / "results" / "cache"))
    yield
    torch.set_num_threads(threads)


def _trainer(tmp_path, method: str, precision: str) -> Trainer:
    suite = get_suite("smoke", [*TINY, f"train.precision={precision}"])
    spec = next(r for r in runs_of(suite) if r.method_name == method)
    tr = Trainer(spec, tmp_path / spec.run_id, load_run_data(spec, run_teacher(spec)), progress=False)
    tr._begin_stage(0)
    return tr


def _hand_nll(ctx, batch, bf16: bool) -> float:
    """Mean NLL of the teacher responses and their EOS from plain forwards, with or without bf16 autocast."""
    nll, count = 0.0, 0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for ex in batch:
            p, r = ctx.prompt_ids(ex.prompt), response_ids(ctx.g.tokenizer, ex.teacher_response, 24)[0]
            logits = ctx.g.model(input_ids=torch.tensor([p + r])).logits[0]
            logp = torch.log_softmax(logits.double(), dim=-1)
            nll -= sum(logp[len(p) - 1 + j, tok].item() for j, tok in enumerate(r))
            count += len(r)
    return nll / count


def test_bf16_training_forwards_autocast_on_cpu_over_fp32_weights(tmp_path):
    ctx = _trainer(tmp_path, "seqkd", "bf16").ctx
    fp32, bf16 = _hand_nll(ctx, BATCH, bf16=False), _hand_nll(ctx, BATCH, bf16=True)
    assert abs(bf16 - fp32) > 1e-4, (bf16, fp32)  # the two precisions are distinguishable on this batch
    metrics, _ = sft_update(ctx, BATCH)
    assert metrics["sft_loss"] == pytest.approx(bf16, abs=abs(bf16 - fp32) / 4), (metrics["sft_loss"], bf16, fp32)
    assert {p.dtype for p in ctx.g.model.parameters()} == {torch.float32}  # master weights stay fp32
    assert {s["exp_avg"].dtype for s in ctx.g_opt.state.values()} == {torch.float32}


def test_fp32_runs_do_not_autocast(tmp_path):
    ctx = _trainer(tmp_path, "seqkd", "fp32").ctx
    fp32 = _hand_nll(ctx, BATCH, bf16=False)
    metrics, _ = sft_update(ctx, BATCH)
    assert metrics["sft_loss"] == pytest.approx(fp32, abs=1e-5)
    assert ctx.engine.generator_for(ctx.g.model) is ctx.g.model


def _bf16_cast(model):
    low = copy.deepcopy(model)
    for p in low.parameters():
        p.data = p.data.to(torch.bfloat16)
    return low


def test_bf16_rollouts_come_from_a_copy_with_the_current_weights(tmp_path):
    tr = _trainer(tmp_path, "gad", "bf16")
    engine, g = tr.ctx.engine, tr.ctx.g.model  # the engine the run built for train.precision=bf16
    prompts = [tr.ctx.prompt_ids(ex.prompt) for ex in tr.data.train[:6]]
    plain = HFRolloutEngine(tr.ctx.g.tokenizer)

    def answers(eng, model, temperature=0.0):
        return eng.generate(model, prompts, 2, temperature, 12, seeds=list(range(len(prompts)))).response_ids

    g.train()  # as during training: generation runs in eval mode and hands G back in train mode
    before = answers(engine, g)
    assert before == answers(plain, _bf16_cast(g))
    assert answers(engine, g, 1.0) == answers(plain, _bf16_cast(g), 1.0)
    low = engine.generator_for(g)
    assert low is not g and {p.dtype for p in low.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in g.parameters()} == {torch.float32} and g.training
    assert {b.dtype for b in low.buffers() if b.is_floating_point()} <= {torch.float32}  # rotary stays fp32
    if g.get_output_embeddings().weight is g.get_input_embeddings().weight:
        assert low.get_output_embeddings().weight is low.get_input_embeddings().weight  # still tied

    with torch.no_grad():  # a weight update, as an optimizer step makes it
        for p in g.parameters():
            p.add_(torch.randn_like(p) * 0.5 * p.abs().mean())
    after = answers(engine, g)
    assert after != before, "the update must change greedy answers for this test to mean anything"
    assert after == answers(plain, _bf16_cast(g))
    assert engine.generator_for(g) is low  # refreshed in place, not copied again
