"""The training engine on the world's tiny student with tiny budgets: D's teacher/student symmetry, one D step,
GRPO under a frozen D, the frozen-D ablation, bitwise resume, the budget counters and divergence."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch
from ckpt import read_checkpoint

from gadbench.budget import check_matched
from gadbench.data import Example
from gadbench.io import read_json, read_jsonl
from gadbench.methods.gad import adversarial_frozen_d_step
from gadbench.methods.updates import _d_forward, _d_sequences, d_score_and_update, rollout
from gadbench.rollout import Rollout
from gadbench.rundata import load_run_data, run_teacher
from gadbench.runner import run_suite
from gadbench.suite import get_suite, runs_of
from gadbench.trainer import Trainer, TrainingDiverged

REPO = Path(__file__).resolve().parent.parent

TINY = [
    "train.steps=4", "train.warmup_steps=2", "train.d_only_steps=1", "train.batch_size=4", "train.group_size=2",
    "train.max_response_tokens=16", "train.max_prompt_tokens=32", "train.checkpoint_every=1",
    "train.keep_checkpoints=10", "data.train.limit=16", "data.validation_size=0", "train.cpu_threads=1",
]


@pytest.fixture(scope="module", autouse=True)
def _env():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GADBENCH_CACHE", str(REPO / "results" / "cache"))  # the shared world-student cache
        yield
    torch.set_num_threads(threads)


def _spec(method: str, extra: list[str] = ()):
    suite = get_suite("smoke", [*TINY, *extra])
    return next(r for r in runs_of(suite) if r.method_name == method)


def _trainer(tmp_path: Path, method: str, extra: list[str] = ()) -> Trainer:
    spec = _spec(method, extra)
    data = load_run_data(spec, run_teacher(spec))
    return Trainer(spec, tmp_path / spec.run_id, data, progress=False)


def _tokens(ex: Example) -> int:
    """Hand count of one SFT sequence: <|im_start|> user <prompt words> <|im_end|> <|im_start|> assistant
    (5 specials/role words) + the response words + EOS, with the world's word-level tokenizer."""
    return len(ex.prompt.split()) + 5 + len(ex.teacher_response.split()) + 1


# ------------------------------------------------------------------------------------ (a) D symmetry


def test_d_scores_a_text_the_same_as_teacher_or_as_rollout(tmp_path):
    ctx = _trainer(tmp_path, "gad").ctx
    batch = [Example("sort c a b", "answer : a b c", {}), Example("add 3 5", "the answer is 8 .", {})]
    texts = ["answer : a b c", "result : a b c", "the answer is 8 .", "  the answer is  8 . "]
    tok = ctx.g.tokenizer
    roll = Rollout(prompt_index=[0, 0, 1, 1], response_ids=[tok(t)["input_ids"] + [tok.eos_token_id] for t in texts],
                   truncated=[False] * 4, texts=texts)
    teacher, student = _d_sequences(ctx, batch, roll)
    # identical token sequences: prompt ids + response words + exactly one EOS
    assert student[0] == teacher[0] and student[2] == teacher[1] and student[3] == teacher[1]
    prompt, response = teacher[0]
    assert prompt == ctx.prompt_ids("sort c a b")
    assert response == tok("answer : a b c", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]

    ss, m, spend = d_score_and_update(ctx, batch, roll, update=False)
    with torch.no_grad():
        ts = _d_forward(ctx, teacher)
    # the same text scores the same whichever side it is on and wherever it sits in the (padded) batch
    assert ss[0].item() == pytest.approx(ts[0].item(), abs=1e-5)
    assert ss[2].item() == pytest.approx(ts[1].item(), abs=1e-5)
    assert ss[3].item() == pytest.approx(ts[1].item(), abs=1e-5)
    assert abs(ss[1].item() - ss[0].item()) > 1e-4  # but D does read the response
    assert m["teacher_score"] == pytest.approx(ts.mean().item(), abs=1e-5)
    assert spend.d_optimizer_steps == 0  # scoring only


# --------------------------------------------------------------------------------------- (b) one D step


