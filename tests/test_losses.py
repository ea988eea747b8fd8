"""The pure losses of gadbench.losses against hand-computed numbers, and grpo_loss against TRL's GRPOTrainer."""

from __future__ import annotations

import math

import pytest
import torch

from gadbench import losses as alg

LN2 = 0.6931471805599453
LN3 = 1.0986122886681098
# -log sigmoid(x) = log(1 + e^-x)
NLS_0 = LN2  # log 2
NLS_1 = 0.31326168751822286  # log(1 + e^-1)
NLS_2 = 0.1269280110429726  # log(1 + e^-2)
NLS_M1 = 1.3132616875182228  # log(1 + e^1)


# ------------------------------------------------------------------------------------------ advantages


def test_group_advantages_two_groups_unbiased_std_and_constant_group():
    r = torch.tensor([1.0, 2.0, 3.0, 5.0, 5.0, 5.0])
    adv = alg.group_advantages(r, group_size=3)
    # group 1: mean 2, unbiased std sqrt((1 + 0 + 1) / (3 - 1)) = 1 -> (-1, 0, 1) / (1 + 1e-6)
    # group 2: all equal -> 0 (not NaN)
    expected = torch.tensor([-1 / (1 + 1e-6), 0.0, 1 / (1 + 1e-6), 0.0, 0.0, 0.0], dtype=torch.float64)
    assert torch.allclose(adv, expected, atol=1e-7)
    assert torch.isfinite(adv).all()


def test_group_advantages_pairs_use_bessel_correction():
    adv = alg.group_advantages(torch.tensor([0.0, 4.0, 1.0, 3.0]), group_size=2)
    # [0, 4]: mean 2, unbiased std sqrt((4 + 4) / 1) = 2*sqrt(2) -> -+2 / 2.8284271 = -+0.7071068
    # (the biased std would be 2 -> -+1). [1, 3]: mean 2, std sqrt(2) -> -+1 / 1.4142136 = -+0.7071068
    assert torch.allclose(adv, torch.tensor([-0.70710678, 0.70710678, -0.70710678, 0.70710678], dtype=torch.float64),
                          atol=1e-6)


@pytest.mark.parametrize("group_size", [8, 16])
def test_tied_groups_get_exactly_zero_advantages(group_size):
    """Constant groups of float32 values that are not representable (0.7, 0.1, 1/3, ...): in float32 their
    mean is an ulp off, which once gave every member the same non-zero advantage (up to 0.47)."""
    g = torch.Generator().manual_seed(0)
    values = torch.cat([torch.tensor([0.7, 0.1, 1 / 3, -2.3, 1e4 / 3, 1e-3]), torch.randn(2000, generator=g) * 7])
    rewards = values.float().repeat_interleave(group_size)
    adv = alg.group_advantages(rewards, group_size)
    assert adv.abs().max().item() == 0.0, f"worst |A| = {adv.abs().max().item()}"


def test_groups_differing_by_rounding_alone_are_ties_but_real_differences_are_not():
    # one float32 ulp apart around 5.0 (the same text scored at another padding): a tie, A = 0
    ulp = torch.tensor([5.0, 5.0, 5.0, 5.0]).nextafter(torch.tensor(6.0))
    tied = torch.tensor([5.0, 5.0, 5.0, 5.0]).float()
    tied[1] = ulp[1]
    assert torch.equal(alg.group_advantages(tied, 4), torch.zeros(4, dtype=torch.float64))
    # a difference of 1e-3 is a preference: mean 0.00025, unbiased std 0.0005 -> (0.00075 / 0.0005, ...) = 1.5, -0.5
    real = torch.tensor([1e-3, 0.0, 0.0, 0.0], dtype=torch.float64)
    adv = alg.group_advantages(real, 4)
    assert adv[0].item() == pytest.approx(0.00075 / (0.0005 + 1e-6), rel=1e-9)
    assert adv[1].item() == pytest.approx(-0.00025 / (0.0005 + 1e-6), rel=1e-9)


def test_group_advantages_rejects_ragged_groups():
    with pytest.raises(ValueError, match="groups of 4"):
        alg.group_advantages(torch.zeros(6), group_size=4)


