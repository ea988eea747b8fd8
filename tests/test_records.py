"""Each extension point is one record (docs/architecture.md): a new method kind, judge protocol, teacher backend
and data source are each added here by one record (and a prompt file), then run through the real path: the
suite check, the plan, training, evaluation and the report. Plus what the records let the suite catch when it
loads: a misspelled judge, a world-only judge on other data."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from loopback import LoopbackServer
from tinymodels import build_tiny_model

from gadbench.config import ConfigError
from gadbench.data import SOURCES, register_source
from gadbench.data.base import Row
from gadbench.io import read_json
from gadbench.judge.protocols import Rating
from gadbench.judge.records import JUDGES, JudgeRecord, Metric, llm_judge, register_judge
from gadbench.methods import METHODS, Identity, Method, register_method
from gadbench.methods.gad import gad_stages
from gadbench.methods.offpolicy import D_FIT
from gadbench.report import build_report
from gadbench.report.load import load_results
from gadbench.runner import plan, run_suite
from gadbench.suite import get_suite
from gadbench.teachers import BACKENDS, Backend, register_teacher
from gadbench.worlds import synthetic as world

REPO = Path(__file__).resolve().parents[1]
# A few seconds of training: 4 steps of 4 prompts on the tiny world student, 8 test prompts, no checkpoints.
TINY = ["train.steps=4", "train.warmup_steps=2", "train.d_only_steps=1", "train.batch_size=4", "train.group_size=2",
        "train.max_response_tokens=12", "data.train.limit=8", "data.validation_size=0", "train.checkpoint_every=100",
        "eval.every=100", "data.eval.world-id.limit=8", "data.eval.world-ood=null", "eval.samples=0",
        "eval.judges=[gold, rouge-l]", "eval.bootstrap=100"]


def only(*methods: str) -> list[str]:
    """Overrides that keep the smoke suite's methods named (and drop the others)."""
    return [f"methods.{m}=null" for m in get_suite("smoke").methods if m not in methods]


@pytest.fixture(autouse=True)
def registries():
    """Records registered by a test are gone after it."""
    saved = [(r, dict(r)) for r in (METHODS, JUDGES, BACKENDS, SOURCES)]
    yield
    for registry, content in saved:
        registry.clear()
        registry.update(content)


