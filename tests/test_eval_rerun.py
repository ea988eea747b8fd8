"""`gadbench eval RUN_DIR` on a tiny GAD run of the synthetic world (tests/fixtures/suites/dp.yaml, 2 steps):
re-evaluating a checkpoint reproduces the training-time evaluation, stored answers are re-used, a new judge
runs alone, `--checkpoint 0` is the initial student, and `--lm-eval` runs local lm_eval tasks on the student."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from gadbench.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LMEVAL = ROOT / "tests" / "fixtures" / "lmeval"
CACHE = ROOT / "results" / "cache"  # the shared world-student cache (as in test_engine.py)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A finished 2-step GAD run (1 warmup + 1 adversarial step), evaluated at steps 0, 1 and 2."""
    out = tmp_path_factory.mktemp("runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("GADBENCH_EXPERIMENTS", str(ROOT / "experiments"))
    mp.setenv("GADBENCH_CACHE", str(CACHE))
    try:
        argv = ["-q", "run", "--suite", str(ROOT / "tests/fixtures/suites/dp.yaml"), "--out", str(out),
                "--set", "train.steps=2", "--set", "train.warmup_steps=1", "--set", "train.checkpoint_every=1",
                "--set", "eval.every=1", "--set", "data.validation_size=4"]
        assert main(argv) == 0
    finally:
        mp.undo()
    (run,) = [p for p in (out / "dp").iterdir() if p.name.startswith("tiny--gad--")]
    return run


@pytest.fixture
def run(tiny_run, tmp_path, monkeypatch) -> Path:
    """A private copy of the run (tests rewrite its eval folders)."""
    monkeypatch.setenv("GADBENCH_CACHE", str(CACHE))
    copy = tmp_path / "suite" / tiny_run.name
    shutil.copytree(tiny_run, copy)
    return copy


def test_default_checkpoint_reuses_stored_rows_and_reproduces_metrics(run, capsys, monkeypatch):
    selected = json.loads((run / "summary.json").read_text())["selection"]["checkpoint"]
    before = json.loads((run / "eval" / f"step-{selected}" / "metrics.json").read_text())

    def no_generation(*a, **k):
        raise AssertionError("stored answers must be re-used, not generated again")

    monkeypatch.setattr("gadbench.rollout.hf.HFRolloutEngine.generate", no_generation)
    assert main(["eval", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"checkpoint: step {selected}" in out and "gold/teacher_logprob" in out and "world-id" in out
    assert json.loads((run / "eval" / f"step-{selected}" / "metrics.json").read_text()) == before


def test_regenerated_answers_equal_the_training_time_evaluation(run):
    step_dir = run / "eval" / "step-2"
    saved = {n: _rows(step_dir / f"{n}.jsonl") for n in ("world-id", "validation")}
    saved_metrics = json.loads((step_dir / "metrics.json").read_text())
    shutil.rmtree(step_dir)
    assert main(["eval", str(run), "--checkpoint", "2"]) == 0
    for name, rows in saved.items():
        again = _rows(step_dir / f"{name}.jsonl")
        assert [r["answer"] for r in again] == [r["answer"] for r in rows]
    assert json.loads((step_dir / "metrics.json").read_text()) == saved_metrics


def _parts_read(monkeypatch) -> list[list[str]]:
    """The checkpoint parts each DCP load asks for (the load itself runs)."""
    from gadbench.state import checkpoint

    calls, load = [], checkpoint.dcp.load

    def watched(states, *a, **k):
        calls.append(sorted(states))
        return load(states, *a, **k)

    monkeypatch.setattr(checkpoint.dcp, "load", watched)
    return calls


def test_eval_reads_g_alone_and_d_only_for_missing_diagnostics(run, monkeypatch):
    """Answers to regenerate with D's diagnostics stored: only G's part is read and no D is built; with the
    step's results gone, D's part too (for its diagnostics), and never the reference or optimizer states."""
    step_dir = run / "eval" / "step-2"
    saved = _rows(step_dir / "world-id.jsonl")
    (step_dir / "world-id.jsonl").unlink()
    parts = _parts_read(monkeypatch)
    built = []
    monkeypatch.setattr("gadbench.methods.context.build_discriminator", lambda *a, **k: built.append(1))
    assert main(["eval", str(run), "--checkpoint", "2"]) == 0
    assert parts == [["g"]] and not built
    assert [r["answer"] for r in _rows(step_dir / "world-id.jsonl")] == [r["answer"] for r in saved]

    monkeypatch.undo()
    parts = _parts_read(monkeypatch)
    diagnostics = json.loads((step_dir / "metrics.json").read_text())["validation"]["d"]
    shutil.rmtree(step_dir)
    assert main(["eval", str(run), "--checkpoint", "2"]) == 0
    assert parts == [["d", "g"]]
    assert json.loads((step_dir / "metrics.json").read_text())["validation"]["d"] == diagnostics


def test_a_bf16_run_is_evaluated_from_bf16_weights_without_an_fp32_copy(tmp_path, monkeypatch):
    """train.precision: bf16 (on this CPU): `gadbench eval` holds G in bf16 and generates from it directly (no
    second, bf16 copy of an fp32 G), and its answers equal the training-time evaluation's, which generated
    from the rollout engine's bf16 copy of the trained fp32 weights."""
    monkeypatch.setenv("GADBENCH_EXPERIMENTS", str(ROOT / "experiments"))
    monkeypatch.setenv("GADBENCH_CACHE", str(CACHE))
    argv = ["-q", "run", "--suite", str(ROOT / "tests/fixtures/suites/dp.yaml"), "--out", str(tmp_path),
            "--set", "train.steps=2", "--set", "train.warmup_steps=1", "--set", "data.validation_size=4",
            "--set", "train.precision=bf16"]
    assert main(argv) == 0
    (run,) = (tmp_path / "dp").glob("tiny--gad--*")
    step_dir = run / "eval" / "step-2"
    saved = _rows(step_dir / "world-id.jsonl")
    (step_dir / "world-id.jsonl").unlink()
    from gadbench.rollout.hf import HFRolloutEngine

    seen, generate = [], HFRolloutEngine.generate

    def watched(self, model, *a, **k):
        out = generate(self, model, *a, **k)
        seen.append((next(model.parameters()).dtype, self._copy))
        return out

    monkeypatch.setattr(HFRolloutEngine, "generate", watched)
    assert main(["eval", str(run), "--checkpoint", "2"]) == 0
    assert seen and all(dtype == torch.bfloat16 and copy is None for dtype, copy in seen), seen
    assert [r["answer"] for r in _rows(step_dir / "world-id.jsonl")] == [r["answer"] for r in saved]


def test_checkpoint_0_is_the_initial_student(run):
    step_dir = run / "eval" / "step-0"
    saved = _rows(step_dir / "world-id.jsonl")
    shutil.rmtree(step_dir)
    assert main(["eval", str(run), "--checkpoint", "0", "--judges", "gold"]) == 0
    assert [r["answer"] for r in _rows(step_dir / "world-id.jsonl")] == [r["answer"] for r in saved]


def test_a_missing_judge_runs_alone_on_the_stored_answers(run, monkeypatch):
    """At the checkpoint the summary reports: rouge-l forgotten everywhere, then asked alone. Its judgments
    and statistics come back as they were, the other judges' statistics stay, and summary.json shows it."""
    summary_path = run / "summary.json"
    summary = json.loads(summary_path.read_text())
    step_dir = run / "eval" / f"step-{summary['selection']['checkpoint']}"
    original = _rows(step_dir / "world-id.jsonl")
    metrics_before = json.loads((step_dir / "metrics.json").read_text())
    for name in ("world-id", "validation"):  # forget the rouge-l judgments
        rows = _rows(step_dir / f"{name}.jsonl")
        for r in rows:
            r["judgments"].pop("rouge-l")
        (step_dir / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rouge = summary["eval"]["world-id"].pop("rouge-l/score")
    summary_path.write_text(json.dumps(summary))
    monkeypatch.setattr("gadbench.rollout.hf.HFRolloutEngine.generate",
                        lambda *a, **k: pytest.fail("stored answers must be re-used"))
    assert main(["eval", str(run), "--judges", "rouge-l"]) == 0
    again = _rows(step_dir / "world-id.jsonl")
    assert [r["judgments"]["rouge-l"] for r in again] == [r["judgments"]["rouge-l"] for r in original]
    assert [r["judgments"]["gold"] for r in again] == [r["judgments"]["gold"] for r in original]
    metrics = json.loads((step_dir / "metrics.json").read_text())
    assert metrics == metrics_before  # rouge-l recomputed the same; gold's statistics kept, not dropped
    assert json.loads(summary_path.read_text())["eval"]["world-id"]["rouge-l/score"] == rouge


def test_bad_checkpoint_and_bad_run_dir_fail_in_one_line(run, tmp_path, capsys):
    assert main(["eval", str(run), "--checkpoint", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no checkpoint or stored answers of step 5" in err and "checkpoints: 1, 2;" in err and "\n" not in err
    assert main(["eval", str(tmp_path)]) == 2
    assert "no config.yaml" in capsys.readouterr().err


def test_checkpoints_of_the_earlier_format_are_refused_in_one_line(run, capsys):
    shutil.rmtree(run / "checkpoints")
    shutil.rmtree(run / "eval")
    (run / "checkpoints" / "step-2").mkdir(parents=True)
    (run / "checkpoints" / "step-2" / "state.pt").write_bytes(b"")
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "written by an earlier gadbench version (state.pt)" in err and "\n" not in err


def test_a_step_whose_checkpoint_is_gone_is_judged_on_its_stored_answers(run, capsys, monkeypatch):
    """Checkpoints deleted (as in a results folder kept without them): a judge runs on the stored answers of
    the selected step without loading a model; a set without stored answers, or lm_eval, stops in one line."""
    step = json.loads((run / "summary.json").read_text())["selection"]["checkpoint"]
    step_dir = run / "eval" / f"step-{step}"
    original = _rows(step_dir / "world-id.jsonl")
    rows = [{**r, "judgments": {k: v for k, v in r["judgments"].items() if k != "rouge-l"}} for r in original]
    (step_dir / "world-id.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    shutil.rmtree(run / "checkpoints")
    monkeypatch.setattr("gadbench.eval.rerun.load_context", lambda *a, **k: pytest.fail("no model may be loaded"))
    assert main(["eval", str(run), "--judges", "rouge-l"]) == 0
    assert f"checkpoint: step {step}" in capsys.readouterr().out
    again = _rows(step_dir / "world-id.jsonl")
    assert [r["judgments"]["rouge-l"] for r in again] == [r["judgments"]["rouge-l"] for r in original]
    assert [r["answer"] for r in again] == [r["answer"] for r in original]

    assert main(["eval", str(run), "--lm-eval", "any_task"]) == 2
    assert "lm_eval tasks need the model" in capsys.readouterr().err
    (step_dir / "world-id.jsonl").unlink()
    assert main(["eval", str(run), "--judges", "rouge-l"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"step {step} of" in err and "no stored answers for world-id" in err and "\n" not in err


def test_an_llm_judge_added_later_records_its_departures_and_usage_in_the_summary(run):
    """A gad-paper judge run by `gadbench eval` (here a loopback endpoint that answers "ok") leaves what a run
    judged at training time would: its departures from the paper and its request counts."""
    from loopback import LoopbackServer

    with LoopbackServer() as server:
        argv = ["eval", str(run), "--judges", "gad-paper", "--set", f"judge.base_url={server.url}",
                "--set", "judge.model=small-judge", "--set", "judge.guided=true"]
        assert main(argv) == 0
        sent = len(server.received)
    summary = json.loads((run / "summary.json").read_text())
    assert "judge model small-judge instead of GPT-4o" in summary["departures"]
    assert "judge verdicts constrained to the protocol's verdict lines (judge.guided)" in summary["departures"]
    assert summary["judge_usage"]["requests"] == sent > 0
    assert summary["judge_usage"]["cost_usd"] is None  # a local judge has no price: unknown, never $0 or GPT-4o's
    assert main(argv) == 0  # the same judgments again: cached, nothing new sent, departures not repeated
    again = json.loads((run / "summary.json").read_text())
    assert again["judge_usage"]["requests"] == sent and again["departures"] == summary["departures"]


def test_step_0_updates_the_suites_before_row_of_the_student_and_seed(tiny_run, run, monkeypatch):
    """The runner's `before` row (the initial student) takes a judge added to step 0 of any of its runs."""
    (before,) = [p for p in tiny_run.parent.iterdir() if "--before--" in p.name]
    row = run.parent / before.name
    shutil.copytree(before, row)
    summary = json.loads((row / "summary.json").read_text())
    rouge = summary["eval"]["world-id"].pop("rouge-l/score")
    (row / "summary.json").write_text(json.dumps(summary))
    monkeypatch.setattr("gadbench.rollout.hf.HFRolloutEngine.generate",
                        lambda *a, **k: pytest.fail("stored answers must be re-used"))
    assert main(["eval", str(run), "--checkpoint", "0", "--judges", "rouge-l"]) == 0
    after = json.loads((row / "summary.json").read_text())
    assert after["eval"]["world-id"]["rouge-l/score"] == rouge
    assert after["eval"]["world-id"]["gold/teacher_logprob"] == summary["eval"]["world-id"]["gold/teacher_logprob"]


def test_unknown_settings_of_another_version_are_ignored(run, caplog):
    from gadbench.eval.rerun import load_spec

    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text.replace("rollout:\n", "rollout:\n  retired_option: 3\n"))
    spec = load_spec(run)
    assert spec.student_name == "tiny" and "rollout.retired_option" in caplog.text


@pytest.mark.filterwarnings("ignore")
def test_lm_eval_on_the_checkpoint_equals_run_lm_eval_on_its_weights(run, capsys, monkeypatch):
    pytest.importorskip("lm_eval")
    from gadbench.eval.lmeval import run_lm_eval
    from gadbench.eval.rerun import load_context, load_spec

    argv = ["eval", str(run), "--checkpoint", "2", "--lm-eval", "gadbench_mc", "--lm-eval-include", str(LMEVAL),
            "--limit", "4", "--lm-eval-only"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "gadbench_mc" in out and "acc,none" in out
    stored = json.loads((run / "eval" / "step-2" / "lm_eval.json").read_text())
    assert stored["step"] == 2 and stored["n-samples"]["gadbench_mc"]["effective"] == 4
    g = load_context(load_spec(run), run, 2).g
    monkeypatch.chdir(LMEVAL)  # the task YAMLs name their jsonl files relative to this folder
    direct = run_lm_eval(g.model, g.tokenizer, ["gadbench_mc"], include_path=LMEVAL, limit=4, builtin_tasks=False)
    assert stored["results"]["gadbench_mc"]["acc,none"] == direct["results"]["gadbench_mc"]["acc,none"]


def test_ctrl_c_during_a_checkpoint_write_takes_effect_once_it_is_written(tmp_path):
    """SIGINT inside the write is held until the block ends (DCP would turn it into a CheckpointException and
    lose the checkpoint); then KeyboardInterrupt is raised and the previous handler is back."""
    import os
    import signal

    from gadbench.state.checkpoint import _interrupt_afterwards

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with _interrupt_afterwards():
            os.kill(os.getpid(), signal.SIGINT)
            (tmp_path / "written").write_text("whole")  # still runs: the interrupt waits for the block's end
    assert (tmp_path / "written").read_text() == "whole"
    assert signal.getsignal(signal.SIGINT) is before