def test_one_d_update_lowers_its_loss_on_the_batch(tmp_path):
    tr = _trainer(tmp_path, "gad")
    ctx = tr.ctx
    tr._begin_stage(0)  # optimizers (lr_discriminator 1e-3 in smoke)
    batch = tr.data.batch(1, 4)
    torch.manual_seed(0)
    roll, _ = rollout(ctx, batch, 1)
    assert len(roll.texts) == 4 * 2  # batch * group
    g_before = {k: v.clone() for k, v in ctx.g.model.state_dict().items()}
    d_before = {k: v.clone() for k, v in ctx.d.model.state_dict().items()}

    ss0, m0, _ = d_score_and_update(ctx, batch, roll, update=False)
    teacher, _ = _d_sequences(ctx, batch, roll)
    with torch.no_grad():
        ts0 = _d_forward(ctx, teacher)
    # BT loss by hand from the scores: mean over the 8 pairs (b, i) of log(1 + exp(-(t_b - s_bi)))
    pairs = [(ts0[b].item(), ss0[2 * b + i].item()) for b in range(4) for i in range(2)]
    by_hand = sum(torch.log1p(torch.exp(torch.tensor(-(t - s), dtype=torch.float64))).item() for t, s in pairs) / 8
    assert m0["d_loss"] == pytest.approx(by_hand, abs=1e-5)
    assert m0["d_acc"] == sum(t > s for t, s in pairs) / 8

    ss1, m1, spend = d_score_and_update(ctx, batch, roll, update=True)
    assert torch.allclose(ss1, ss0, atol=1e-5)  # the rewards are the scores from before the update
    assert m1["d_loss"] == pytest.approx(m0["d_loss"], abs=1e-5)
    assert spend.d_optimizer_steps == 1
    whole = lambda seqs: sum(len(p) + len(r) for p, r in seqs)  # noqa: E731
    assert spend.d_trained_tokens == whole(teacher) + whole(_d_sequences(ctx, batch, roll)[1])

    _, m2, _ = d_score_and_update(ctx, batch, roll, update=False)
    assert m2["d_loss"] < m0["d_loss"] - 1e-3
    assert m2["d_acc"] >= m0["d_acc"]
    assert m2["teacher_score"] - m2["student_score"] > m0["teacher_score"] - m0["student_score"]
    assert any(not torch.equal(v, d_before[k]) for k, v in ctx.d.model.state_dict().items())
    assert all(torch.equal(v, g_before[k]) for k, v in ctx.g.model.state_dict().items())  # G untouched


# ----------------------------------------------------------------------------------- (c) GRPO, frozen D


def test_grpo_steps_under_a_frozen_d_raise_the_reward(tmp_path):
    tr = _trainer(tmp_path, "gad", ["train.batch_size=8", "train.group_size=8", "train.lr_generator=3e-3",
                                    "methods.gad.discriminator=frozen-after-warmup"])
    ctx = tr.ctx
    tr._begin_stage(1)  # adversarial: G optimizer at lr_generator, reference = G now
    assert tr.plan[1].stage.step is adversarial_frozen_d_step
    batch = tr.data.batch(1, 8)
    d_before = {k: v.clone() for k, v in ctx.d.model.state_dict().items()}

    def mean_reward() -> float:  # 64 samples from seeds that training never uses
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(123)
            roll, _ = rollout(ctx, batch, 10_000)
            ss, _, _ = d_score_and_update(ctx, batch, roll, update=False)
        return float(ss.mean())

    before = mean_reward()
    torch.manual_seed(0)
    for k in range(15):
        metrics, spend = adversarial_frozen_d_step(ctx, batch, k + 1, k)
        assert spend.d_optimizer_steps == 0 and spend.g_optimizer_steps == 1
        assert spend.rollouts == 8 * 8  # batch x group
    after = mean_reward()
    # GRPO climbs the fixed reward (by hacking it, as the paper's frozen D invites)
    assert after > before + 0.2, (before, after)
    assert all(torch.equal(v, d_before[k]) for k, v in ctx.d.model.state_dict().items())


# ------------------------------------------------------------------------- (d) frozen D, (f) counters


def _ckpt(tr: Trainer, step: int) -> dict:
    return read_checkpoint(tr.run.checkpoint(step))


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_d_frozen_after_warmup_is_unchanged_after_it_and_counters(tmp_path):
    tr = _trainer(tmp_path, "gad", ["methods.gad.discriminator=frozen-after-warmup"])
    meter = tr.train()
    s1, s2, s4 = _ckpt(tr, 1), _ckpt(tr, 2), _ckpt(tr, 4)
    assert not _equal(s1["d"], s2["d"])  # D trains during warmup
    assert _equal(s2["d"], s4["d"])  # and not after it (warmup ends at step 2)
    assert not _equal(s2["g"], s4["g"])  # while G does
    t = meter.totals
    # 4 steps of 4 prompts; warmup 2 steps (step 1 D-only), adversarial 2 steps with a frozen D
    assert (t.prompts, t.teacher_responses) == (16, 16)
    assert t.d_optimizer_steps == 2 and t.g_optimizer_steps == 4 - 1
    assert t.rollouts == 4 * (4 * 2)  # every step rolls out batch x group
    assert meter.per_stage["adversarial"].d_optimizer_steps == 0
    assert meter.per_stage["adversarial"].d_trained_tokens == 0