def _csv(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------------------ a method


def test_a_new_method_kind_is_one_record_and_is_reported_as_itself(tmp_path):
    """docs/architecture.md's worked example: D alone for d_only_steps, then GAD. Its record names it for reports,
    so it gets a row of its own instead of being pooled with GAD (as when the report guessed from the config)."""
    register_method(Method(
        "gad-d-first",
        stages=lambda spec, steps: [(D_FIT, spec.train.d_only_steps)] + gad_stages(spec, steps),
        uses_d=lambda m: True,
        identity=lambda m, student: Identity("gad:d-first", "gad", "GAD, D alone first", "warmup"),
    ))
    suite = get_suite("smoke", [*TINY, *only("gad"), "methods.gad-d-first={kind: gad-d-first, description: D first}"])
    assert [r["stages"] for r in plan(suite)["runs"]] == ["warmup 2 + adversarial 2",
                                                           "d-fit 1 + warmup 2 + adversarial 2"]
    out = run_suite(suite, tmp_path, progress=False)
    runs = {r.method: r for r in load_results(out).runs}
    assert runs["gad-d-first"].identity.label == "GAD, D alone first" and runs["gad-d-first"].identity.group == "warmup"
    assert runs["gad-d-first"].identity.description == "D first"
    assert read_json(runs["gad-d-first"].path / "budget.json")["per_stage"]["d-fit"]["d_optimizer_steps"] == 1
    build_report(out)
    main = _csv(out / "tables" / "main.csv")
    assert [r["Method"] for r in main] == ["Before distill.", "GAD"]  # the variant is not pooled into GAD
    gad = runs["gad"].summary["eval"]["world-id"]["gold/teacher_logprob"]["mean"]
    assert float(main[1]["world-id"]) == pytest.approx(gad, abs=1e-3)
    ablation = _row(_csv(out / "tables" / "ablations.csv"), Variant="GAD, D alone first")
    assert ablation["Group"] == "warmup"


def _row(rows: list[dict], **match) -> dict:
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (match, rows)
    return found[0]


# ------------------------------------------------------------------------------------------------- a judge


def test_a_new_judge_protocol_is_one_record_and_its_prompt_file(tmp_path, monkeypatch):
    prompt = tmp_path / "helpfulness.v1.txt"
    prompt.write_text("[user]\nHow helpful is this answer to the question?\n\n{question}\n\n{answer}\n\n"
                      "Reply with a grade from 1 to 10 as [[n]].\n")
    register_judge(JudgeRecord("helpfulness", "1-10 helpfulness of the answer alone",
                               llm_judge(Rating, prompt=str(prompt)), {"score": Metric(True, "rating 1-10")},
                               calls_per_item=1))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # a loopback endpoint needs no key
    with LoopbackServer(reply=lambda body: "Helpful enough. [[7]]") as server:
        suite = get_suite("smoke", [*TINY, *only("seqkd"), "eval.judges=[gold, helpfulness]",
                                    f"judge.base_url={server.url}", "judge.model=fake"])
        p = plan(suite)
        assert p["llm_judges"] == ["helpfulness"] and p["judge_calls"] == 8 * p["eval_points_per_run"]
        out = run_suite(suite, tmp_path / "results", progress=False)
        sent = [b["messages"][-1]["content"] for b in server.received]
    assert sent and all(c.startswith("How helpful is this answer") for c in sent)
    summary = read_json(next(out.glob("tiny--seqkd--*")) / "summary.json")
    assert summary["eval"]["world-id"]["helpfulness/score"]["mean"] == 7.0
    assert summary["selection"]["metric"] == "gold/teacher_logprob"  # the first judge's primary metric
    with pytest.raises(ConfigError, match=r"judge `helpfulnes` is not a judge \(did you mean `helpfulness`\?\)"):
        get_suite("smoke", [*TINY, "eval.judges=[helpfulnes]"])


def test_a_misspelled_judge_stops_the_suite_in_one_line_before_anything_is_written(tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "gadbench.cli", "run", "--suite", "smoke", "--set",
                        "eval.judges=[gold, rougel]", "--out", str(out)], capture_output=True, text=True, timeout=120,
                       cwd=REPO)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"gadbench: {REPO / 'experiments' / 'smoke.yaml'}: `eval.judges`: judge `rougel` is not a judge (did you mean "
        f"`rouge-l`?); use one of {', '.join(JUDGES)}."]
    assert not out.exists()


def test_a_world_only_judge_on_other_data_stops_with_one_line():
    with pytest.raises(ConfigError) as e:
        get_suite("sharegpt-smol", ["eval.judges=[gold]"])
    assert "judge `gold` scores the synthetic world's problems only" in str(e.value)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------------ a teacher


class StyledTeacher:
    """The world's teacher, always in one style."""

    def __init__(self, style: str, batch: int):
        self.style, self.batch = style, batch

    def respond(self, prompts: list[str]) -> list[str]:
        return [" ".join(world.render(world.parse_prompt(p), self.style)) for p in prompts]


def test_a_new_teacher_backend_is_one_record(tmp_path):
    seen = []

    def build(arg: str, batch: int) -> StyledTeacher:
        seen.append((arg, batch))
        return StyledTeacher(arg, batch)

    register_teacher(Backend("styled", build, lambda cfg, cache_path: {"batch": cfg.concurrency}))
    suite = get_suite("smoke", [*TINY, *only("seqkd"), "teacher.spec=styled:equation", "teacher.concurrency=3"])
    out = run_suite(suite, tmp_path, progress=False)
    assert seen == [("equation", 3)]  # the backend's options, from the suite's teacher settings
    rows = [json.loads(line) for line in next(out.glob("tiny--seqkd--*/eval/step-4/world-id.jsonl")).read_text().splitlines()]
    assert all(r["teacher_response"].startswith(r["prompt"].split()[0] + " (") for r in rows)  # `add ( 3 5 ) = 8`


