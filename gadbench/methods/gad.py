"""GAD: a joint warmup (D against the student's rollouts, G by SFT on the teacher's responses), then the
adversarial stage. The paper's ablations are switches of this one method (gadbench.config.MethodConfig):

    generator_warmup / discriminator_warmup: false    w/o generator / discriminator warmup (Table 3)
    d_loss: ce                                        the GAN cross-entropy loss for D (Table 4)
    d_model: PATH                                     D built from another model (Table 5)
    discriminator: frozen-after-warmup                D stops training when the warmup ends
    discriminator: none, reward: R                    no D: GRPO on a fixed reward (gadbench.methods.rewards)

Order of an adversarial step, as in the paper's verl code: rollout N samples per prompt -> D scores them (these
scores are the rewards) -> one D update (BT) -> one GRPO update of G with the rewards from before D's update.
"""

from __future__ import annotations

import torch

from gadbench import dist
from gadbench.budget import Spend
from gadbench.methods.base import Identity, Method, Stage, register_method
from gadbench.methods.context import Context
from gadbench.methods.cost import adversarial_cost, warmup_cost
from gadbench.methods.rewards import reward_problem
from gadbench.methods.updates import d_score_and_update, grpo_update, rollout, rollout_metrics, sft_update


def rollout_and_d_update(ctx: Context, batch: list, step: int) -> tuple[dict, Spend]:
    """Rollouts of the current G and one D update against them (the teacher responses over each sample)."""
    roll, spend = rollout(ctx, batch, step)
    metrics = rollout_metrics(ctx, batch, roll)
    _, dm, s = d_score_and_update(ctx, batch, roll, update=True)
    metrics.update(dm)
    spend.add(s)
    return metrics, spend


def warmup_step(ctx: Context, batch: list, step: int, step_in_stage: int) -> tuple[dict, Spend]:
    """D trains with its loss against the current student's rollouts; G trains with SFT on the teacher
    responses, except during the first `d_only_steps` steps (D alone)."""
    m, t = ctx.spec.method, ctx.spec.train
    metrics, spend = {}, Spend(prompts=len(batch), teacher_responses=len(batch))
    train_d = ctx.d is not None and m.discriminator_warmup
    if train_d:
        dm, s = rollout_and_d_update(ctx, batch, step)
        metrics.update(dm)
        spend.add(s)
    d_only = train_d and step_in_stage < t.d_only_steps
    if m.generator_warmup and not d_only:
        gm, s = sft_update(ctx, batch)
        s.prompts = s.teacher_responses = 0  # counted once above
        metrics.update(gm)
        spend.add(s)
    return metrics, spend


def _adversarial(ctx: Context, batch: list, step: int, update_d: bool) -> tuple[dict, Spend]:
    """Rollout -> rewards (D before its update, or the fixed reward) -> D update if `update_d` -> GRPO."""
    roll, spend = rollout(ctx, batch, step)
    spend.prompts = spend.teacher_responses = len(batch)
    metrics = rollout_metrics(ctx, batch, roll)
    if ctx.d is not None:
        rewards_, dm, s = d_score_and_update(ctx, batch, roll, update=update_d)
        metrics.update(dm)
        spend.add(s)
    else:
        prompts = [batch[i].prompt for i in roll.prompt_index]
        teachers = [batch[i].teacher_response for i in roll.prompt_index]
        rewards_ = torch.tensor(ctx.reward_fn(prompts, roll.texts, teachers), dtype=torch.float32)
    if ctx.shaping:
        rewards_ = rewards_ + shaping(ctx, batch, roll, metrics)
    total, squares, count = dist.all_sum([float(rewards_.sum()), float((rewards_.double() ** 2).sum()),
                                          rewards_.numel()])
    metrics["reward_mean"] = total / count
    metrics["reward_std"] = max(squares - count * metrics["reward_mean"] ** 2, 0.0) ** 0.5 / max(count - 1, 1) ** 0.5
    gm, s = grpo_update(ctx, batch, roll, rewards_)
    s.prompts = 0
    metrics.update(gm)
    spend.add(s)
    return metrics, spend


def shaping(ctx: Context, batch: list, roll, metrics: dict) -> torch.Tensor:
    """sum_i w_i r_i(texts) over `method.shaping`; each term's mean goes to `metrics` as `shaping/<name>`."""
    prompts = [batch[i].prompt for i in roll.prompt_index]
    teachers = [batch[i].teacher_response for i in roll.prompt_index]
    total = torch.zeros(len(roll.texts))
    for name, reward, weight in ctx.shaping:
        term = torch.tensor(reward(prompts, roll.texts, teachers), dtype=torch.float32)
        term_sum, count = dist.all_sum([float(term.sum()), term.numel()])
        metrics[f"shaping/{name}"] = term_sum / count
        total += weight * term
    return total


