"""Every bad input ends in one line: each subcommand (run, suites, report, eval, teacher collect, serve, bench,
doctor) given a bad suite, setting, path, option, data file or damaged result exits with status 2 and exactly one
stderr line, `gadbench: <the problem>; <the fix>`, and changes no file that was already there (the case's folder
is snapshot before and after; a run's lock file alone may appear).

One table, one parametrised test. Each case builds what it needs in its own folder (a suite file, a data file, a
copy of stored results, a run directory with a checkpoint), then runs `gadbench.cli.main` in this process, the
same function the `gadbench` command runs; an exception other than SystemExit fails the case with its
traceback. Only checks that happen before a model loads are here: they run in milliseconds to seconds each.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from gadbench.cli import main
from gadbench.config import to_yaml
from gadbench.rundir import seal
from gadbench.suite import get_suite, runs_of

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures"
CRASH = FIX / "reliability" / "crash.yaml"  # an 8-step GAD suite on the synthetic world
SMOKE_RESULTS = FIX / "results" / "smoke"  # stored results of a suite (report input)
UNWRITABLE = Path("/sys/gadbench-test")  # sysfs takes no new folder or file, not even from root


# ------------------------------------------------------------------------------------------ case builders


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def suite_file(folder: Path, body: str) -> Path:
    """A suite file in `folder` extending the crash suite (by path) with `body`."""
    return write(folder / "suite.yaml", f"extends: {CRASH}\nname: bad\n{body}")


def run_cmd(tmp: Path, *sets: str, suite: str | Path = CRASH, extra: tuple[str, ...] = ()) -> list[str]:
    argv = ["-q", "run", "--suite", str(suite), "--out", str(tmp / "out"), *extra]
    for s in sets:
        argv += ["--set", s]
    return argv


def results(tmp: Path) -> Path:
    """A copy of stored suite results."""
    return Path(shutil.copytree(SMOKE_RESULTS, tmp / "smoke"))


def first_run(suite_dir: Path) -> Path:
    return next(p for p in sorted(suite_dir.iterdir()) if (p / "summary.json").exists())


def run_dir(tmp: Path, damage: Callable[[Path], None] | None = None, **config_sets) -> Path:
    """A run directory of the crash suite as training leaves it: config.yaml, checkpoint step-8 (its shards stand-in
    random bytes, complete.json, sealed with its manifest) and a summary selecting it; `damage(run)` spoils part of
    it. Every case fails before the checkpoint is read."""
    spec = runs_of(get_suite(str(CRASH)))[0]
    run = tmp / "results" / "crash" / spec.run_id
    text = to_yaml(spec)
    for key, value in config_sets.items():
        text = text.replace(key, value)
    write(run / "config.yaml", text)
    ckpt = run / "checkpoints" / "step-8"
    write(ckpt / "__0_0.distcp", os.urandom(4096))
    write(ckpt / "complete.json", json.dumps({"step": 8, "parts": ["d", "g"]}))
    seal(ckpt)
    write(run / "summary.json", json.dumps({"run_id": spec.run_id, "selection": {"checkpoint": 8}}))
    if damage:
        damage(run)
    return run


SHARDS = "checkpoints/step-8/__0_0.distcp"


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def eval_cmd(tmp: Path, *extra: str, damage=None, **config_sets) -> list[str]:
    return ["eval", str(run_dir(tmp, damage, **config_sets)), *extra]


def prompts(tmp: Path, data: bytes | str = '{"prompt": "hi"}\n') -> Path:
    return write(tmp / "prompts.jsonl", data)


def collect_cmd(tmp: Path, *extra: str, data: bytes | str = '{"prompt": "hi"}\n', teacher: str = "dataset",
                out: Path | None = None) -> list[str]:
    return ["teacher", "collect", "--teacher", teacher, "--data", str(prompts(tmp, data)),
            "--out", str(out or tmp / "out.jsonl"), *extra]


def a_file(tmp: Path) -> Path:
    return write(tmp / "a-file", "not a folder\n")


def trunc(path: Path) -> Path:
    """Cut `path` to half its bytes (a file a crash or a full disk left short)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def busy_port() -> int:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    _HELD.append(sock)
    return sock.getsockname()[1]


