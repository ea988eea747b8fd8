"""The method records (gadbench.methods) and the discriminator's pieces that the unit tests elsewhere do not
pin down, checked against hand-computed values: each stage's cost estimate (the dry run's plan and FLOP
matching), D's diagnostics computed independently from D's own scores, and how D is built (its head, its
seed, the model it is built from)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gadbench.config import ConfigError, ModelConfig
from gadbench.data import Example
from gadbench.methods import stage_plan
from gadbench.methods.gad import ADVERSARIAL, ADVERSARIAL_FROZEN_D, WARMUP, WARMUP_G_ONLY
from gadbench.methods.offpolicy import D_FIT
from gadbench.methods.rewards import gold_reward, make_reward, rouge_l_reward
from gadbench.methods.seqkd import SFT
from gadbench.methods.updates import DIAGNOSTIC_SEED, _d_forward, _d_sequences, d_diagnostics
from gadbench.metrics import summarize
from gadbench.models import build_discriminator, load_causal_lm
from gadbench.rollout.sampling import sequence_seed
from gadbench.rundata import load_run_data, run_teacher
from gadbench.suite import get_suite, runs_of
from gadbench.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
# Budget shape: B = 2 prompts x N = 3 samples; assumed 10 prompt + 5 response tokens, so 15 per sequence.
SHAPE = ["train.batch_size=2", "train.group_size=3", "budget.assumed_prompt_tokens=10",
         "budget.assumed_response_tokens=5", "train.max_response_tokens=8", "train.kl_beta=0.1",
         "train.d_only_steps=1"]
P, DP = 1000, 100  # G's and D's parameter counts


def _spec(method: str, extra: list[str] = ()):
    return next(r for r in runs_of(get_suite("smoke", [*SHAPE, *extra])) if r.method_name == method)


def _cost(generated=0, g=0, d=0, flops=0.0) -> dict:
    return {"generated_tokens": generated, "g_trained_tokens": g, "d_trained_tokens": d, "flops": flops}


# Per step by hand: rollout 2*3 sequences of 15 tokens (5 generated), D on 2*(3+1) = 8 sequences (120
# tokens), G on 6 sequences (90 tokens), the reference on the same 90; FLOPs 6 p t to train, 2 p t to infer.
ROLLOUT = _cost(generated=30, flops=2 * P * 90)
D_TRAIN = _cost(d=120, flops=6 * DP * 120)
D_SCORE = _cost(flops=2 * DP * 120)
GRPO = _cost(g=90, flops=6 * P * 90 + 2 * P * 90)
SFT_STEP = _cost(g=30, flops=6 * P * 30)  # the 2 teacher responses with their prompts


def _sum(*parts: dict) -> dict:
    return {k: sum(p[k] for p in parts) for k in parts[0]}


@pytest.mark.parametrize(("stage", "method", "extra", "k", "expected"), [
    (SFT, "seqkd", [], 0, SFT_STEP),
    (WARMUP, "gad", [], 0, _sum(ROLLOUT, D_TRAIN)),  # step 0 < d_only_steps: D alone
    (WARMUP, "gad", [], 1, _sum(ROLLOUT, D_TRAIN, SFT_STEP)),
    (WARMUP_G_ONLY, "gad-no-dwarmup", [], 1, SFT_STEP),
    (WARMUP, "gad-no-gwarmup", [], 1, _sum(ROLLOUT, D_TRAIN)),
    (D_FIT, "gad-offpolicy", [], 0, _sum(ROLLOUT, D_TRAIN)),
    (ADVERSARIAL, "gad", [], 0, _sum(ROLLOUT, D_TRAIN, GRPO)),
    (ADVERSARIAL_FROZEN_D, "gad-offpolicy", [], 0, _sum(ROLLOUT, D_SCORE, GRPO)),
    (ADVERSARIAL, "grpo-rouge", [], 0, _sum(ROLLOUT, GRPO)),  # a fixed reward: no D
    (ADVERSARIAL, "gad", ["train.kl_beta=0"], 0, _sum(ROLLOUT, D_TRAIN, _cost(g=90, flops=6 * P * 90))),
])
def test_each_stage_estimates_what_its_step_spends(stage, method, extra, k, expected):
    got = stage.estimate(_spec(method, extra), P, DP, k)
    assert got == pytest.approx(expected), (stage.name, method, got, expected)


def test_the_assumed_response_length_is_capped_by_max_response_tokens():
    got = ADVERSARIAL.estimate(_spec("grpo-rouge", ["budget.assumed_response_tokens=50"]), P, DP, 0)
    assert got == pytest.approx(_sum(_cost(generated=48, flops=2 * P * 108), _cost(g=108, flops=8 * P * 108)))


@pytest.mark.parametrize(("method", "lr"), [("gad", 2e-4), ("gad-no-dwarmup", 7e-4), ("gad-no-gwarmup", 2e-4)])
def test_warmup_trains_g_at_lr_warmup_and_without_d_warmup_at_seqkds_rate(tmp_path, method, lr):
    """Table 3's "w/o discriminator warmup" starts GAD from "the checkpoint after one SeqKD epoch" (the paper), so
    its warmup, G's SFT alone, runs at lr_sft; the joint warmup at lr_warmup. Checked on the optimizer a real
    Trainer builds for the first stage."""
    spec = _spec(method, ["train.lr_sft=7e-4", "train.lr_warmup=2e-4", "train.cpu_threads=1"])
    plan = stage_plan(spec)
    assert plan[0].name == "warmup" and plan[0].stage.g_lr == ("lr_sft" if method == "gad-no-dwarmup" else "lr_warmup")
    trainer = Trainer(spec, tmp_path, None, progress=False)
    trainer._begin_stage(0)
    assert [g["lr"] for g in trainer.ctx.g_opt.param_groups] == [lr]


# ------------------------------------------------------------------------------------------- diagnostics


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    suite = get_suite("smoke", ["train.group_size=3", "train.max_response_tokens=12", "train.cpu_threads=1",
                                "eval.bootstrap=200"])
    spec = next(r for r in runs_of(suite) if r.method_name == "gad")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GADBENCH_CACHE", str(REPO / "results" / "cache"))
        return Trainer(spec, tmp_path_factory.mktemp("run"), None, progress=False).ctx


@pytest.fixture(scope="module")
def examples(ctx) -> list[Example]:
    """World prompts with the teacher's answers (the run's validation split)."""
    return load_run_data(ctx.spec, run_teacher(ctx.spec)).validation


def test_d_diagnostics_equal_a_hand_computation_from_ds_own_scores(ctx, examples):
    examples = examples[:3]
    step, t = 7, ctx.spec.train
    got = d_diagnostics(ctx, examples, step)

    # The same rollouts (the diagnostics' seeds), then D's scores, one sequence at a time.
    seeds = [sequence_seed(ctx.spec.seed, DIAGNOSTIC_SEED + step, i) for i in range(3)]
    roll = ctx.engine.generate(ctx.g.model, [ctx.prompt_ids(ex.prompt) for ex in examples], 3, t.temperature,
                               t.max_response_tokens, t.top_p, seeds=seeds)
    teacher, student = _d_sequences(ctx, examples, roll)
    ctx.d.model.eval()
    with torch.no_grad():
        ts = [float(_d_forward(ctx, [s])[0]) for s in teacher]
        ss = [float(_d_forward(ctx, [s])[0]) for s in student]
    ctx.d.model.train()
    by_example = [[ss[j] for j in range(9) if roll.prompt_index[j] == i] for i in range(3)]
    wins = [sum(ts[i] > s for s in by_example[i]) / 3 for i in range(3)]
    pairs = [(a, b) for a in ts for b in ss]
    auc = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs) / len(pairs)

    assert got["pairs"] == 9 and 0 < got["auc"] < 1, got  # a D that ranks some pairs each way
    # Accuracy: per-example win rates, bootstrapped over the 3 examples with the suite's resample count.
    assert got["accuracy"] == pytest.approx(summarize(wins, 200), abs=1e-12), (got["accuracy"], wins)
    assert got["auc"] == pytest.approx(auc, abs=1e-12), (got["auc"], auc)
    assert got["teacher_score"] == pytest.approx(sum(ts) / 3, abs=1e-5), (got, ts)
    assert got["student_score"] == pytest.approx(sum(ss) / 9, abs=1e-5), (got, ss)
    # The teacher texts sent through the student side score as the teacher side: gaps of rounding only.
    assert got["identical_gap_max"] < 1e-5 and got["identical_gap_mean"] <= got["identical_gap_max"], got
    assert got["natural_identical"] == sum(text.strip() == examples[i].teacher_response
                                           for i, text in zip(roll.prompt_index, roll.texts, strict=True))


def test_a_sample_equal_to_its_teacher_counts_as_identical_and_its_gap_is_measured(ctx, examples):
    """Teacher responses set to what the diagnostics' own rollouts will say: every sample whose text equals
    its teacher's is counted, and its score gap is (rounding) zero."""
    examples = examples[3:5]
    step, t = 3, ctx.spec.train
    seeds = [sequence_seed(ctx.spec.seed, DIAGNOSTIC_SEED + step, i) for i in range(2)]
    roll = ctx.engine.generate(ctx.g.model, [ctx.prompt_ids(ex.prompt) for ex in examples], 3, t.temperature,
                               t.max_response_tokens, t.top_p, seeds=seeds)
    first = {roll.prompt_index[j]: roll.texts[j] for j in reversed(range(6))}  # each prompt's first sample
    examples = [Example(ex.prompt, first[i]) for i, ex in enumerate(examples)]
    got = d_diagnostics(ctx, examples, step)
    same = sum(text == first[i] for i, text in zip(roll.prompt_index, roll.texts, strict=True))
    assert got["natural_identical"] == same >= 2, (got, roll.texts)
    assert got["identical_gap_max"] < 1e-5, got


