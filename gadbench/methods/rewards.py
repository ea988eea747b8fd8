"""Fixed rewards for GRPO without a discriminator (`discriminator: none`), chosen by `method.reward`.

A reward is a callable (prompts, texts, teacher_responses) -> list[float], one value per sampled text:

- `rouge-l`: ROUGE-L F1 of the text against the prompt's teacher response (gadbench.metrics.rouge_l_f1);
- `gold`: the synthetic world's exact teacher log-probability per token of the text (an oracle, world only);
- `package.module:function` (or `package.module.function`): a user callable with the same signature.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from gadbench.config import ConfigError, RunSpec

Reward = Callable[[list[str], list[str], list[str]], list[float]]
BUILTIN = ("rouge-l", "gold")


def rouge_l_reward(prompts: list[str], texts: list[str], teachers: list[str]) -> list[float]:
    from gadbench.metrics import rouge_l_f1

    return [rouge_l_f1(text, teacher) for text, teacher in zip(texts, teachers, strict=True)]


def gold_reward(prompts: list[str], texts: list[str], teachers: list[str]) -> list[float]:
    from gadbench.worlds.synthetic import gold_score

    return [gold_score(p, t).teacher_logprob_per_token for p, t in zip(prompts, texts, strict=True)]


def _import(path: str) -> Reward:
    module, sep, name = path.partition(":")
    if not sep:
        module, _, name = path.rpartition(".")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(f"method.reward `{path}` cannot be imported ({e}); give an importable "
                          "`package.module:function`.") from None
    if not callable(fn):
        raise ConfigError(f"method.reward `{path}` is not callable; point it at a function "
                          "(prompts, texts, teacher_responses) -> list[float].")
    return fn


def make_reward(spec: RunSpec) -> Reward | None:
    """The run's fixed reward, or None when the discriminator provides the rewards."""
    m = spec.method
    if m.kind != "gad" or m.discriminator != "none":
        return None
    if m.reward == "rouge-l":
        return rouge_l_reward
    if m.reward == "gold":
        if not spec.teacher.spec.startswith("program"):
            raise ConfigError(f"method `{spec.method_name}`: reward `gold` exists only in the synthetic world "
                              "(teacher: program); use rouge-l or a dotted path.")
        return gold_reward
    return _import(m.reward)