_HELD: list = []  # sockets kept listening while a case runs


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# ------------------------------------------------------------------------------------------------ table

# id -> (build(tmp) -> argv, words the one line must hold)
CASES: dict[str, tuple[Callable[[Path], list[str]], tuple[str, ...]]] = {
    # --- gadbench run: the suite file
    "run/no such suite": (lambda t: run_cmd(t, suite="no-such-suite"), ("no suite named `no-such-suite`",)),
    "run/malformed yaml": (lambda t: run_cmd(t, suite=FIX / "reliability" / "malformed.yaml"),
                           ("malformed YAML at line 5", "fix the syntax")),
    "run/unknown key": (lambda t: run_cmd(t, suite=FIX / "reliability" / "unknown_key.yaml"),
                        ("unknown key `train.stepz`", "did you mean `train.steps`?")),
    "run/wrong type": (lambda t: run_cmd(t, suite=FIX / "reliability" / "wrong_type.yaml"),
                       ("`train.batch_size` = 'sixteen'", "should be of type int")),
    "run/duplicate key": (lambda t: run_cmd(t, suite=suite_file(t, "train: {steps: 2, steps: 5}\n")),
                          ("key `steps` is given twice in one mapping (line 3)", "keep one")),
    "run/duplicate key on two lines": (lambda t: run_cmd(t, suite=suite_file(t, "seeds: [0]\nseeds: [1]\n")),
                                       ("key `seeds` is given twice in one mapping (lines 3 and 4)",)),
    "run/not utf-8": (lambda t: run_cmd(t, suite=write(t / "latin.yaml", b"name: x\ndescription: caf\xe9\n")),
                      ("byte 0xe9 at line 2 is not UTF-8 text", "save the file as UTF-8")),
    "run/a list, not a mapping": (lambda t: run_cmd(t, suite=write(t / "list.yaml", "- a\n- b\n")),
                                  ("must be a YAML mapping of settings",)),
    "run/suite is a folder": (lambda t: run_cmd(t, suite=(t / "dir.yaml").mkdir() or t / "dir.yaml"),
                              ("cannot be read", "check the path")),
    "run/extends nowhere": (lambda t: run_cmd(t, suite=write(t / "s.yaml", "extends: nowhere.yaml\nname: s\n")),
                            ("`extends: nowhere.yaml` names no suite file", "fix the name")),
    "run/extends cycle": (lambda t: run_cmd(t, suite=write(t / "s.yaml", "extends: s.yaml\nname: s\n")),
                          ("`extends` forms a cycle",)),
    "run/seeds empty in file": (lambda t: run_cmd(t, suite=suite_file(t, "seeds: []\n")),
                                ("seeds is empty", "list at least one seed")),
    # --- gadbench run: --set
    "set/no equals sign": (lambda t: run_cmd(t, "train.steps"), ("expected key=value",)),
    "set/unknown key": (lambda t: run_cmd(t, "train.stepz=3"), ("unknown key `train.stepz`",)),
    "set/into a single value": (lambda t: run_cmd(t, "train.steps.x=1"),
                                ("train.steps is a single value, not a group",)),
    "set/group replaced by a number": (lambda t: run_cmd(t, "train=5"), ("`train` must be a mapping",)),
    "set/out of range": (lambda t: run_cmd(t, "train.steps=0"), ("`train.steps` = 0 is out of range",)),
    "set/inf": (lambda t: run_cmd(t, "train.lr_sft=inf"), ("`train.lr_sft` = 'inf' is infinite", "finite number")),
    "set/-inf": (lambda t: run_cmd(t, "train.kl_beta=-.inf"), ("is infinite",)),
    "set/inf as text": (lambda t: run_cmd(t, "train.lr_generator=1e999"), ("is infinite",)),
    "set/nan": (lambda t: run_cmd(t, "train.lr_sft=nan"), ("`train.lr_sft` is NaN", "write a number")),
    "set/seeds empty": (lambda t: run_cmd(t, "seeds=[]"), ("seeds is empty",)),
    "set/duplicate key in a value": (lambda t: run_cmd(t, "train={steps: 2, steps: 5}"),
                                     ("--set train: key `steps` is given twice",)),
    "set/wrong type": (lambda t: run_cmd(t, "train.batch_size=sixteen"), ("should be of type int",)),
    "set/bad enum": (lambda t: run_cmd(t, "train.device=tpu"), ("`train.device` = 'tpu' is not one of",)),
    "set/bad template": (lambda t: run_cmd(t, "students.tiny.template=fancy"), ("is not one of chat, paper, plain",)),
    "set/no such judge": (lambda t: run_cmd(t, "eval.judges=[nosuchjudge]"),
                          ("`eval.judges`: judge `nosuchjudge` is not a judge",)),
    "set/gold on non-world data": (lambda t: run_cmd(t, f"data.train={{source: jsonl, path: {prompts(t)}}}",
                                                     "eval.judges=[gold]"),
                                   ("judge `gold` scores the synthetic world's problems only",)),
    "set/sampled judge without samples": (lambda t: run_cmd(t, "eval.judges=[gold-sampled]", "eval.samples=0"),
                                          ("scores sampled answers; set eval.samples",)),
    "set/persona judge without a persona teacher": (lambda t: run_cmd(t, "eval.judges=[persona-gold]", "eval.samples=2"),
                                                    ("judge `persona-gold` reads a `persona` teacher",)),
    "set/no such method kind": (lambda t: run_cmd(t, "methods.gad.kind=nosuch"), ("kind `nosuch` is not a method",)),
    "set/no such teacher": (lambda t: run_cmd(t, "teacher.spec=nosuch:x"),
                            ("teacher backend `nosuch` in `nosuch:x` is not registered",)),
    "set/no such data source": (lambda t: run_cmd(t, "data.train.source=nosuch"),
                                ("`data.train.source`: `nosuch` is not a data source",)),
    "set/no such selection metric": (lambda t: run_cmd(t, "eval.selection_metric=nosuch/x"),
                                     ("`eval.selection_metric`: `nosuch/x` is no metric",)),
    "set/bad search key": (lambda t: run_cmd(t, "methods.gad.search={nosuch: [1]}"),
                           ("search key `nosuch` is not a numeric train setting",)),
    "set/judge port out of range": (lambda t: run_cmd(t, "judge.base_url=http://127.0.0.1:99999/v1"),
                                    ("`judge`: base_url", "is not a valid URL (Port out of range", "http://127.0.0.1:8000/v1")),
    "set/judge url not http": (lambda t: run_cmd(t, "judge.base_url=ftp://example.org/v1"),
                               ("is not an http(s) URL",)),
    "set/one judge price": (lambda t: run_cmd(t, "judge.price_per_mtok=[1]"), ("must be two prices",)),
    "set/judge timeout 0": (lambda t: run_cmd(t, "judge.timeout=0"), ("`judge.timeout` = 0.0 is out of range",)),
    "set/judge retries -1": (lambda t: run_cmd(t, "judge.max_retries=-1"), ("`judge.max_retries` = -1 is out",)),
    "set/teacher timeout inf": (lambda t: run_cmd(t, "teacher.timeout=inf"), ("`teacher.timeout` = 'inf' is infinite",)),
    "set/tolerance out of range": (lambda t: run_cmd(t, "budget.tolerance=2"), ("`budget.tolerance` = 2",)),
    "set/no methods": (lambda t: run_cmd(t, "methods.gad=null"), ("has no runs (1 students x 0 methods)",)),
    # --- gadbench run: files and folders
    "run/data file missing": (lambda t: run_cmd(t, f"data.train.path={t / 'absent.jsonl'}"),
                              ("absent.jsonl does not exist", "check the path")),
    "run/relative data file missing": (lambda t: run_cmd(t, suite=suite_file(t / "sub", "data: {eval: {x: {source: "
                                                                               "jsonl, path: rel.jsonl}}}\n"
                                                                               "eval: {judges: [rouge-l]}\n")),
                                       ("sub/rel.jsonl does not exist",)),  # from the suite file's folder
    "run/data path is a folder": (lambda t: run_cmd(t, f"data.train.path={t}"), ("is a directory",)),
    "run/baseline missing": (lambda t: run_cmd(t, f"baseline={t / 'none.json'}"),
                             ("regression baseline", "none.json does not exist", "--update-baseline")),
    "run/baseline missing, relative to the suite file": (
        lambda t: run_cmd(t, suite=suite_file(t / "sub", "baseline: none.json\n")),
        ("baseline", "sub/none.json does not exist")),
    "run/out is a file": (lambda t: run_cmd(t, extra=("--out", str(a_file(t)))),
                          ("is a file, not a folder", "pass a folder")),
    "run/out under a file": (lambda t: run_cmd(t, extra=("--out", str(a_file(t) / "out"))),
                             ("lies under a file",)),
    "run/out unwritable": (lambda t: run_cmd(t, extra=("--out", str(UNWRITABLE))),
                           ("cannot write in --out", "pass a folder you can write to")),
    "run/needs a gpu and a judge": (lambda t: run_cmd(t, suite="paper"),
                                    ("suite `paper` needs a CUDA GPU", "--dry-run")),
    "run/bad option value": (lambda t: ["run", "--suite"], ("argument --suite: expected one argument",
                                                            "gadbench run --help")),
    "run/memory plan for no GPUs": (lambda t: run_cmd(t, extra=("--dry-run", "--gpus", "0")),
                                    ("--gpus 0 is not a process count", "--gpus 1 or more")),
    "run/memory plan for a GPU without memory": (lambda t: run_cmd(t, extra=("--dry-run", "--gpu-mem", "-80")),
                                                 ("is not a GPU's memory", "--gpu-mem 80")),
    "run/memory plan from a missing accelerate config": (
        lambda t: run_cmd(t, extra=("--dry-run", "--accelerate-config", str(t / "none.yaml"))),
        ("cannot read the accelerate config", "--gpus N instead")),
    "run/memory plan from an accelerate config without processes": (
        lambda t: run_cmd(t, extra=("--dry-run", "--accelerate-config", str(write(t / "a.yaml", "num_processes: x\n")))),
        ("no usable num_processes", "--gpus N instead")),
    # --- gadbench suites
    "suites/explain unknown": (lambda t: ["suites", "--explain", "nosuch"], ("no setting `nosuch`",)),
    "suites/explain typo": (lambda t: ["suites", "--explain", "train.stepz"], ("did you mean `train.steps`?",)),
    # --- gadbench report
    "report/no such folder": (lambda t: ["report", str(t / "nowhere")], ("is not a directory",)),
    "report/a file": (lambda t: ["report", str(a_file(t))], ("is not a directory",)),
    "report/empty folder": (lambda t: ["report", str((t / "empty").mkdir() or t / "empty")],
                            ("no runs or suites under",)),
    "report/truncated summary.json": (
        lambda t: ["report", str(trunc(first_run(results(t)) / "summary.json").parents[1])],
        ("summary.json is damaged: not valid JSON", "gadbench run --resume")),
    "report/summary.json not an object": (
        lambda t: ["report", str(write(first_run(results(t)) / "summary.json", "[1, 2]").parent.parent)],
        ("summary.json holds no JSON object",)),
    "report/config.yaml not yaml": (
        lambda t: ["report", str(write(first_run(results(t)) / "config.yaml", "a: [\n").parent.parent)],
        ("config.yaml is damaged (not valid YAML)",)),
    "report/config.yaml not utf-8": (
        lambda t: ["report", str(write(first_run(results(t)) / "config.yaml", b"a: \xff\n").parent.parent)],
        ("config.yaml is damaged (not UTF-8 text)",)),
    "report/metrics.jsonl middle line": (
        lambda t: ["report", str(write(first_run(results(t)) / "metrics.jsonl",
                                       '{"step": 1}\n{"step": 2, oops\n{"step": 3}\n').parent.parent)],
        ("metrics.jsonl: line 2 is not valid JSON", "fix or remove that line")),
    "report/budget.json not an object": (
        lambda t: ["report", str(write(first_run(results(t)) / "budget.json", '"spent"').parents[1])],
        ("budget.json holds no JSON object",)),
    "report/baselines missing": (lambda t: ["report", str(results(t)), "--baselines", str(t / "none.json")],
                                 ("there is no baselines file", "none.json")),
    "report/baselines damaged": (lambda t: ["report", str(results(t)), "--baselines", str(write(t / "b.json", "{"))],
                                 ("b.json is damaged: not valid JSON",)),
    "report/baselines without entries": (
        lambda t: ["report", str(results(t)), "--baselines", str(write(t / "b.json", "[]"))],
        ("holds no list of `entries`",)),
    # --- gadbench eval
    "eval/no such folder": (lambda t: ["eval", str(t / "nowhere")], ("is not a run directory (no config.yaml)",)),
    "eval/no such judge": (lambda t: eval_cmd(t, "--judges", "nosuch"), ("judge `nosuch` is not a judge",)),
    "eval/gold on non-world data": (lambda t: eval_cmd(t, "--judges", "gold", **{"source: world\n    split: id":
                                                                                "source: jsonl\n    split: id"}),
                                    ("judge `gold` scores the synthetic world's problems only",)),
    "eval/no such checkpoint": (lambda t: eval_cmd(t, "--checkpoint", "99"),
                                ("no checkpoint or stored answers of step 99", "checkpoints: 8")),
    "eval/negative checkpoint": (lambda t: eval_cmd(t, "--checkpoint", "-1"), ("--checkpoint must be a step",)),
    "eval/damaged checkpoint": (lambda t: eval_cmd(t, damage=lambda r: flip_byte(r / SHARDS)),
                                ("checkpoint step-8", "is damaged", "__0_0.distcp does not match its sha256")),
    "eval/checkpoint cut short": (lambda t: eval_cmd(t, damage=lambda r: trunc(r / SHARDS)),
                                  ("__0_0.distcp has 2048 bytes, the manifest 4096",)),
    "eval/checkpoint emptied": (lambda t: eval_cmd(t, damage=lambda r: write(r / SHARDS, b"")),
                                ("__0_0.distcp has 0 bytes",)),
    "eval/checkpoint marker damaged": (lambda t: eval_cmd(t, damage=lambda r: trunc(r / "checkpoints/step-8/complete.json")),
                                       ("complete.json has",)),
    "eval/checkpoint without manifest": (
        lambda t: eval_cmd(t, damage=lambda r: (r / "checkpoints/step-8/manifest.json").unlink()),
        ("manifest.json is missing",)),
    "eval/truncated summary.json": (lambda t: eval_cmd(t, damage=lambda r: trunc(r / "summary.json")),
                                    ("summary.json is damaged: not valid JSON",)),
    "eval/config.yaml not yaml": (lambda t: eval_cmd(t, damage=lambda r: write(r / "config.yaml", "a: [\n")),
                                  ("is not valid YAML", "the run directory is damaged")),
    "eval/unknown --set key": (lambda t: eval_cmd(t, "--set", "judge.modle=x"), ("unknown key `judge.modle`",)),
    "eval/bad judge url": (lambda t: eval_cmd(t, "--set", "judge.base_url=http://127.0.0.1:0/v1"),
                           ("has port 0",)),
    "eval/lm-eval-only without tasks": (lambda t: eval_cmd(t, "--lm-eval-only"), ("--lm-eval-only needs --lm-eval",)),
    "eval/limit 0": (lambda t: eval_cmd(t, "--lm-eval", "x", "--limit", "0"), ("--limit must be above 0",)),
    # --- gadbench teacher collect
    "collect/data missing": (lambda t: ["teacher", "collect", "--teacher", "dataset", "--data", str(t / "none.jsonl"),
                                        "--out", str(t / "o.jsonl")], ("there is no data file",)),
    "collect/row not an object": (lambda t: collect_cmd(t, data='{"prompt": "a"}\n[1, 2]\n'),
                                  ("row 2 of", "is a JSON list, not an object")),
    "collect/row not utf-8": (lambda t: collect_cmd(t, data=b'{"prompt": "a"}\n{"prompt": "caf\xe9"}\n'),
                              ("row 2 of", "is not UTF-8 text (byte 0xe9 at column 16)", "save the file as UTF-8")),
    "collect/row not json": (lambda t: collect_cmd(t, data='{"prompt": "a"}\n{"prompt": \n{"prompt": "c"}\n'),
                             ("row 2 of", "is not valid JSON")),
    "collect/empty file": (lambda t: collect_cmd(t, data=""), ("has no rows",)),
    "collect/no prompt field": (lambda t: collect_cmd(t, data='{"question": "a"}\n'),
                                ("row 1", "--prompt-field")),
    "collect/out is a folder": (lambda t: collect_cmd(t, out=t), ("is a folder, not a file",)),
    "collect/out under a file": (lambda t: collect_cmd(t, out=a_file(t) / "o.jsonl"),
                                 ("lies under", "which is a file")),
    "collect/out unwritable": (lambda t: collect_cmd(t, out=UNWRITABLE / "o.jsonl"),
                               ("no file can be written in /sys",)),
    "collect/no such backend": (lambda t: collect_cmd(t, teacher="nosuch:x"), ("teacher backend `nosuch`",)),
    "collect/openai without model": (lambda t: collect_cmd(t, teacher="openai:"), ("needs a model",)),
    "collect/invalid port": (lambda t: collect_cmd(t, teacher="openai:m@http://127.0.0.1:99999/v1"),
                             ("base URL", "is not a valid URL")),
    "collect/not http": (lambda t: collect_cmd(t, teacher="openai:m@ftp://example.org/v1"),
                         ("is not an http(s) URL",)),
    "collect/no api key": (lambda t: collect_cmd(t, teacher="openai:gpt-4o"), ("$OPENAI_API_KEY is not set",)),
    "collect/limit 0": (lambda t: collect_cmd(t, "--limit", "0"), ("--limit must be at least 1",)),
    "collect/concurrency 0": (lambda t: collect_cmd(t, "--concurrency", "0"), ("--concurrency must be at least 1",)),
    "collect/retries -1": (lambda t: collect_cmd(t, "--max-retries", "-1"), ("--max-retries must be 0 or more",)),
    "collect/timeout 0": (lambda t: collect_cmd(t, "--timeout", "0"), ("--timeout must be",)),
    "collect/temperature -1": (lambda t: collect_cmd(t, "--temperature", "-1"), ("--temperature must be",)),
    "collect/temperature nan": (lambda t: collect_cmd(t, "--temperature", "nan"), ("--temperature must be",)),
    "collect/max tokens 0": (lambda t: collect_cmd(t, "--max-tokens", "0"), ("--max-tokens must be at least 1",)),
    "collect/dataset without responses": (lambda t: collect_cmd(t), ("no teacher response for prompt 0",)),
    "collect/option the backend lacks": (lambda t: collect_cmd(t, "--max-retries", "1"),
                                         ("does not take an option",)),
    "collect/hf model missing": (lambda t: collect_cmd(t, teacher=f"hf:{t / 'no-model'}"), ("no model folder",)),
    "collect/limit not a number": (lambda t: collect_cmd(t, "--limit", "many"),
                                   ("argument --limit: invalid int value", "gadbench teacher collect --help")),
    "teacher/no subcommand": (lambda t: ["teacher"], ("the following arguments are required",)),
    # --- gadbench serve
    "serve/model missing": (lambda t: ["serve", "--model", str(t / "no-model"), "--port", "0"],
                            ("no model folder",)),
    "serve/port out of range": (lambda t: ["serve", "--model", "x", "--port", "70000"],
                                ("--port 70000 is not a TCP port",)),
    "serve/port in use": (lambda t: ["serve", "--model", "x", "--host", "127.0.0.1", "--port", str(busy_port())],
                          ("cannot listen on 127.0.0.1:", "Address already in use", "pick another --port")),
    "serve/unknown host": (lambda t: ["serve", "--model", "x", "--host", "no-such-host.invalid", "--port", "0"],
                           ("cannot listen on no-such-host.invalid",)),
    "serve/max batch 0": (lambda t: ["serve", "--model", "x", "--max-batch", "0"], ("--max-batch must be at least 1",)),
    "serve/max new tokens 0": (lambda t: ["serve", "--model", "x", "--max-new-tokens", "0"],
                               ("--max-new-tokens must be at least 1",)),
    "serve/port not a number": (lambda t: ["serve", "--model", "x", "--port", "http"], ("invalid int value",)),
    # --- gadbench bench
    "bench/steps 0": (lambda t: ["bench", "--steps", "0"], ("--steps must be at least 1",)),
    "bench/prompts -1": (lambda t: ["bench", "--prompts", "-1"], ("--prompts must be 0",)),
    "bench/group size 1": (lambda t: ["bench", "--group-size", "1"], ("--group-size must be 0",)),
    "bench/threads -1": (lambda t: ["bench", "--threads", "-1"], ("--threads must be 0",)),
    "bench/peak 0": (lambda t: ["bench", "--peak-tflops", "0"], ("--peak-tflops must be a number above 0",)),
    "bench/peak inf": (lambda t: ["bench", "--peak-tflops", "inf"], ("--peak-tflops must be",)),
    "bench/json is a folder": (lambda t: ["bench", "--json", str(t)], ("is a folder, not a file",)),
    "bench/json under a file": (lambda t: ["bench", "--json", str(a_file(t) / "r.json")], ("which is a file",)),
    "bench/cuda without a gpu": (lambda t: ["bench", "--device", "cuda"] if not _cuda() else
                                 pytest.skip("a CUDA GPU is visible"), ("--device cuda, but no CUDA GPU is visible",)),
    "bench/bad shape": (lambda t: ["bench", "--model-shape", "huge"], ("argument --model-shape: invalid choice",)),
    # --- gadbench doctor
    "doctor/judge url not a url": (lambda t: ["doctor", "--judge-url", "not a url"], ("is not an http(s) URL",)),
    "doctor/judge port out of range": (lambda t: ["doctor", "--judge-url", "http://127.0.0.1:99999/v1"],
                                       ("is not a valid URL",)),
    "doctor/empty key variable": (lambda t: ["doctor", "--api-key-env", ""], ("is not an environment variable",)),
    "doctor/unknown option": (lambda t: ["doctor", "--bogus"], ("unrecognized arguments", "gadbench --help")),
    # --- gadbench itself
    "gadbench/no command": (lambda t: [], ("the following arguments are required: COMMAND",)),
    "gadbench/unknown command": (lambda t: ["trian"], ("invalid choice: 'trian'",)),
}


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", list(CASES))
def test_every_bad_input_ends_in_one_line_exit_2_and_changes_nothing(case, tmp_path, capsys, caplog, monkeypatch):
    build, needles = CASES[case]
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # relative paths given on the command line are read from here
    argv = build(tmp_path)
    before = snapshot(tmp_path)
    capsys.readouterr()
    caplog.set_level(logging.INFO, logger="gadbench")
    try:
        try:
            code = main(argv)
        except SystemExit as e:  # argparse
            code = e.code
    finally:
        for sock in _HELD:
            sock.close()
        _HELD.clear()
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (code, err[-3000:])
    assert len(lines) == 1 and lines[0].startswith("gadbench: "), err[-3000:]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("gadbench")]
    assert not logged, logged  # the real command prints these on stderr too
    after = snapshot(tmp_path)
    changed = [k for k in before if after.get(k) != before[k]]
    added = [k for k in after if k not in before and not k.endswith(".lock")]
    assert not changed and not added, (changed, added)


def test_the_table_covers_every_subcommand_and_enough_kinds():
    from gadbench.commands import COMMANDS

    names = {m.__name__.rsplit(".", 1)[1] for m in COMMANDS}
    covered = {case.split("/")[0] for case in CASES}
    covered |= {"run"} if {"set", "run"} & covered else set()
    covered |= {"teacher"} if "collect" in covered else set()
    assert names <= covered, names - covered
    assert len(CASES) >= 67, len(CASES)