# ---------------------------------------------------------------------------------------- building D


def test_d_has_a_head_bias_only_under_the_ce_loss_and_its_head_follows_the_seed(ctx):
    bt, ce = (build_discriminator(ctx.g, None, seed=0, d_loss=loss) for loss in ("bt", "ce"))
    assert bt.model.head.bias is None and ce.model.head.bias is not None
    again, other = build_discriminator(ctx.g, None, seed=0), build_discriminator(ctx.g, None, seed=1)
    assert torch.equal(again.model.head.weight, bt.model.head.weight)
    assert not torch.equal(other.model.head.weight, bt.model.head.weight)


def test_d_is_built_from_its_own_model_when_one_is_given(ctx):
    """The discriminator-size ablation: D from world:small, not a copy of the student (world:tiny)."""
    small = load_causal_lm(ModelConfig(path="world:small")).model.config.hidden_size
    d = build_discriminator(ctx.g, ModelConfig(path="world:small"), seed=0)
    assert d.model.head.weight.shape[-1] == small != ctx.g.model.config.hidden_size, (small, d.model.head)


# ------------------------------------------------------------------------------------------- rewards


def test_fixed_rewards_refuse_lists_of_different_lengths():
    with pytest.raises(ValueError):
        rouge_l_reward(["p", "q"], ["a b", "c"], ["a b"])
    with pytest.raises(ValueError):
        gold_reward(["add 1 2"], ["3", "4"], ["3"])


