"""What one step of each stage is expected to spend, under the budget's assumed lengths: the dry run's plan and
FLOP matching add these up (gadbench.methods.base.estimate_run). Each estimate is
(spec, params of G, params of D, step within the stage) -> {generated_tokens, g_trained_tokens,
d_trained_tokens, flops}."""

from __future__ import annotations

from gadbench.budget import inference_flops, train_flops


def shape(spec) -> tuple[int, int, int, int]:
    """(batch, group, tokens per sequence, tokens per response) under the budget's assumed lengths."""
    t, b = spec.train, spec.budget
    response = min(b.assumed_response_tokens, t.max_response_tokens)
    return t.batch_size, t.group_size, b.assumed_prompt_tokens + response, response


def zero() -> dict:
    return {"generated_tokens": 0, "g_trained_tokens": 0, "d_trained_tokens": 0, "flops": 0.0}


def add(out: dict, **parts) -> dict:
    for k, v in parts.items():
        out[k] += v
    return out


def sft_cost(spec, p: int, dp: int, k: int, out: dict | None = None) -> dict:
    B, _, seq, _ = shape(spec)
    return add(out or zero(), g_trained_tokens=B * seq, flops=train_flops(p, B * seq))


def rollout_cost(spec, p: int, out: dict) -> dict:
    B, N, seq, response = shape(spec)
    return add(out, generated_tokens=B * N * response, flops=inference_flops(p, B * N * seq))


def discriminator_cost(spec, dp: int, update: bool, out: dict) -> dict:
    B, N, seq, _ = shape(spec)
    tokens = B * (N + 1) * seq
    if update:
        return add(out, d_trained_tokens=tokens, flops=train_flops(dp, tokens))
    return add(out, flops=inference_flops(dp, tokens))


def grpo_cost(spec, p: int, out: dict) -> dict:
    B, N, seq, _ = shape(spec)
    ref = inference_flops(p, B * N * seq) if spec.train.kl_beta else 0.0
    return add(out, g_trained_tokens=B * N * seq, flops=train_flops(p, B * N * seq) + ref)


def warmup_cost(spec, p: int, dp: int, k: int) -> dict:
    """GAD's warmup: D against rollouts (when D warms up), G's SFT (when G warms up, after D's first steps alone)."""
    m, out = spec.method, zero()
    d_trains = m.discriminator != "none" and m.discriminator_warmup
    if d_trains:
        discriminator_cost(spec, dp, True, rollout_cost(spec, p, out))
    if m.generator_warmup and not (d_trains and k < spec.train.d_only_steps):
        sft_cost(spec, p, dp, k, out)
    return out


def d_fit_cost(spec, p: int, dp: int, k: int) -> dict:
    return discriminator_cost(spec, dp, True, rollout_cost(spec, p, zero()))


def adversarial_cost(update_d: bool):
    """Rollouts, D's scores (and its update when `update_d`) unless the reward is fixed, then GRPO."""

    def cost(spec, p: int, dp: int, k: int) -> dict:
        out = rollout_cost(spec, p, zero())
        if spec.method.discriminator != "none":
            discriminator_cost(spec, dp, update_d, out)
        return grpo_cost(spec, p, out)

    return cost