# ---------------------------------------------------------------------------------------------- k3 KL


def test_k3_kl_value_zero_and_nonnegative():
    # d = ref - logp = log(0.25) - log(0.5) = -ln 2: exp(d) - d - 1 = 0.5 + 0.6931472 - 1 = 0.1931472
    v = alg.k3_kl(torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)]))
    assert v.item() == pytest.approx(0.1931471805599454, abs=1e-6)
    # d = +ln 2: 2 - 0.6931472 - 1 = 0.3068528 (the estimator is not symmetric)
    v = alg.k3_kl(torch.tensor([math.log(0.25)]), torch.tensor([math.log(0.5)]))
    assert v.item() == pytest.approx(0.3068528194400546, abs=1e-6)
    x = torch.linspace(-5, 0, 11)
    assert torch.equal(alg.k3_kl(x, x), torch.zeros(11))
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1000, generator=g) * 3, torch.randn(1000, generator=g) * 3
    assert (alg.k3_kl(a, b) >= 0).all()


def test_k3_kl_is_clamped_at_10_like_verl():
    # d = ref - logp = 3: e^3 - 3 - 1 = 16.09 -> 10; d = 2.5: e^2.5 - 3.5 = 8.68 (below the clamp, unchanged)
    logp = torch.zeros(2, requires_grad=True)
    kl = alg.k3_kl(logp, torch.tensor([3.0, 2.5]))
    assert kl.tolist() == pytest.approx([10.0, math.exp(2.5) - 3.5], abs=1e-5)
    kl.sum().backward()
    # d/dlogp (e^d - d - 1) = 1 - e^d: none beyond the clamp, 1 - e^2.5 below it
    assert logp.grad.tolist() == pytest.approx([0.0, 1 - math.exp(2.5)], abs=1e-5)


# --------------------------------------------------------------------------------------------- GRPO loss