def test_offpolicy_d_is_fitted_to_the_frozen_seqkd_student_then_frozen(tmp_path):
    """The paper's off-policy discriminator: SeqKD (2 steps, no D), D alone against the frozen SeqKD
    student (2 steps), then GRPO against that D, frozen (2 steps)."""
    tr = _trainer(tmp_path, "gad-offpolicy", ["train.offpolicy_d_steps=2"])
    assert [(p.name, p.steps) for p in tr.plan] == [("sft", 2), ("d-fit", 2), ("adversarial", 2)]
    meter = tr.train()
    s = {k: _ckpt(tr, k) for k in range(1, 7)}
    initial = tr.ctx.d.model.state_dict()  # compare with a D built afresh: the same seed gives the same D
    fresh = _trainer(tmp_path / "fresh", "gad-offpolicy", ["train.offpolicy_d_steps=2"]).ctx.d.model.state_dict()
    assert _equal(s[2]["d"], fresh) and not _equal(initial, fresh)  # no D training during SeqKD
    assert not _equal(s[1]["g"], s[2]["g"])  # SeqKD trains G
    assert _equal(s[2]["g"], s[4]["g"])  # the student is frozen while D fits
    assert not _equal(s[2]["d"], s[3]["d"]) and not _equal(s[3]["d"], s[4]["d"])  # D trains every d-fit step
    assert _equal(s[4]["d"], s[6]["d"])  # then D is frozen
    assert not _equal(s[4]["g"], s[6]["g"])  # while GRPO trains G against it
    t, fit = meter.totals, meter.per_stage["d-fit"]
    assert (t.steps, t.prompts, t.teacher_responses) == (6, 24, 24)
    assert (fit.g_optimizer_steps, fit.d_optimizer_steps, fit.rollouts) == (0, 2, 2 * 4 * 2)
    assert (t.g_optimizer_steps, t.d_optimizer_steps) == (4, 2)
    assert meter.per_stage["adversarial"].d_optimizer_steps == 0

    # matched on steps, the 2 D-fit steps are the paper's extra D epochs: 4 schedule steps against SeqKD's 4
    seqkd = _trainer(tmp_path / "seqkd", "seqkd").train().state()
    check = check_matched({"offpolicy": meter.state(), "seqkd": seqkd}, "steps", 0.05)
    assert check["offpolicy"] == {"match": "steps", "tolerance": 0.05, "ratio": 1.0, "within": True,
                                  "extra_d_fit_steps": 2}, check
    assert check["seqkd"] == {"match": "steps", "tolerance": 0.05, "ratio": 1.0, "within": True}, check
    # matched on FLOPs, everything counts
    flops = check_matched({"offpolicy": meter.state(), "seqkd": seqkd}, "flops", 0.05)
    assert flops["seqkd"]["ratio"] == pytest.approx(seqkd["totals"]["flops"] / t.flops, abs=1e-4), flops
    assert "extra_d_fit_steps" not in flops["offpolicy"]


def test_budget_counters_seqkd_and_gad(tmp_path):
    tr = _trainer(tmp_path, "seqkd", ["train.steps=3"])
    t = tr.train().totals
    assert (t.prompts, t.teacher_responses, t.g_optimizer_steps) == (3 * 4, 3 * 4, 3)
    assert (t.rollouts, t.generated_tokens, t.d_optimizer_steps, t.d_trained_tokens) == (0, 0, 0, 0)
    tokens = sum(_tokens(ex) for step in (1, 2, 3) for ex in tr.data.batch(step, 4))
    assert t.g_trained_tokens == tokens
    assert t.flops == pytest.approx(6 * tr.ctx.g_params * tokens)

    tr = _trainer(tmp_path, "gad")
    meter = tr.train()
    t, w, a = meter.totals, meter.per_stage["warmup"], meter.per_stage["adversarial"]
    assert (t.prompts, t.teacher_responses) == (16, 16)
    assert t.d_optimizer_steps == 4  # = steps: one D step per warmup and per adversarial step
    assert t.g_optimizer_steps == 4 - 1  # = steps - d_only_steps
    assert (w.g_optimizer_steps, w.d_optimizer_steps, a.g_optimizer_steps, a.d_optimizer_steps) == (1, 2, 2, 2)
    assert w.rollouts == a.rollouts == 2 * 4 * 2  # 2 rollout steps x batch 4 x group 2
    # the one warmup SFT step (step 2) trains G on step 2's teacher sequences
    sft_tokens = sum(_tokens(ex) for ex in tr.data.batch(2, 4))
    assert w.g_trained_tokens == sft_tokens


