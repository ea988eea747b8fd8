"""`method.reward` chooses the GRPO reward of `discriminator: none`, through the path a run takes
(suite YAML -> RunSpec -> make_reward -> Trainer.train -> metrics.jsonl); bad values stop with one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gadbench.config import ConfigError
from gadbench.io import read_jsonl
from gadbench.methods.rewards import gold_reward, make_reward, rouge_l_reward
from gadbench.rundata import load_run_data, run_teacher
from gadbench.runner import run_suite
from gadbench.suite import get_suite, runs_of
from gadbench.trainer import Trainer

REPO = Path(__file__).resolve().parent.parent
TINY = [
    "train.steps=3", "train.warmup_steps=1", "train.d_only_steps=0", "train.batch_size=4", "train.group_size=2",
    "train.max_response_tokens=16", "train.max_prompt_tokens=32", "train.checkpoint_every=100",
    "data.train.limit=16", "data.validation_size=0", "train.cpu_threads=1",
]


def constant_reward(prompts, texts, teachers):
    """A user reward for the dotted-path test: 0.25 for every sample."""
    return [0.25] * len(texts)


@pytest.fixture(scope="module", autouse=True)
def _env():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GADBENCH_CACHE", str(REPO / "results" / "cache"))
        yield


def _spec(reward: str):
    suite = get_suite("smoke", [*TINY, f"methods.grpo-rouge.reward={reward}"])
    return next(r for r in runs_of(suite) if r.method_name == "grpo-rouge")


def _adversarial_rows(spec, tmp_path) -> list[dict]:
    data = load_run_data(spec, run_teacher(spec))
    Trainer(spec, tmp_path / spec.run_id, data, progress=False).train()
    rows = [r for r in read_jsonl(tmp_path / spec.run_id / "metrics.jsonl") if r["stage"] == "adversarial"]
    assert len(rows) == 2
    return rows


def test_each_name_chooses_its_reward():
    assert make_reward(_spec("rouge-l")) is rouge_l_reward
    assert make_reward(_spec("gold")) is gold_reward
    for path in ("tests.test_rewards:constant_reward", "tests.test_rewards.constant_reward"):
        fn = make_reward(_spec(path))  # this file imported under its package name: the same code
        assert fn.__code__.co_code == constant_reward.__code__.co_code and fn(["p"], ["t"], ["r"]) == [0.25]
    gad = next(r for r in runs_of(get_suite("smoke")) if r.method_name == "gad")
    assert make_reward(gad) is None  # D provides the rewards


def test_gold_reward_is_what_a_run_optimises(tmp_path):
    # the rewards of a step are the gold log-probabilities of that step's rollouts, which the run also logs
    for row in _adversarial_rows(_spec("gold"), tmp_path):
        assert row["reward_mean"] == pytest.approx(row["gold/teacher_logprob"], abs=1e-5), row


def test_a_dotted_path_reward_is_called_by_the_run(tmp_path):
    for row in _adversarial_rows(_spec("tests.test_rewards:constant_reward"), tmp_path):
        assert row["reward_mean"] == 0.25 and row["reward_std"] == 0.0
        assert row["pg_loss"] == 0.0  # a tied group has zero advantages, so only the KL term is left


def test_rouge_reward_lies_in_the_unit_interval_and_is_not_gold(tmp_path):
    rows = _adversarial_rows(_spec("rouge-l"), tmp_path)
    assert all(0.0 <= r["reward_mean"] <= 1.0 for r in rows)
    assert any(r["reward_mean"] != pytest.approx(r["gold/teacher_logprob"], abs=1e-3) for r in rows)


@pytest.mark.parametrize("overrides, words", [
    (["methods.grpo-rouge.reward=bleu"], "reward `bleu` is unknown"),
    (["methods.grpo-rouge.reward=null"], "discriminator: none needs a fixed reward"),
    (["methods.gad.reward=rouge-l"], "reward `rouge-l` replaces the discriminator"),
])
def test_bad_reward_settings_stop_with_one_line(overrides, words):
    with pytest.raises(ConfigError) as e:
        get_suite("smoke", overrides)
    msg = str(e.value)
    assert words in msg and "\n" not in msg, msg


def test_an_unimportable_reward_stops_the_suite_before_any_run(tmp_path):
    suite = get_suite("smoke", [*TINY, "methods.grpo-rouge.reward=no_such_module:reward"])
    with pytest.raises(ConfigError, match="cannot be imported") as e:
        run_suite(suite, tmp_path, progress=False)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "smoke").exists()  # nothing was trained or written


@pytest.mark.parametrize(("reward", "words"), [
    ("no_such_module:reward", "cannot be imported (No module named 'no_such_module'); give an importable "
                              "`package.module:function`."),
    ("math:pi", "is not callable; point it at a function (prompts, texts, teacher_responses) -> list[float]."),
])
def test_a_bad_dotted_reward_says_what_to_give(reward, words):
    spec = next(r for r in runs_of(get_suite("smoke", [f"methods.grpo-rouge.reward={reward}"]))
                if r.method_name == "grpo-rouge")
    with pytest.raises(ConfigError) as e:
        make_reward(spec)
    assert str(e.value) == f"method.reward `{reward}` {words}", str(e.value)