def _grpo_example(requires_grad: bool = False):
    """2x3 batch. ratios row 0: 1.5, 0.5, 1.1 (A = +2); row 1: 1.5, 0.5, 0.9 (A = -1), last token masked."""
    ratios = torch.tensor([[1.5, 0.5, 1.1], [1.5, 0.5, 0.9]], dtype=torch.float64)
    old = torch.full((2, 3), math.log(0.2), dtype=torch.float64)
    logp = (old + ratios.log()).clone().requires_grad_(requires_grad)
    # ref - logp = 0 on row 0 (KL 0), +ln 2 on row 1 (k3 = 2 - ln2 - 1 = 0.3068528)
    ref = logp.detach() + torch.tensor([[0.0] * 3, [LN2] * 3], dtype=torch.float64)
    adv = torch.tensor([2.0, -1.0], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    return logp, old, ref, adv, mask


def test_grpo_loss_clipping_both_signs_beta_and_mask():
    logp, old, ref, adv, mask = _grpo_example()
    loss, stats = alg.grpo_loss(logp, old, ref, adv, mask, clip_ratio=0.2, beta=0.1)
    # Per token pg = -min(r*A, clip(r, 0.8, 1.2)*A):
    #   row 0 (A=+2): r=1.5 -> -min(3.0, 2.4) = -2.4 (clipped); r=0.5 -> -min(1.0, 1.6) = -1.0; r=1.1 -> -2.2
    #   row 1 (A=-1): r=1.5 -> -min(-1.5, -1.2) = 1.5; r=0.5 -> -min(-0.5, -0.8) = 0.8 (clipped); r=0.9 masked
    # sum pg = -2.4 - 1.0 - 2.2 + 1.5 + 0.8 = -3.3 over N = 5 tokens -> pg_loss = -0.66
    # KL: 2 unmasked row-1 tokens of 0.3068528 -> 0.6137056 / 5 = 0.1227411
    # loss = (-3.3 + 0.1 * 0.6137056) / 5 = -0.6477259
    assert loss.item() == pytest.approx(-0.6477258872223978, abs=1e-9)
    assert stats["pg_loss"] == pytest.approx(-0.66, abs=1e-9)
    assert stats["kl"] == pytest.approx(0.6137056388801092 / 5, abs=1e-9)
    # |r - 1| > 0.2 on 4 of the 5 unmasked tokens (1.5, 0.5, 1.5, 0.5; not 1.1)
    assert stats["clip_frac"] == pytest.approx(0.8)


def test_grpo_loss_num_tokens_override_and_no_reference():
    logp, old, ref, adv, mask = _grpo_example()
    loss, stats = alg.grpo_loss(logp, old, ref, adv, mask, clip_ratio=0.2, beta=0.1, num_tokens=10)
    # same sums divided by 10 instead of 5: (-3.3 + 0.06137056) / 10
    assert loss.item() == pytest.approx(-0.3238629436111989, abs=1e-9)
    assert stats["pg_loss"] == pytest.approx(-0.33, abs=1e-9)
    for r, b in ((None, 0.1), (ref, 0.0)):
        loss, stats = alg.grpo_loss(logp, old, r, adv, mask, clip_ratio=0.2, beta=b)
        assert loss.item() == pytest.approx(-0.66, abs=1e-9)
        assert stats["kl"] == 0.0


def test_grpo_loss_gradient_is_zero_on_clipped_and_masked_tokens():
    logp, old, ref, adv, mask = _grpo_example(requires_grad=True)
    loss, _ = alg.grpo_loss(logp, old, ref, adv, mask, clip_ratio=0.2, beta=0.1)
    loss.backward()
    # d/dlogp of -r*A/N is -r*A/N where unclipped; d k3/dlogp = 1 - exp(ref - logp) (0 on row 0, -1 on row 1)
    #   [0,0] clipped, KL 0 -> 0;  [0,1] -0.5*2/5 = -0.2;  [0,2] -1.1*2/5 = -0.44
    #   [1,0] -1.5*(-1)/5 + 0.1*(-1)/5 = 0.3 - 0.02 = 0.28;  [1,1] clipped -> KL only: -0.02;  [1,2] masked -> 0
    expected = torch.tensor([[0.0, -0.2, -0.44], [0.28, -0.02, 0.0]], dtype=torch.float64)
    assert torch.allclose(logp.grad, expected, atol=1e-12)


def test_grpo_loss_ratio_one_is_plain_policy_gradient():
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]])
    adv = torch.tensor([1.0, -3.0])
    loss, stats = alg.grpo_loss(logp, logp, None, adv, torch.ones(2, 2))
    # ratio 1 everywhere: pg = -A per token: (-1 - 1 + 3 + 3) / 4 = 1.0, nothing clipped
    assert loss.item() == pytest.approx(1.0)
    assert stats["clip_frac"] == 0.0


# ------------------------------------------------------------------------------------- discriminator


TEACHER = torch.tensor([1.0, 0.0])
STUDENT = torch.tensor([[0.0, 1.0], [0.0, -2.0]])  # N = 2 samples per teacher response


def test_bradley_terry_loss_value_and_flat_form():
    # diffs t - s: 1, 0 | 0, 2 -> mean of log(1 + e^-d) = (0.3132617 + 0.6931472 + 0.6931472 + 0.1269280) / 4
    expected = (NLS_1 + NLS_0 + NLS_0 + NLS_2) / 4
    assert expected == pytest.approx(0.4566210149202715)
    assert alg.bradley_terry_loss(TEACHER, STUDENT).item() == pytest.approx(expected, abs=1e-6)
    assert alg.bradley_terry_loss(TEACHER, STUDENT.reshape(-1)).item() == pytest.approx(expected, abs=1e-6)


def test_cross_entropy_d_loss_value_and_flat_form():
    # pairs (t, s): -log sig(t) - log(1 - sig(s)) = log(1+e^-t) + log(1+e^s)
    # (1, 0): 0.3132617 + 0.6931472; (1, 1): 0.3132617 + 1.3132617; (0, 0): 2 * 0.6931472; (0, -2): 0.6931472 + 0.1269280
    expected = (NLS_1 + NLS_0 + NLS_1 + NLS_M1 + NLS_0 + NLS_0 + NLS_0 + NLS_2) / 4
    assert expected == pytest.approx(1.2098254489593556)
    assert alg.cross_entropy_d_loss(TEACHER, STUDENT).item() == pytest.approx(expected, abs=1e-6)
    assert alg.cross_entropy_d_loss(TEACHER, STUDENT.reshape(-1)).item() == pytest.approx(expected, abs=1e-6)