# ------------------------------------------------------------------------------------------- (e) resume


RESUME = [
    "train.steps=6", "train.warmup_steps=3", "train.d_only_steps=1", "train.batch_size=4", "train.group_size=2",
    "train.max_response_tokens=16", "train.checkpoint_every=2", "train.keep_checkpoints=2", "eval.every=3",
    "data.train.limit=16", "data.validation_size=4", "data.eval.world-id.limit=4", "data.eval.world-ood.limit=4",
    "eval.samples=2", "eval.bootstrap=100", "eval.max_new_tokens=16",
    "train.length_warning_ratio=1.0",  # makes the per-step length check fire, so its state is compared too
]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    names = get_suite("smoke").methods
    suite = get_suite("smoke", [*RESUME, *(f"methods.{m}=null" for m in names if m != "gad")])
    out = tmp_path_factory.mktemp("resume")
    suite_dir = run_suite(suite, out / "a", progress=False)
    (run_id,) = [r.run_id for r in runs_of(suite)]
    return suite, suite_dir / run_id


def _rows(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "step_time" and not k.startswith("time/")}
            for r in read_jsonl(run_dir / "metrics.jsonl")]


@pytest.mark.parametrize("resume_from", [4, 3])  # mid-adversarial, and the warmup -> adversarial hand-off
def test_resume_is_bitwise_identical(uninterrupted, tmp_path, resume_from):
    suite, a = uninterrupted
    # checkpoint_every 2, keep 2, stage ends kept: steps 3 (warmup end), 4 and 6 remain
    assert sorted(p.name for p in (a / "checkpoints").iterdir()) == ["step-3", "step-4", "step-6"]
    b = tmp_path / "b" / suite.name / a.name
    shutil.copytree(a.parent, b.parent)
    # an interruption after step `resume_from`: later checkpoints and results gone, metrics rows left for
    # the trainer to trim
    for step in (4, 6):
        if step > resume_from:
            shutil.rmtree(b / "checkpoints" / f"step-{step}")
    for p in ("summary.json", "budget.json"):
        (b / p).unlink()
    shutil.rmtree(b / "eval" / "step-6")
    assert len(_rows(b)) == 6

    run_suite(suite, tmp_path / "b", resume=True, progress=False)

    sa, sb = (read_checkpoint(d / "checkpoints" / "step-6") for d in (a, b))
    assert sa.keys() == sb.keys() == {"step", "g", "d", "ref", "g_opt", "d_opt"}
    for key in ("g", "d", "ref", "g_opt", "d_opt"):
        assert _equal(sa[key], sb[key]), key
    assert _rows(a) == _rows(b)
    assert [r["step"] for r in _rows(b)] == [1, 2, 3, 4, 5, 6]
    ta, tb = read_json(a / "budget.json")["totals"], read_json(b / "budget.json")["totals"]
    ta.pop("wall_s"), tb.pop("wall_s")
    assert ta == tb
    assert read_json(a / "eval" / "step-6" / "metrics.json") == read_json(b / "eval" / "step-6" / "metrics.json")


def test_resume_refuses_checkpoints_of_the_earlier_format_in_one_line(tmp_path):
    """A run whose only checkpoint is an earlier version's state.pt stops instead of silently restarting."""
    from gadbench.config import ConfigError

    tr = _trainer(tmp_path, "seqkd", ["train.steps=2"])
    (tr.run.checkpoints / "step-1").mkdir(parents=True)
    (tr.run.checkpoints / "step-1" / "state.pt").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"written by an earlier gadbench version \(state.pt\)"):
        tr.train(resume=True)


