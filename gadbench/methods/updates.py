"""The updates that methods' steps are made of, over a batch of (prompt, teacher response) examples: G's SFT
update, rollouts, D's scores and update, G's GRPO update, and D's held-out diagnostics. Each returns its metrics
and what it spent (gadbench.budget.Spend)."""

from __future__ import annotations

import torch
from torch.distributed.tensor import DTensor

from gadbench import dist
from gadbench import losses as alg
from gadbench.budget import Spend, inference_flops, train_flops
from gadbench.methods.context import Context
from gadbench.metrics import auc, summarize
from gadbench.models import encode_pair, normalize_response, response_ids
from gadbench.rollout.base import Rollout, decode_response
from gadbench.rollout.sampling import sequence_seed
from gadbench.sequences import budget_ranges, group, micro_batch_plan, micro_batches, pack, token_logprobs


def _mean(total: float, count: float) -> float:
    """Mean over all ranks of a quantity summed to `total` over `count` items on this rank."""
    t, n = dist.all_sum([total, count])
    return t / n if n else 0.0


def _clip_and_step(params, opt: torch.optim.Optimizer, clip: float) -> float:
    norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))
    if isinstance(norm, DTensor):  # sharded model: the norm over all shards
        norm = norm.full_tensor()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(norm)


# ------------------------------------------------------------------------------------------- generator


def sft_update(ctx: Context, batch: list) -> tuple[dict, Spend]:
    """Cross-entropy on the teacher responses (response tokens only), token-mean over the whole batch; a response
    longer than train.max_response_tokens is cut and trained without the EOS that would end it."""
    t = ctx.spec.train
    tok = ctx.g.tokenizer
    prompts = [ctx.prompt_ids(ex.prompt) for ex in batch]
    encoded = [response_ids(tok, ex.teacher_response, t.max_response_tokens) for ex in batch]
    # A response cut at the limit stops mid-answer: its appended EOS is no target, else the student learns to stop
    # there (the EOS stays for D, which must not tell the sides apart by their ending).
    responses = [ids[:-1] if cut else ids for ids, cut in encoded]
    packed = pack(prompts, responses, tok.pad_token_id, ctx.device)
    n_tokens = dist.all_sum([packed.response_tokens])[0]
    total = 0.0
    ctx.g.model.train()
    with ctx.phase("g"):
        for _, _, mb in micro_batch_plan(packed, t.micro_batch_size, t.max_tokens_per_micro_batch):
            with ctx.autocast():  # the LM head runs on response positions only
                logp = token_logprobs(ctx.g.model, mb, chunk_tokens=t.logprob_chunk_tokens)
            loss = alg.sft_loss(logp, mb.target_mask, num_tokens=n_tokens)
            loss.backward()
            total += float(loss.detach())
        dist.sync_grads(ctx.g.model)
        norm = _clip_and_step(ctx.g.model.parameters(), ctx.g_opt, t.grad_clip)
    tokens = int(packed.attention_mask.sum())
    spend = Spend(prompts=len(batch), teacher_responses=len(batch), g_trained_tokens=tokens,
                  g_optimizer_steps=1, flops=train_flops(ctx.g_params, tokens))
    metrics = {"sft_loss": dist.all_sum([total])[0], "g_grad_norm": norm,
               "teacher_len": _mean(packed.response_tokens, len(batch))}
    return metrics, spend


def rollout(ctx: Context, batch: list, step: int) -> tuple[object, Spend]:
    """N samples per prompt at the training temperature; `step` is the global step being trained."""
    t = ctx.spec.train
    prompts = [ctx.prompt_ids(ex.prompt) for ex in batch]
    # Seeds from (run seed, global step, position in the global batch): other samples at every step, and the
    # same samples whatever the sharding or an interruption and resume.
    seeds = [sequence_seed(ctx.spec.seed, step, dist.rank() + dist.world() * i) for i in range(len(batch))]
    with ctx.autocast(), ctx.phase("rollout"):
        roll = ctx.engine.generate(ctx.g.model, prompts, t.group_size, t.temperature, t.max_response_tokens, t.top_p,
                                   seeds=seeds)
    prompt_tokens = sum(len(prompts[i]) for i in roll.prompt_index)
    spend = Spend(rollouts=len(roll.texts), generated_tokens=roll.generated_tokens,
                  flops=inference_flops(ctx.g_params, roll.generated_tokens + prompt_tokens))
    return roll, spend