# ------------------------------------------------------------------------------------------ stage plans


@pytest.mark.parametrize(("method", "extra", "expected"), [
    ("seqkd", [], [(SFT, 12)]),
    ("gad", [], [(WARMUP, 4), (ADVERSARIAL, 8)]),
    ("grpo-rouge", [], [(WARMUP, 4), (ADVERSARIAL, 8)]),  # a fixed reward: the online step with no D
    ("gad", ["methods.gad.discriminator=frozen-after-warmup"], [(WARMUP, 4), (ADVERSARIAL_FROZEN_D, 8)]),
    ("gad-offpolicy", [], [(SFT, 4), (D_FIT, 3), (ADVERSARIAL_FROZEN_D, 8)]),
    ("gad", ["train.warmup_steps=12"], [(WARMUP, 12)]),  # a stage of 0 steps is dropped
    ("gad", ["train.warmup_steps=11"], [(WARMUP, 11), (ADVERSARIAL, 1)]),  # a stage of 1 step is kept
])
def test_each_method_plans_its_stages(method, extra, expected):
    spec = _spec(method, ["train.steps=12", "train.warmup_steps=4", "train.offpolicy_d_steps=3", *extra])
    got = [(p.stage, p.steps) for p in stage_plan(spec)]
    assert got == expected, [(s.name, s.step, n) for s, n in got]


@pytest.mark.parametrize("switch", ["discriminator=frozen-after-warmup", "generator_warmup=false",
                                    "discriminator_warmup=false"])
def test_the_offpolicy_method_refuses_switches_that_change_its_schedule(switch):
    with pytest.raises(ConfigError) as e:
        get_suite("smoke", [f"methods.gad-offpolicy.{switch}"])
    assert ("kind gad-offpolicy fixes its own schedule (SeqKD, then D alone, then RL against the frozen D); "
            "leave discriminator, generator_warmup and discriminator_warmup at their defaults") in str(e.value)


def test_the_gold_reward_outside_the_world_says_what_to_use():
    spec = _spec("grpo-rouge", ["methods.grpo-rouge.reward=gold", "teacher.spec=dataset"])
    with pytest.raises(ConfigError) as e:
        make_reward(spec)
    assert str(e.value) == ("method `grpo-rouge`: reward `gold` exists only in the synthetic world (teacher: "
                            "program); use rouge-l or a dotted path."), str(e.value)
