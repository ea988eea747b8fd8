"""smol-gold's exact judge (record `persona-gold` of gadbench.judge.records): the student against the persona
teacher's mixture, every number exact up to Monte Carlo over samples (gadbench.worlds.persona).

Per prompt x, with the student's model from the run's context and the suite's persona teacher:
- `reverse_kl`: KL(S || T) over `samples` student responses sampled at temperature 1 and cut at L, nats per
  sequence (`reverse_kl_per_token` per token), `reverse_kl_cut` the share of them cut at L;
- `forward_kl`: KL(T || S) over the teacher's draws 0..samples-1 (cached), likewise per token and cut;
- `teacher_logprob`: log p_T(y|x) per token of the student's greedy answer y cut at L, `answer_cut` whether it
  was cut, and `persona_share/<name>`: 1 for the persona with the largest posterior P(k | y, x), else 0 (its
  mean over prompts is the share of answers that persona explains best); `max_tokens` is L.

The judge samples and answers through its own fp32 engine over the student's live weights, so its samples
come from the policy whose log-probabilities it computes (an engine generating from a bf16 copy would not),
and its greedy answers are cut at L, the outcome space of the KLs (the evaluator's stored answer, cut at
eval.max_new_tokens, may be longer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gadbench.judge.types import JudgeItem
from gadbench.rollout.hf import HFRolloutEngine
from gadbench.worlds.persona import PersonaError, answer_scores, forward_kl_by_prompt, reverse_kl_by_prompt
from gadbench.worlds.persona_teacher import PersonaTeacher


@dataclass(frozen=True)
class PersonaGoldJudgment:
    values: dict  # the module docstring's metrics for one prompt

    def to_json(self) -> dict:
        return dict(self.values)


class PersonaGoldJudge:
    name = "persona-gold"

    def __init__(self, teacher, samples: int, batch_size: int = 8):
        if not isinstance(teacher, PersonaTeacher):
            raise PersonaError(f"judge persona-gold reads a persona teacher's mixture, and this suite's teacher is "
                               f"{type(teacher).__name__}; set teacher.spec to persona:NAME (e.g. persona:smol-gold) "
                               "or drop persona-gold from eval.judges.")
        if samples < 1:
            raise PersonaError("judge persona-gold estimates each KL from eval.samples samples per prompt; set "
                               "eval.samples to 1 or more.")
        self.teacher, self.samples, self.batch_size = teacher, samples, batch_size

    def judge(self, items: Sequence[JudgeItem], ctx) -> list[PersonaGoldJudgment]:
        """`ctx` (gadbench.methods.context.Context) holds the student; its sampling draws from torch's RNG."""
        t, model = self.teacher, ctx.g.model
        prompts = [it.prompt for it in items]
        ids = [ctx.prompt_ids(p) for p in prompts]
        engine = HFRolloutEngine(ctx.g.tokenizer, self.batch_size)
        sampled = engine.generate(model, ids, self.samples, 1.0, t.max_tokens)
        reverse = reverse_kl_by_prompt(t, model, ids, prompts, sampled, self.batch_size)
        forward = forward_kl_by_prompt(t, model, ids, prompts, t.samples(prompts, self.samples), self.batch_size)
        greedy = engine.generate(model, ids, 1, 0.0, t.max_tokens)
        views = answer_scores(t, prompts, greedy.response_ids, self.batch_size)
        out = []
        for r, f, v in zip(reverse, forward, views, strict=True):
            row = {"reverse_kl": r.nats, "forward_kl": f.nats, "teacher_logprob": v.teacher_logprob_per_token,
                   "reverse_kl_per_token": r.nats_per_token, "forward_kl_per_token": f.nats_per_token,
                   "reverse_kl_cut": r.cut, "forward_kl_cut": f.cut, "answer_cut": float(v.cut),
                   "max_tokens": t.max_tokens}
            row.update({f"persona_share/{name}": float(name == v.persona) for name in t.mixture.names})
            out.append(PersonaGoldJudgment(row))
        return out