def rollout_metrics(ctx: Context, batch: list, roll) -> dict:
    n = len(roll.texts)
    m = {"response_len": _mean(roll.generated_tokens, n), "truncated_frac": _mean(sum(roll.truncated), n)}
    stats = getattr(ctx.engine, "stats", None)  # the vllm engine: start, weight pushes, sleep and wake (totals)
    if stats:
        m.update({f"vllm/{k}": v for k, v in stats.items()})
    if ctx.gold_fn is not None:
        prompts = [batch[i].prompt for i in roll.prompt_index]
        m.update({f"gold/{k}": _mean(v * n, n) for k, v in ctx.gold_fn(prompts, roll.texts).items()})
    return m


def grpo_update(ctx: Context, batch: list, roll, rewards: torch.Tensor) -> tuple[dict, Spend]:
    """One GRPO step on the rollouts with group-normalised advantages and k3 KL to the reference."""
    t = ctx.spec.train
    adv = alg.group_advantages(rewards, t.group_size)
    prompts = [ctx.prompt_ids(ex.prompt) for ex in batch]  # the rollout is prompt-major, group_size per prompt
    seqs = ctx.sequences(prompts, roll.response_ids, t.group_size, ctx.g.tokenizer.pad_token_id)
    n_tokens = dist.all_sum([seqs.response_tokens])[0]
    adv = adv.to(ctx.device)
    stats = {"pg_loss": 0.0, "kl": 0.0, "clip_frac": 0.0}
    ctx.g.model.train()
    for a, b, mb in micro_batch_plan(seqs, t.micro_batch_size, t.max_tokens_per_micro_batch):
        ref_logp = None
        if ctx.ref is not None and t.kl_beta > 0:
            with torch.no_grad(), ctx.autocast(), ctx.phase("ref"):
                ref_logp = mb.logprobs(ctx.ref, t.temperature, t.logprob_chunk_tokens)
        with ctx.phase("g"):
            with ctx.autocast():
                logp = mb.logprobs(ctx.g.model, t.temperature, t.logprob_chunk_tokens)
            # One update per rollout batch (the paper's setting): the sampling policy is the current one, so
            # old log-probs equal the current ones and the ratio is exactly 1 at this update.
            loss, s = alg.grpo_loss(logp, logp.detach(), ref_logp, adv[a:b], mb.mask,
                                    clip_ratio=t.clip_ratio, beta=t.kl_beta, num_tokens=n_tokens)
            loss.backward()
        for k in stats:
            stats[k] += s[k]
    with ctx.phase("g"):
        dist.sync_grads(ctx.g.model)
        norm = _clip_and_step(ctx.g.model.parameters(), ctx.g_opt, t.grad_clip)
    stats = dict(zip(stats, dist.all_sum(list(stats.values())), strict=True))
    tokens = seqs.tokens
    ref_flops = inference_flops(ctx.g_params, tokens) if ctx.ref is not None and t.kl_beta > 0 else 0.0
    spend = Spend(prompts=len(batch), g_trained_tokens=tokens, g_optimizer_steps=1,
                  flops=train_flops(ctx.g_params, tokens) + ref_flops)
    return {**stats, "g_grad_norm": norm}, spend


# --------------------------------------------------------------------------------------- discriminator


def _d_sequences(ctx: Context, batch: list, roll) -> tuple[list[tuple], list[tuple]]:
    """Teacher and student inputs for D as (prompt ids, response ids), encoded by one function (identical
    template, EOS and truncation)."""
    t, d = ctx.spec.train, ctx.d
    cache: dict = {}  # each prompt is encoded once for its teacher response and its N samples
    enc = lambda prompt, text: encode_pair(d.tokenizer, d.template, prompt, text, t.max_prompt_tokens,  # noqa: E731
                                           t.max_response_tokens, cache)
    teacher = [enc(ex.prompt, ex.teacher_response) for ex in batch]
    student = [enc(batch[i].prompt, text) for i, text in zip(roll.prompt_index, roll.texts, strict=True)]
    return teacher, student


def _d_forward(ctx: Context, seqs: list[tuple]) -> torch.Tensor:
    """D's scores of (prompt ids, response ids) pairs, each sequence whole."""
    packed = pack([p for p, _ in seqs], [r for _, r in seqs], ctx.d.tokenizer.pad_token_id, ctx.device)
    with ctx.autocast():
        return ctx.d.model(packed.input_ids, packed.attention_mask).float()