def test_d_loss_pairs_each_sample_with_its_own_teacher():
    # If the flat form were paired prompt-minor (teacher [b] with student [i*B + b]) the value would differ:
    # the correct pairing of [B*N] is prompt-major. t = (5, -5), s = (5, 5 | -5, -5) -> all diffs 0 -> log 2.
    t = torch.tensor([5.0, -5.0])
    s = torch.tensor([5.0, 5.0, -5.0, -5.0])
    assert alg.bradley_terry_loss(t, s).item() == pytest.approx(LN2, abs=1e-6)


def test_discriminator_accuracy():
    # pairs (1>0) yes, (1>1) no (ties are not wins), (0>0) no, (0>-2) yes -> 2 / 4
    assert alg.discriminator_accuracy(TEACHER, STUDENT) == 0.5
    assert alg.discriminator_accuracy(TEACHER, STUDENT.reshape(-1)) == 0.5
    assert alg.discriminator_accuracy(torch.tensor([3.0]), torch.tensor([1.0, 2.0, 4.0])) == pytest.approx(2 / 3)


# -------------------------------------------------------------------------------------------------- SFT


def test_sft_loss_token_mean_with_mask():
    logits = torch.zeros(2, 3, 3)
    targets = torch.zeros(2, 3, dtype=torch.long)
    logits[0, 1, 0] = LN2  # p(0) = 2 / (2 + 1 + 1) = 0.5 -> nll ln 2
    logits[0, 2, 2] = 100.0  # masked, would dominate (nll ~ 100)
    logits[1, 0, 1] = LN3  # target 1: p = 3 / (1 + 3 + 1) -> nll ln(5/3) = 0.5108256
    targets[1, 0] = 1
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    # row 0: ln 3 (uniform) + ln 2; row 1: ln(5/3). Token mean over 3 tokens:
    # (1.0986123 + 0.6931472 + 0.5108256) / 3 = 0.7675284 (the per-sequence mean would be 0.7033527)
    logp = torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None]).squeeze(-1)
    assert alg.sft_loss(logp, mask).item() == pytest.approx(0.7675283643313486, abs=1e-6)
    assert alg.sft_loss(logp, mask, num_tokens=4).item() == pytest.approx(0.5756462732485115, abs=1e-6)


# --------------------------------------------------------------------------------------- TRL cross-check


