"""Fixed rewards for GRPO without a discriminator (a method whose record says `fixed_reward`, e.g. `gad` with
`discriminator: none`), chosen by `method.reward`.

A reward is a callable (prompts, texts, teacher_responses) -> list[float], one value per sampled text:

- `rouge-l`: ROUGE-L F1 of the text against the prompt's teacher response (gadbench.metrics.rouge_l_f1);
- `gold`: the synthetic world's exact teacher log-probability per token of the text (an oracle, world only);
- `package.module:function` (or `package.module.function`): a user callable with the same signature, e.g. a
  weighted sum of other rewards (TRL's `reward_funcs` idea).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable

from gadbench.config import ConfigError, RunSpec
from gadbench.methods.base import method_of

Reward = Callable[[list[str], list[str], list[str]], list[float]]
_DOTTED = re.compile(r"[A-Za-z_][\w.]*[.:][A-Za-z_]\w*")


def rouge_l_reward(prompts: list[str], texts: list[str], teachers: list[str]) -> list[float]:
    from gadbench.metrics import rouge_l_f1

    return [rouge_l_f1(text, teacher) for text, teacher in zip(texts, teachers, strict=True)]


def gold_reward(prompts: list[str], texts: list[str], teachers: list[str]) -> list[float]:
    from gadbench.worlds.synthetic import gold_score

    return [gold_score(p, t).teacher_logprob_per_token for p, t in zip(prompts, texts, strict=True)]


REWARDS: dict[str, Reward] = {"rouge-l": rouge_l_reward, "gold": gold_reward}
WORLD_ONLY = ("gold",)


def reward_problem(name: str) -> str | None:
    """What is wrong with reward name `name`, or None: a built-in reward or a dotted `package.module:function`."""
    if name in REWARDS or _DOTTED.fullmatch(name):
        return None
    return f"reward `{name}` is unknown; use {', '.join(REWARDS)} or a dotted `package.module:function`"


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


def _resolve(name: str, spec: RunSpec) -> Reward:
    if name in WORLD_ONLY and not spec.teacher.spec.startswith("program"):
        raise ConfigError(f"method `{spec.method_name}`: reward `{name}` exists only in the synthetic world "
                          "(teacher: program); use rouge-l or a dotted path.")
    return REWARDS.get(name) or _import(name)


def make_shaping(spec: RunSpec) -> list[tuple[str, Reward, float]]:
    """(name, reward, weight) of each of `method.shaping`, added to the run's GRPO rewards."""
    return [(name, _resolve(name, spec), weight) for name, weight in spec.method.shaping.items()]


def make_reward(spec: RunSpec) -> Reward | None:
    """The run's fixed reward, or None when the discriminator provides the rewards."""
    m = spec.method
    if not method_of(spec).fixed_reward(m):
        return None
    return _resolve(m.reward, spec)