def adversarial_step(ctx: Context, batch: list, step: int, step_in_stage: int) -> tuple[dict, Spend]:
    """GRPO on D's scores (or the fixed reward), and one D update per step (the online D)."""
    return _adversarial(ctx, batch, step, update_d=True)


def adversarial_frozen_d_step(ctx: Context, batch: list, step: int, step_in_stage: int) -> tuple[dict, Spend]:
    """GRPO against a D that no longer trains."""
    return _adversarial(ctx, batch, step, update_d=False)


WARMUP = Stage("warmup", warmup_step, "lr_warmup", False, warmup_cost)
# w/o discriminator warmup: the paper's G is "the checkpoint after one SeqKD epoch", so it trains at SeqKD's rate
WARMUP_G_ONLY = Stage("warmup", warmup_step, "lr_sft", False, warmup_cost)
ADVERSARIAL = Stage("adversarial", adversarial_step, "lr_generator", True, adversarial_cost(update_d=True))
ADVERSARIAL_FROZEN_D = Stage("adversarial", adversarial_frozen_d_step, "lr_generator", True,
                             adversarial_cost(update_d=False))


def gad_stages(spec, steps: int) -> list:
    """The joint warmup (G at lr_warmup; without D's warmup, G's SFT alone is one SeqKD epoch, at lr_sft), then
    the adversarial stage."""
    warm = min(spec.train.warmup_steps, steps)
    online = spec.method.discriminator in ("online", "none")  # `none`: a fixed reward, no D to update
    warmup = WARMUP if spec.method.discriminator_warmup else WARMUP_G_ONLY
    return [(warmup, warm), (ADVERSARIAL if online else ADVERSARIAL_FROZEN_D, steps - warm)]


def _model_label(path: str) -> str:
    """`Qwen/Qwen2.5-7B-Instruct` -> `Qwen2.5-7B-Instruct`."""
    return str(path).rstrip("/").split("/")[-1]


def identity(m, student) -> Identity:
    """GAD, or the ablation its switches make: key `gad:<switch>,...` (baselines/paper.json's keys), labelled by
    its switches, grouped by the first."""
    found = []  # (group, key part, label part)
    if m.discriminator == "frozen-after-warmup":
        found.append(("frozen discriminator", "frozen-after-warmup", "D frozen after warmup"))
    if m.discriminator == "none":
        found.append(("no discriminator", "no-discriminator", f"no discriminator (reward: {m.reward})"))
    if not m.generator_warmup:
        found.append(("warmup", "no-generator-warmup", "w/o generator warmup"))
    if not m.discriminator_warmup:
        found.append(("warmup", "no-discriminator-warmup", "w/o discriminator warmup"))
    if m.d_loss != "bt":
        found.append(("discriminator loss", f"d_loss={m.d_loss}", f"D loss: {m.d_loss}"))
    if m.d_model and _model_label(m.d_model).lower() != _model_label(student.path).lower():
        found.append(("discriminator size", f"d_model={_model_label(m.d_model)}", f"D: {_model_label(m.d_model)}"))
    if m.shaping:
        terms = " + ".join(f"{w:g} {name.rpartition(':')[2]}" for name, w in m.shaping.items())
        found.append(("reward shaping", "shaping=" + ",".join(f"{n}*{w:g}" for n, w in m.shaping.items()),
                      f"reward + {terms}"))
    if not found:
        return Identity("gad", "gad", "GAD")
    return Identity("gad:" + ",".join(k for _, k, _ in found), "gad", "GAD, " + ", ".join(lbl for _, _, lbl in found),
                    found[0][0])


def _check(m) -> str | None:
    if m.discriminator == "none":
        if m.reward == "discriminator":
            return "discriminator: none needs a fixed reward; set reward to rouge-l, gold or a dotted path"
        return reward_problem(m.reward)
    if m.reward != "discriminator":
        return f"reward `{m.reward}` replaces the discriminator; it needs discriminator: none"
    return next((f"shaping: {p}" for name in m.shaping if (p := reward_problem(name))), None)


GAD = register_method(Method(
    "gad",
    stages=gad_stages,
    uses_d=lambda m: m.discriminator != "none",
    identity=identity,
    check=_check,
    fixed_reward=lambda m: m.discriminator == "none",
))