def _d_group_scores(ctx: Context, teacher: list[tuple], student: list[tuple]) -> tuple[torch.Tensor, torch.Tensor]:
    """D's scores of the teacher responses [B] and their N samples each [B*N], in the layout of
    `ctx.sequences` (each prompt once for its N + 1 responses when prompts are shared)."""
    n = len(student) // len(teacher)
    rows = [seq for b, tseq in enumerate(teacher) for seq in (tseq, *student[b * n : (b + 1) * n])]
    if not ctx.shares_prompts:
        scores = _d_forward(ctx, rows).view(len(teacher), n + 1)
    else:
        g = group([p for p, _ in teacher], [r for _, r in rows], n + 1, ctx.d.tokenizer.pad_token_id, ctx.device)
        with ctx.autocast():
            scores = ctx.d.model.score_groups(g).float().view(len(teacher), n + 1)
    return scores[:, 0], scores[:, 1:].reshape(-1)


def _d_micro_batches(ctx: Context, teacher: list[tuple], student: list[tuple]) -> list[tuple[int, int]]:
    """Ranges of prompts whose groups (teacher response and N samples) form D's micro-batches: by
    train.micro_batch_size (whole groups), or packed within train.max_tokens_per_micro_batch padded tokens."""
    t = ctx.spec.train
    n, B = len(student) // len(teacher), len(teacher)
    if t.max_tokens_per_micro_batch <= 0:
        return micro_batches(B, max(1, (t.micro_batch_size or (B * (n + 1))) // (n + 1)))
    rows = [(p, [r, *(s for _, s in student[b * n : (b + 1) * n])]) for b, (p, r) in enumerate(teacher)]
    if ctx.shares_prompts:  # the prompt once, then n + 1 responses
        return budget_ranges([(len(p), max(map(len, rs))) for p, rs in rows], (1, n + 1), t.max_tokens_per_micro_batch)
    return budget_ranges([(len(p) + max(map(len, rs)),) for p, rs in rows], (n + 1,), t.max_tokens_per_micro_batch)


def d_score_and_update(ctx: Context, batch: list, roll, update: bool) -> tuple[torch.Tensor, dict, Spend]:
    """Score teacher and student responses with D; if `update`, take one step on the D loss.

    Returns the student scores from *before* the update (the generator's rewards) as a [B*N] tensor.
    Micro-batches hold whole prompt groups (a teacher response with its N samples), and each group's loss
    is weighted by its share of pairs, so the step equals a full-batch step.
    """
    t, m = ctx.spec.train, ctx.spec.method
    teacher_seqs, student_seqs = _d_sequences(ctx, batch, roll)
    n, B = t.group_size, len(batch)
    B_global = dist.all_sum([B])[0]
    loss_fn = alg.bradley_terry_loss if m.d_loss == "bt" else alg.cross_entropy_d_loss
    t_scores, s_scores, loss_total = [], [], 0.0
    ctx.d.model.train(update)
    with torch.set_grad_enabled(update), ctx.phase("d"):
        for a, b in _d_micro_batches(ctx, teacher_seqs, student_seqs):
            ts, ss = _d_group_scores(ctx, teacher_seqs[a:b], student_seqs[a * n : b * n])
            if update:
                loss = loss_fn(ts, ss) * (b - a) / B_global
                loss.backward()
                loss_total += float(loss.detach())
            t_scores.append(ts.detach())
            s_scores.append(ss.detach())
    ts, ss = torch.cat(t_scores), torch.cat(s_scores)
    tokens = sum(len(p) + len(r) for p, r in teacher_seqs + student_seqs)
    metrics = {"teacher_score": _mean(float(ts.sum()), B), "student_score": _mean(float(ss.sum()), B * n),
               "d_acc": _mean(alg.discriminator_accuracy(ts, ss) * B * n, B * n)}
    if update:
        with ctx.phase("d"):
            dist.sync_grads(ctx.d.model)
            metrics["d_grad_norm"] = _clip_and_step(ctx.d.model.parameters(), ctx.d_opt, t.grad_clip)
        metrics["d_loss"] = dist.all_sum([loss_total])[0]
        spend = Spend(d_trained_tokens=tokens, d_optimizer_steps=1, flops=train_flops(ctx.d_params, tokens))
    else:
        with torch.no_grad():
            metrics["d_loss"] = _mean(float(loss_fn(ts, ss)) * B, B)
        spend = Spend(flops=inference_flops(ctx.d_params, tokens))
    return ss.cpu(), metrics, spend


DIAGNOSTIC_SEED = 1_000_003  # rollout seeds of the diagnostics: (run seed, DIAGNOSTIC_SEED + step, prompt)


def d_diagnostics(ctx: Context, examples: list, step: int) -> dict:
    """How well D separates held-out teacher responses from the current student's, and whether it tells
    identical texts apart (it must not).

    N = group_size samples per example at the training temperature, scored with D (no update):
      accuracy           mean over (example, sample) of [D(y_t) > D(y_s)] (the training `d_acc`), with a
                         bootstrap interval over examples;
      auc                P(D(y_t) > D(y_s)) + P(=)/2 over all teacher x student scores (Mann-Whitney);
      identical_gap_max  max |D(y_t) - D(y_t')| where y_t' is the teacher's text sent through the student
                         side (its tokens as G would emit them, decoded by the rollout path, encoded again);
                         ~0 unless an EOS, padding or whitespace artefact lets D see which side a text is on;
      natural_identical  how many samples equal their teacher response as text (their gaps are included).
    It uses the first eval.d_diagnostics_prompts examples (all when 0), shared out over the processes (every
    world-th, the same number on each: a remainder is left out), and every process gets the result; only
    process 0's is written.
    """
    t = ctx.spec.train
    n = t.group_size
    used = min(len(examples), ctx.spec.eval.d_diagnostics_prompts or len(examples))
    split = used >= dist.world()  # each process takes every world-th example, all the same number of them
    index = list(range(used))[dist.rank() : used - used % dist.world() : dist.world()] if split else list(range(used))
    mine = [examples[i] for i in index]
    prompts = [ctx.prompt_ids(ex.prompt) for ex in mine]
    seeds = [sequence_seed(ctx.spec.seed, DIAGNOSTIC_SEED + step, i) for i in index]
    with ctx.autocast():
        roll = ctx.engine.generate(ctx.g.model, prompts, n, t.temperature, t.max_response_tokens, t.top_p, seeds=seeds)
    tok = ctx.g.tokenizer
    echoed = [decode_response(tok, response_ids(tok, ex.teacher_response, t.max_response_tokens)[0]) for ex in mine]
    mirror = Rollout(list(range(len(mine))), [[] for _ in mine], [False] * len(mine), echoed)
    teacher_seqs, student_seqs = _d_sequences(ctx, mine, roll)
    _, echo_seqs = _d_sequences(ctx, mine, mirror)
    was_training = ctx.d.model.training
    ctx.d.model.eval()
    with torch.no_grad():
        seqs = teacher_seqs + echo_seqs + student_seqs
        if t.max_tokens_per_micro_batch > 0:
            ranges = budget_ranges([(len(p) + len(r),) for p, r in seqs], (1,), t.max_tokens_per_micro_batch)
        else:
            ranges = micro_batches(len(seqs), t.micro_batch_size or len(seqs))
        scores = torch.cat([_d_forward(ctx, seqs[a:b]) for a, b in ranges]).double().cpu()
    ctx.d.model.train(was_training)
    B = len(mine)
    ts, echo, ss = scores[:B], scores[B : 2 * B], scores[2 * B :].view(B, n)
    same = torch.tensor([normalize_response(text) == normalize_response(mine[i].teacher_response)
                         for i, text in zip(roll.prompt_index, roll.texts, strict=True)]).view(B, n)
    if split and dist.world() > 1:  # every process's examples, back in the examples' order
        mine_rows = list(zip(index, ts.tolist(), echo.tolist(), ss.tolist(), same.tolist(), strict=True))
        rows = sorted(r for part in dist.all_gather_object(mine_rows) for r in part)
        B = len(rows)
        ts, echo = torch.tensor([r[1] for r in rows]).double(), torch.tensor([r[2] for r in rows]).double()
        ss, same = torch.tensor([r[3] for r in rows]).double(), torch.tensor([r[4] for r in rows])
    gaps = torch.cat([(ts - echo).abs(), (ts[:, None] - ss).abs()[same]])
    wins = (ts[:, None] > ss).double()
    return {"accuracy": summarize(wins.mean(dim=1).tolist(), ctx.spec.eval.bootstrap),
            "auc": auc(ts.tolist(), ss.flatten().tolist()), "identical_gap_max": float(gaps.max()),
            "identical_gap_mean": float(gaps.mean()), "natural_identical": int(same.sum()), "pairs": B * n,
            "teacher_score": float(ts.mean()), "student_score": float(ss.mean())}