def test_discriminator_diagnostics_at_every_evaluation(uninterrupted):
    """The run writes D's held-out accuracy, AUC and identical-text gap at every evaluation point, from the
    validation split (4 prompts x group 2 here), and the identical-text gap is ~0."""
    _, run = uninterrupted
    steps = sorted(int(p.name.split("-")[1]) for p in (run / "eval").iterdir())
    assert steps == [0, 3, 6]
    for step in steps:
        d = read_json(run / "eval" / f"step-{step}" / "metrics.json")["validation"]["d"]
        assert d["pairs"] == 4 * 2
        assert 0.0 <= d["auc"] <= 1.0 and 0.0 <= d["accuracy"]["mean"] <= 1.0
        assert d["accuracy"]["n_valid"] == 4 and d["accuracy"]["ci_low"] <= d["accuracy"]["mean"]
        assert d["identical_gap_max"] < 1e-4, (step, d)
    summary = read_json(run / "summary.json")
    assert summary["validation"]["d"]["pairs"] == 8  # the selected checkpoint's diagnostics reach the summary


def _record_rollouts(tr: Trainer) -> list[tuple[list[int], list[list[int]]]]:
    """(seeds, sampled ids) of every training rollout `tr.train()` makes, in order; evaluation (unseeded) is
    not recorded. The engine still generates: the wrapper only watches its calls."""
    calls, generate = [], tr.ctx.engine.generate

    def watched(model, prompts, n, temperature, max_new_tokens, top_p=1.0, seeds=None):
        roll = generate(model, prompts, n, temperature, max_new_tokens, top_p, seeds=seeds)
        if seeds is not None:
            calls.append((list(seeds), roll.response_ids))
        return roll

    tr.ctx.engine.generate = watched
    return calls


def test_rollout_seeds_follow_the_step_and_survive_a_resume(tmp_path):
    """Through Trainer.train: each step samples with its own seeds (every step of every real run once used
    step 0's), and a run interrupted after step 3 and resumed samples what the uninterrupted run samples."""
    extra = ["train.steps=6", "train.warmup_steps=3", "train.checkpoint_every=1"]
    tr = _trainer(tmp_path / "a", "gad", extra)
    calls = _record_rollouts(tr)
    tr.train()
    assert len(calls) == 6  # one rollout per step (warmup trains D on rollouts too)
    seeds = [c[0] for c in calls]
    assert all(seeds[k] != seeds[k + 1] for k in range(5)), seeds
    assert len({s for step in seeds for s in step}) == 6 * 4  # 6 steps x 4 prompts, all distinct

    b = tmp_path / "b"
    shutil.copytree(tmp_path / "a", b)
    run = b / tr.spec.run_id
    for step in (4, 5, 6):
        shutil.rmtree(run / "checkpoints" / f"step-{step}")
    resumed = Trainer(tr.spec, run, tr.data, progress=False)
    again = _record_rollouts(resumed)
    resumed.train(resume=True)
    assert again == calls[3:]


def test_length_warning_compares_each_step_with_its_own_batch(tmp_path):
    from gadbench.budget import Spend

    tr = _trainer(tmp_path, "gad", ["train.steps=6", "train.warmup_steps=2", "train.length_warning_ratio=1.0"])

    def teacher_len(step: int) -> float:  # by hand: response words + EOS, averaged over the step's 4 examples
        return sum(len(ex.teacher_response.split()) + 1 for ex in tr.data.batch(step, 4)) / 4

    lens = [teacher_len(k) for k in range(1, 7)]
    assert len(set(lens)) > 2, lens  # the batches differ, so a stale reference would be caught

    def fake_step(ctx, batch, step, k):  # odd steps answer just longer than their teacher, even steps just shorter
        return {"response_len": teacher_len(step) + (0.01 if step % 2 else -0.01)}, Spend()

    tr.plan = [dataclasses.replace(p, stage=dataclasses.replace(p.stage, step=fake_step)) for p in tr.plan]
    tr.train()
    flags = [bool(r.get("length_warning")) for r in read_jsonl(tr.run.metrics)]
    assert flags == [True, False, True, False, True, False]


# ---------------------------------------------------------------------------------------- (g) divergence


