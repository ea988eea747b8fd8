"""Judges, each one record declared here and read by everyone: the evaluator builds and runs it, the suite checks
its name when it loads, the plan costs its calls, the report reads its metrics' directions and units, and the
controlled scores read how it can be controlled. A new judge is one `register_judge(JudgeRecord(...))`
(docs/architecture.md); an LLM protocol adds its prompt file (gadbench/judge/prompts/, or any path).

A judge maps `JudgeItem`s to one judgment each, whose `to_json()` is stored per eval row; metric `K` of judge `J`
is key K of that JSON (`J/K` in metrics.json and reports; a key ending in `/*` declares a family, e.g.
`style_share/*`). This module imports neither torch nor the API client: builders import what they need.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gadbench.judge.protocols import GadPaper, LLMProtocol, MtBenchSingle, Pairwise


@dataclass(frozen=True)
class Metric:
    """Which way is better (None: neither, e.g. a share or a length) and the unit, as lm-eval's
    `higher_is_better` does for its metrics."""

    higher_is_better: bool | None
    unit: str

    def describe(self) -> str:
        way = {True: "higher is better", False: "lower is better", None: "no better direction"}
        return f"{self.unit}, {way[self.higher_is_better]}"


@dataclass(frozen=True)
class Control:
    """How a score can be length- and style-controlled (gadbench.judge.controlled): `fit` is "logistic" for a
    0-100 win rate (a tie is half a win) or "linear" for a 0-100 score; the opponent text is the judgment's own
    `details["judge_reference"]` ("judge_reference") or the row's teacher response, else its reference
    ("teacher")."""

    fit: str
    opponent: str


@dataclass(frozen=True)
class JudgeRecord:
    name: str
    about: str  # one line: what it scores and against what
    build: Callable  # (RunSpec, cache folder) -> a judge with `judge(items)` (`judge(items, ctx)` if reads_student)
    metrics: dict[str, Metric]  # the first is its primary metric (checkpoint selection's default)
    calls_per_item: int = 0  # LLM requests per judged item at every evaluation point (0: offline)
    calls_per_prompt: int = 0  # LLM requests per distinct prompt once per run (cached: gad-paper's reference)
    summary: Callable[[Sequence[dict], int], dict] | None = None  # (judgment JSONs, resamples) -> extra statistics
    control: Control | None = None
    parity: float | None = None  # the score at which the student equals its opponent
    world_only: bool = False  # scores the synthetic world's problems only (teacher: program)
    reads_student: bool = False  # judges the student model itself, given the run's model context
    samples: bool = False  # scores eval.samples answers sampled per prompt (so eval.samples must be >= 1)
    teacher: str = ""  # the teacher backend whose teacher it reads (a name in gadbench.teachers; "": none)
    exact: bool = False  # scores against the teacher's own distribution: the other judges' validity is read off it
    findings: tuple[str, ...] = ()  # metrics besides the primary that the findings compare GAD and SeqKD on

    @property
    def primary(self) -> str:
        return f"{self.name}/{next(iter(self.metrics))}"

    @property
    def llm(self) -> bool:
        return self.calls_per_item > 0

    def metric(self, key: str) -> Metric | None:
        """The declared metric of key `key` (a member of a `/*` family included), or None."""
        if key in self.metrics:
            return self.metrics[key]
        return next((m for k, m in self.metrics.items() if k.endswith("/*") and key.startswith(k[:-1])), None)


JUDGES: dict[str, JudgeRecord] = {}
ANSWER_METRICS = {"length": Metric(None, "tokens")}  # what every evaluation measures of the answers themselves


def register_judge(record: JudgeRecord, replace: bool = False) -> JudgeRecord:
    """Add `record` to the registry; a name registers once unless `replace`."""
    if record.name in JUDGES and not replace:
        raise ValueError(f"judge {record.name!r} is registered twice; pass replace=True to override it")
    if not record.metrics:
        raise ValueError(f"judge {record.name!r} declares no metric")
    JUDGES[record.name] = record
    return record


def unknown_judge(name: str) -> str | None:
    """What is wrong with judge name `name`, or None."""
    if name in JUDGES:
        return None
    close = difflib.get_close_matches(name, list(JUDGES), n=1)
    hint = f" (did you mean `{close[0]}`?)" if close else ""
    return f"judge `{name}` is not a judge{hint}; use one of {', '.join(JUDGES)}"


def metric_info(name: str) -> Metric | None:
    """The declaration of a reported metric `J/K` (or an answer metric such as `length`), or None."""
    if name in ANSWER_METRICS:
        return ANSWER_METRICS[name]
    judge, _, key = name.partition("/")
    record = JUDGES.get(judge)
    return record.metric(key) if record else None


# ---------------------------------------------------------------------------------------------- builders


def llm_judge(protocol: type[LLMProtocol], **options) -> Callable:
    """A builder of an LLM judge: `protocol(**options)` with the suite's reply cap and guided verdicts, over one
    ChatClient of the suite's judge endpoint that caches in `cache/judge.sqlite` (keyed by model, protocol
    version, messages and decoding parameters), so re-runs never pay twice."""

    def build(spec, cache_dir: Path):
        from gadbench.judge.llm_judge import LLMJudge
        from gadbench.llm.client import ChatClient

        cfg = spec.judge
        client = ChatClient(cfg.model, base_url=cfg.base_url, api_key_env=cfg.api_key_env,
                            concurrency=cfg.concurrency, timeout=cfg.timeout, max_retries=cfg.max_retries,
                            cache_path=Path(cache_dir) / "judge.sqlite", price_per_mtok=cfg.price_per_mtok or None)
        return LLMJudge(protocol(max_tokens=cfg.max_tokens, guided=cfg.guided, **options), client)

    return build


def _rouge_l(spec, cache_dir):
    from gadbench.judge.offline import RougeLJudge

    return RougeLJudge()


def _embedding(spec, cache_dir):
    from gadbench.judge.offline import EmbeddingJudge

    return EmbeddingJudge()


def _gold(spec, cache_dir):
    from gadbench.worlds.gold import GoldJudge

    return GoldJudge()


def _gold_sampled(spec, cache_dir):
    from gadbench.worlds.gold import SampledGoldJudge

    return SampledGoldJudge(spec.eval.samples, spec.eval.max_new_tokens)


def _persona_gold(spec, cache_dir):
    from gadbench.teachers import teacher_from
    from gadbench.worlds.persona_gold import PersonaGoldJudge

    teacher = teacher_from(spec.teacher, Path(cache_dir) / "teacher.sqlite")  # the run's teacher and its cache
    return PersonaGoldJudge(teacher, spec.eval.samples, spec.teacher.concurrency)


def _gad_paper_summary(jsons: Sequence[dict], n: int) -> dict:
    from gadbench.judge.aggregation import position_summary, ratio_of_sums_summary

    return {**ratio_of_sums_summary(jsons, n), **position_summary(jsons, n)}


def _pairwise_summary(jsons: Sequence[dict], n: int) -> dict:
    from gadbench.judge.aggregation import outcome_shares, position_summary

    return {**outcome_shares(jsons), **position_summary(jsons, n)}


SCORE_0_100 = Metric(True, "score 0-100 (50: equal to the opponent)")

register_judge(JudgeRecord(
    "gad-paper", "the paper's GPT-4o protocol: the judge's own answer and the student's rated 1-10, "
                 "100 s / (s + r)",
    llm_judge(GadPaper), {"score": SCORE_0_100}, calls_per_item=1, calls_per_prompt=1,
    summary=_gad_paper_summary, control=Control("linear", "judge_reference"), parity=50.0))
register_judge(JudgeRecord(
    "mtbench-single", "FastChat's MT-bench single-answer grading 1-10: math, reasoning and coding questions against "
                      "the data's reference answer (else the teacher's), the rest without one",
    llm_judge(MtBenchSingle), {"score": Metric(True, "rating 1-10")}, calls_per_item=1))
register_judge(JudgeRecord(
    "pairwise", "student against the teacher's answer in both orders: win 100, tie 50, loss 0",
    llm_judge(Pairwise), {"score": Metric(True, "win rate % (ties count half)")}, calls_per_item=2,
    summary=_pairwise_summary, control=Control("logistic", "teacher"), parity=50.0))
register_judge(JudgeRecord(
    "rouge-l", "100 x ROUGE-L F1 against the teacher's answer (lexical overlap)",
    _rouge_l, {"score": Metric(True, "ROUGE-L F1 x 100")}))
register_judge(JudgeRecord(
    "embedding", "100 x cosine of all-MiniLM-L6-v2 embeddings of the answer and the teacher's answer",
    _embedding, {"score": Metric(True, "cosine x 100")}))
register_judge(JudgeRecord(
    "gold", "the synthetic world's exact judge of the greedy answer (teacher log-probability, correctness)",
    _gold, {"teacher_logprob": Metric(True, "nats per token"), "accuracy": Metric(True, "fraction correct")},
    world_only=True, exact=True))
register_judge(JudgeRecord(
    "gold-sampled", "the world's exact judge of eval.samples answers sampled at temperature 1, per prompt",
    _gold_sampled, {"teacher_logprob": Metric(True, "nats per token"), "accuracy": Metric(True, "fraction correct"),
                    "style_share/*": Metric(None, "share of sampled answers")},
    world_only=True, reads_student=True, samples=True))


CUT_SHARE = Metric(None, "share cut at L tokens")
register_judge(JudgeRecord(
    "persona-gold", "smol-gold's exact judge: KL(student || teacher) over eval.samples student samples, "
                    "KL(teacher || student) over as many cached teacher draws, and the greedy answer's teacher "
                    "log-probability and best-explaining persona, every response cut at L",
    _persona_gold, {"reverse_kl": Metric(False, "nats per sequence"), "forward_kl": Metric(False, "nats per sequence"),
                    "teacher_logprob": Metric(True, "nats per token"),
                    "reverse_kl_per_token": Metric(False, "nats per token"),
                    "forward_kl_per_token": Metric(False, "nats per token"),
                    "reverse_kl_cut": CUT_SHARE, "forward_kl_cut": CUT_SHARE, "answer_cut": CUT_SHARE,
                    "max_tokens": Metric(None, "tokens (L)"),
                    "persona_share/*": Metric(None, "share of greedy answers the persona explains best")},
    reads_student=True, samples=True, teacher="persona", exact=True, findings=("forward_kl", "teacher_logprob")))