def test_grpo_loss_matches_trl_bnpo(tmp_path):
    trl = pytest.importorskip("trl")
    from datasets import Dataset

    from gadbench.sequences import pack, token_logprobs
    from tests.tinymodels import build_tiny_model

    torch.set_num_threads(1)
    model, tok = build_tiny_model(tmp_path / "model", arch="qwen2")
    cfg = trl.GRPOConfig(
        output_dir=str(tmp_path / "out"), bf16=False, gradient_checkpointing=False, use_vllm=False, report_to="none",
        loss_type="bnpo", beta=0.001, epsilon=0.2, num_generations=2, per_device_train_batch_size=2,
        max_completion_length=8, temperature=0.7, use_cpu=True,
        # TRL 1.x multiplies the KL term by the importance ratio by default; verl's low_var_kl (and gadbench,
        # whose single update per rollout has ratio 1) does not, so compare the plain k3 term.
        use_bias_correction_kl=False,
    )
    trainer = trl.GRPOTrainer(
        model=model, reward_funcs=lambda completions, **kw: [0.0] * len(completions), args=cfg,
        train_dataset=Dataset.from_dict({"prompt": ["a b", "c d"]}), processing_class=tok,
    )
    trainer.model.eval()  # "eval" mode: TRL divides by no gradient-accumulation count

    # Two sequences with equal-length prompts (TRL left-pads prompts, gadbench right-pads the whole sequence;
    # with equal prompts both layouts put every real token at the same position) and completions of 5 and 3
    # tokens, right-padded to 5.
    prompts = [tok("def foo(x):", add_special_tokens=False)["input_ids"],
               tok("class Bar:", add_special_tokens=False)["input_ids"]]
    width = min(map(len, prompts))
    prompts = [p[:width] for p in prompts]
    completions = [tok(" return x + 1", add_special_tokens=False)["input_ids"][:4] + [tok.eos_token_id],
                   tok(" pass", add_special_tokens=False)["input_ids"][:2] + [tok.eos_token_id]]
    T = max(map(len, completions))
    pad = tok.pad_token_id
    completion_ids = torch.tensor([c + [pad] * (T - len(c)) for c in completions])
    completion_mask = torch.tensor([[1] * len(c) + [0] * (T - len(c)) for c in completions])

    packed = pack(prompts, completions, pad)
    with torch.no_grad():
        # log-probs of the sampling policy softmax(logits / T), as TRL computes them
        logp = token_logprobs(model, packed, temperature=0.7)[:, width - 1 : width - 1 + T]
        trl_logp = trainer._get_per_token_logps_and_entropies(
            trainer.model, torch.cat([torch.tensor(prompts), completion_ids], dim=1),
            torch.cat([torch.ones(2, width, dtype=torch.long), completion_mask], dim=1), T)[0]
    mask = packed.target_mask[:, width - 1 : width - 1 + T]
    assert torch.equal(mask, completion_mask)
    assert torch.allclose(logp * mask, trl_logp * mask, atol=1e-5), (logp * mask - trl_logp * mask).abs().max()

    g = torch.Generator().manual_seed(0)
    # old log-probs shifted by up to +-0.5 nats: ratios in [0.6, 1.65], so both clip sides trigger
    old = logp + (torch.rand(logp.shape, generator=g) - 0.5)
    ref = logp + (torch.rand(logp.shape, generator=g) - 0.5) * 3.0  # +-1.5 nats: beta * KL ~ 1e-4 >> atol
    adv = torch.tensor([1.3, -0.7])
    inputs = {
        "prompt_ids": torch.tensor(prompts), "prompt_mask": torch.ones(2, width, dtype=torch.long),
        "completion_ids": completion_ids, "completion_mask": completion_mask, "advantages": adv,
        "old_per_token_logps": old, "ref_per_token_logps": ref,
        "num_items_in_batch": completion_mask.sum(),
    }
    with torch.no_grad():
        ours, stats = alg.grpo_loss(logp, old, ref, adv, mask, clip_ratio=0.2, beta=0.001)
        theirs = trainer._compute_loss(trainer.model, inputs)
    assert stats["clip_frac"] > 0  # the comparison exercises clipping
    assert stats["kl"] * 0.001 > 1e-4  # and the KL term is large enough to be seen at atol 1e-5
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-5)

    # num_tokens: TRL's `dapo` normalises by num_items_in_batch, like gadbench's whole-batch token count
    trainer.loss_type = "dapo"
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    inputs["num_items_in_batch"] = torch.tensor(20.0)
    with torch.no_grad():
        ours, _ = alg.grpo_loss(logp, old, ref, adv, mask, clip_ratio=0.2, beta=0.001, num_tokens=20)
        theirs = trainer._compute_loss(trainer.model, inputs)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-5)


def test_the_tie_threshold_is_relative_to_each_groups_own_reward_scale():
    """Tied when std <= 1e-6 * max(1, mean |r|) of the group itself: a spread of 5e-4 around 1000 is rounding
    (tied, zeros), a spread of 1.5e-6 around 1 is a preference (threshold 1e-6, not 2e-6, and not the
    batch's mean |r|), so its advantages are +-(d/2) / (d/sqrt(2) + eps)."""
    d = 1.5e-6
    adv = alg.group_advantages(torch.tensor([1000.0, 1000.0 + 5e-4, 1.0, 1.0 + d], dtype=torch.float64), 2)
    a = (d / 2) / (d / math.sqrt(2) + 1e-6)
    assert adv.tolist() == pytest.approx([0.0, 0.0, -a, a], rel=1e-9, abs=0.0), adv.tolist()