def test_nan_loss_stops_naming_step_and_checkpoint(tmp_path):
    # lr 1e30: step 1's Adam update moves every weight by ~1e30, so step 2's forward pass overflows to NaN
    tr = _trainer(tmp_path, "seqkd", ["train.lr_sft=1e30"])
    with pytest.raises(TrainingDiverged) as e:
        tr.train()
    msg = str(e.value)
    assert "sft_loss became nan at step 2" in msg
    assert "the last checkpoint written before it (step 1) is kept" in msg
    assert [r["step"] for r in read_jsonl(tr.run.metrics)] == [1]  # the diverged step is not logged
    assert sorted(p.name for p in tr.run.checkpoints.iterdir()) == ["step-1"]  # nor checkpointed


def test_each_step_logs_the_time_of_its_phases(tmp_path):
    tr = _trainer(tmp_path, "gad")
    tr.train()
    rows = list(read_jsonl(tr.run.metrics))
    phases = {r["stage"]: {k for k in r if k.startswith("time/")} for r in rows}
    assert phases["adversarial"] == {"time/rollout", "time/d", "time/ref", "time/g"}
    assert phases["warmup"] == {"time/rollout", "time/d", "time/g"}  # D and SFT; no reference in warmup
    first = rows[0]  # the D-only warmup step: no G phase
    assert {k for k in first if k.startswith("time/")} == {"time/rollout", "time/d"}
    for r in rows:
        parts = sum(v for k, v in r.items() if k.startswith("time/"))
        assert 0 < parts <= r["step_time"], r


def test_sft_update_trains_on_response_tokens_and_eos_only(tmp_path):
    """The SFT loss a step reports is the mean NLL over each teacher response's tokens and its EOS, computed
    here by hand from a plain forward pass: prompt tokens (and padding) carry no loss."""
    from gadbench.methods.updates import sft_update
    from gadbench.models import response_ids

    tr = _trainer(tmp_path, "seqkd")
    tr._begin_stage(0)
    ctx = tr.ctx
    batch = [Example("add 3 5", "answer : 8", {}), Example("rev c a b d", "the answer is b a c d .", {})]
    nll, count = 0.0, 0
    with torch.no_grad():
        for ex in batch:
            p, r = ctx.prompt_ids(ex.prompt), response_ids(ctx.g.tokenizer, ex.teacher_response, 24)[0]
            assert r[-1] == ctx.g.tokenizer.eos_token_id and len(r) == len(ex.teacher_response.split()) + 1
            ids = torch.tensor([p + r])
            logp = torch.log_softmax(ctx.g.model(input_ids=ids).logits[0].double(), dim=-1)
            nll -= sum(logp[len(p) - 1 + j, tok].item() for j, tok in enumerate(r))  # position t predicts t + 1
            count += len(r)
    metrics, spend = sft_update(ctx, batch)
    assert metrics["sft_loss"] == pytest.approx(nll / count, abs=1e-5), (metrics["sft_loss"], nll / count)
    assert spend.g_trained_tokens == sum(len(ctx.prompt_ids(ex.prompt)) + len(ex.teacher_response.split()) + 1
                                         for ex in batch)


def test_sft_update_trains_a_response_cut_at_the_limit_without_its_eos(tmp_path):
    """A teacher response longer than train.max_response_tokens (8 here) is trained on its first 7 tokens and no
    EOS (it does not end there); a complete one keeps its EOS. By hand from a plain forward pass."""
    from gadbench.methods.updates import sft_update

    tr = _trainer(tmp_path, "seqkd", ["train.max_response_tokens=8"])
    tr._begin_stage(0)
    ctx = tr.ctx
    eos = ctx.g.tokenizer.eos_token_id
    long, short = "the answer is b a c d . and more", "answer : 8"
    batch = [Example("rev c a b d", long, {}), Example("add 3 5", short, {})]
    targets = [ctx.g.tokenizer(long, add_special_tokens=False)["input_ids"][:7],
               ctx.g.tokenizer(short, add_special_tokens=False)["input_ids"] + [eos]]
    nll, count = 0.0, 0
    with torch.no_grad():
        for ex, r in zip(batch, targets, strict=True):
            p = ctx.prompt_ids(ex.prompt)
            logp = torch.log_softmax(ctx.g.model(input_ids=torch.tensor([p + r])).logits[0].double(), dim=-1)
            nll -= sum(logp[len(p) - 1 + j, tok].item() for j, tok in enumerate(r))
            count += len(r)
    metrics, _ = sft_update(ctx, batch)
    assert metrics["sft_loss"] == pytest.approx(nll / count, abs=1e-5), (metrics["sft_loss"], nll / count)
    assert count == 7 + 4, count
