"""The synthetic world's gold judges (records `gold` and `gold-sampled` of gadbench.judge.records): exact
scores from the world's teacher distribution (gadbench.worlds.synthetic.gold_score).

- `gold`: per greedy answer, the teacher's log-probability per token, whether it is correct, and its style;
- `gold-sampled`: per prompt, the mean over `samples` answers sampled from the student at temperature 1 of the
  same log-probability and correctness, and each style's share: the distributional view (style coverage and
  E_student[log p_teacher], the reverse-KL side) that greedy answers cannot show; intervals resample prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from gadbench.judge.types import JudgeItem
from gadbench.worlds import synthetic as world


@dataclass(frozen=True)
class GoldJudgment:
    teacher_logprob: float
    accuracy: float
    style: str
    valid: bool = True

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SampledJudgment:
    values: dict  # teacher_logprob, accuracy and style_share/<style>, each a mean over the prompt's samples

    def to_json(self) -> dict:
        return dict(self.values)


class GoldJudge:
    name = "gold"

    def judge(self, items: Sequence[JudgeItem]) -> list[GoldJudgment]:
        out = []
        for it in items:
            g = world.gold_score(it.prompt, it.answer)
            out.append(GoldJudgment(g.teacher_logprob_per_token, float(g.correct), g.style))
        return out


class SampledGoldJudge:
    name = "gold-sampled"

    def __init__(self, samples: int, max_new_tokens: int):
        self.samples, self.max_new_tokens = samples, max_new_tokens

    def judge(self, items: Sequence[JudgeItem], ctx) -> list[SampledJudgment]:
        """`ctx` (gadbench.methods.context.Context) holds the student that samples the answers."""
        prompts = [ctx.prompt_ids(it.prompt) for it in items]
        roll = ctx.engine.generate(ctx.g.model, prompts, self.samples, 1.0, self.max_new_tokens)
        per_item: list[list] = [[] for _ in items]
        for i, text in zip(roll.prompt_index, roll.texts, strict=True):
            per_item[i].append(world.gold_score(items[i].prompt, text))
        out = []
        for scores in per_item:
            k = len(scores)
            row = {"teacher_logprob": sum(g.teacher_logprob_per_token for g in scores) / k,
                   "accuracy": sum(g.correct for g in scores) / k}
            row.update({f"style_share/{s}": sum(g.style == s for g in scores) / k for s in world.STYLE_NAMES})
            out.append(SampledJudgment(row))
        return out