def test_an_hf_teacher_answers_a_suite(tmp_path):
    """`teacher: {spec: hf:PATH}` through a whole run: the backend takes the batch size from the suite's teacher
    settings (it was once handed the API teacher's options and stopped with a TypeError after loading)."""
    folder = tmp_path / "teacher"
    build_tiny_model(folder)
    suite = get_suite("smoke", [*TINY, *only("seqkd"), f"teacher.spec=hf:{folder}", "teacher.concurrency=4",
                                "train.steps=2"])
    out = run_suite(suite, tmp_path / "results", progress=False)
    summary = read_json(next(out.glob("tiny--seqkd--*")) / "summary.json")
    assert summary["budget"]["teacher_responses"] == 8 and summary["selection"]["checkpoint"] == 2


# -------------------------------------------------------------------------------------------- a data source


def test_a_new_data_source_is_one_record(tmp_path):
    qa = [("what is 2 + 2 ?", "4"), ("name a colour .", "red"), ("say hi .", "hi")]

    def read(spec):
        return "three questions", (Row(i, q, a, {"id": f"qa-{i}"}) for i, (q, a) in enumerate(qa))

    register_source("qa", size=3)(read)
    suite = get_suite("smoke", [*TINY, *only("seqkd"), "data.eval.world-id=null", "data.eval.qa={source: qa}",
                                "eval.judges=[rouge-l]", "train.steps=2"])
    assert plan(suite)["eval_items"] == 3  # the record's size: the set has no limit
    out = run_suite(suite, tmp_path, progress=False)
    rows = [json.loads(line) for line in next(out.glob("tiny--seqkd--*/eval/step-2/qa.jsonl")).read_text().splitlines()]
    assert [(r["id"], r["prompt"], r["teacher_response"]) for r in rows] == [(f"qa-{i}", q, a) for i, (q, a) in enumerate(qa)]
    summary = read_json(next(out.glob("tiny--seqkd--*")) / "summary.json")
    assert "qa (three questions): kept 3 of 3 rows" in [f"{d['source']} ({d['path']}): kept {d['kept']} of {d['total']} rows"
                                                        for d in summary["data"]]


# ------------------------------------------------------------------------------------------- reward shaping


def length_in_words(prompts: list[str], texts: list[str], teachers: list[str]) -> list[float]:
    return [float(len(t.split())) for t in texts]


def test_a_gad_variant_with_reward_shaping_is_one_yaml_entry(tmp_path):
    """`shaping: {dotted.path: weight}` adds a weighted reward to D's score (TRL's reward_funcs with weights): the
    logged reward is D's score plus the weighted term, the run is reported under its own label."""
    entry = "methods.gad-long={kind: gad, shaping: {'test_records:length_in_words': 0.5}}"
    suite = get_suite("smoke", [*TINY, *only(), entry])
    out = run_suite(suite, tmp_path, progress=False)
    rows = [r for r in load_results(out).runs[0].metrics if r["stage"] == "adversarial"]
    assert rows
    for r in rows:  # reward = D's score of each sample + 0.5 x its length in words, averaged
        assert r["reward_mean"] == pytest.approx(r["student_score"] + 0.5 * r["shaping/test_records:length_in_words"],
                                                 abs=1e-5), r
    identity = load_results(out).runs[0].identity
    assert (identity.group, identity.label) == ("reward shaping", "GAD, reward + 0.5 length_in_words")
    with pytest.raises(ConfigError, match="shaping: reward `nosuch` is unknown"):
        get_suite("smoke", [*TINY, *only(), "methods.gad-x={kind: gad, shaping: {nosuch: 1.0}}"])
