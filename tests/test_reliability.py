"""Reliability: kill it, feed it garbage, break its APIs, and lose nothing.

Everything here is real: `python -m gadbench.cli` subprocesses killed with SIGKILL, a real tmpfs that fills
up (or RLIMIT_FSIZE), real HTTP servers on 127.0.0.1 (tests/loopback.py) that misbehave on purpose.

1. kill -9 during training, checkpoint writes, evaluation and the report, at seeded random moments, then
   `--resume`: every file parses after each kill, every checkpoint left equals the uninterrupted run's
   at that step, and every finished run ends bitwise where the uninterrupted run ends.
2. a judging job killed halfway: on resume no answered request is sent again and no cached answer is lost.
3. bad input through the CLI: exit 2 and one `gadbench: ...` line that names the problem and the fix.
4. API faults through the judge engine: cut chunked bodies, resets, HTML and error bodies with status 200,
   garbage usage, non-text content, 502/503 bursts, a refused connection, and 401 (no retry).
5. secrets: the judge's API key reaches the server and nothing else (no result, cache or log file).
6. one owner per run: a second process on a run stops at once and changes nothing, `gadbench eval` of a run
   being written stops in one line and the report builds, kill -9 frees the run for `--resume` at once, and
   `--skip-locked` shares a suite between processes.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import torch
import yaml
from ckpt import read_checkpoint
from loopback import LoopbackServer

from gadbench.io import read_json, read_jsonl
from gadbench.judge import GadPaper, JudgeItem, MtBenchSingle, judge
from gadbench.llm import ChatClient, FatalAPIError
from gadbench.report.regression import current_metrics
from gadbench.rundir import MANIFEST, RunLock, RunLockError
from gadbench.suite import runs_of as runs_of_suite

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures" / "reliability"
CRASH = FIX / "crash.yaml"
STEPS = 8  # crash.yaml: 4 warmup + 4 adversarial steps, a checkpoint after each
ENV = {**os.environ, "GADBENCH_EXPERIMENTS": str(ROOT / "experiments"), "HF_HUB_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def cli(suite: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "gadbench.cli", "-q", "run", "--suite", str(suite), "--out", str(out), *extra]


def run_cli(argv: list[str], env: dict | None = None, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=ROOT, env=env or ENV, capture_output=True, text=True, timeout=timeout, **kw)


def run_dir_of(out: Path, suite: str = "crash") -> Path | None:
    found = glob.glob(str(out / suite / "tiny--gad--*"))
    return Path(found[0]) if found else None


def no_row_times(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "step_time" and not k.startswith("time/")} for r in rows]


def same_models(a: dict, b: dict) -> bool:
    return all(_same(a[m], b[m]) for m in ("g", "d"))


def _same(a, b) -> bool:
    """Equal checkpoint parts (name -> tensor, bitwise), or equal plain values."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    return a == b


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def largest_file(folder: Path) -> int:
    return max(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# ================================================================================ 1. kill -9 and resume


@dataclass
class Reference:
    run: Path
    states: dict[int, dict]  # step -> {"g", "d"} of the uninterrupted run (it keeps every checkpoint)
    rows: list[dict]
    evals: dict[str, object]  # "step-K/metrics.json" and "step-K/<set>.jsonl" -> content
    budget: dict
    summary: dict


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Reference:
    """The uninterrupted run. It keeps all its checkpoints (keep_checkpoints only prunes; training is the same),
    so any checkpoint a killed run leaves can be compared with this run's checkpoint of that step."""
    out = tmp_path_factory.mktemp("reference")
    proc = run_cli(cli(CRASH, out, "--set", "train.keep_checkpoints=100"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = run_dir_of(out)
    states = {}
    for k in range(1, STEPS + 1):
        s = read_checkpoint(run / "checkpoints" / f"step-{k}")
        states[k] = {"g": s["g"], "d": s["d"]}
    evals = {}
    for p in (run / "eval").glob("step-*/*"):
        key = f"{p.parent.name}/{p.name}"
        evals[key] = read_json(p) if p.suffix == ".json" else list(read_jsonl(p))
    return Reference(run, states, no_row_times(list(read_jsonl(run / "metrics.jsonl"))), evals,
                     read_json(run / "budget.json"), read_json(run / "summary.json"))


def check_consistent(out: Path, ref: Reference) -> dict:
    """After a kill: every JSON/YAML file parses, JSONL readers get complete rows, and whatever the run has
    recorded (log rows, checkpoints, evaluations) equals the uninterrupted run's record of the same step."""
    for p in out.rglob("*"):
        if not p.is_file():
            continue
        if p.suffix == ".json":
            json.loads(p.read_text(encoding="utf-8"))
        elif p.suffix in (".yaml", ".yml"):
            assert isinstance(yaml.safe_load(p.read_text(encoding="utf-8")), dict), p
        elif p.suffix == ".jsonl":
            assert all(isinstance(r, dict) and r for r in read_jsonl(p)), p
    run = run_dir_of(out)
    seen = {"checkpoints": [], "rows": 0}
    if run is None:
        return seen
    rows = no_row_times(list(read_jsonl(run / "metrics.jsonl")))
    assert [r["step"] for r in rows] == list(range(1, len(rows) + 1)), "log rows missing or repeated"
    assert rows == ref.rows[: len(rows)], "a logged step differs from the uninterrupted run"
    seen["rows"] = len(rows)
    for d in sorted((run / "checkpoints").glob("step-*")):
        if (d / "complete.json").exists():  # a checkpoint (a folder being pruned loses its marker first)
            k = int(d.name.split("-")[1])
            state = read_checkpoint(d)
            assert state["step"] == k and same_models(state, ref.states[k]), f"checkpoint {d.name} differs"
            seen["checkpoints"].append(k)
    for p in (run / "eval").glob("step-*/*"):
        got = read_json(p) if p.suffix == ".json" else list(read_jsonl(p))
        assert got == ref.evals[f"{p.parent.name}/{p.name}"], f"eval/{p.parent.name}/{p.name} differs"
    return seen


class Proc:
    """A CLI run whose output lines are followed as they come (to kill it at a chosen training step)."""

    STEP = re.compile(r": step (\d+)/\d+")

    def __init__(self, argv: list[str]):
        self.p = subprocess.Popen(argv, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
        self.lines: list[str] = []
        self.steps: set[int] = set()
        self.cv = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.p.stdout:
            with self.cv:
                self.lines.append(line)
                if m := self.STEP.search(line):
                    self.steps.add(int(m.group(1)))
                self.cv.notify_all()
        with self.cv:
            self.cv.notify_all()

    def wait_until(self, cond, timeout: float = 300.0, poll: float | None = None) -> None:
        """Until cond() holds or the process ends; `poll` re-checks that often (conditions on files)."""
        deadline = time.monotonic() + timeout
        with self.cv:
            while not cond() and self.p.poll() is None and time.monotonic() < deadline:
                self.cv.wait(poll or 0.5)

    def kill(self) -> bool:
        """SIGKILL if still running; True when it was killed (not already finished)."""
        alive = self.p.poll() is None
        if alive:
            os.kill(self.p.pid, signal.SIGKILL)
        self.p.wait()
        self.reader.join(10)
        return alive and self.p.returncode == -signal.SIGKILL


def kill_one(out: Path, resume: bool, kind: str, rng: random.Random) -> dict:
    """Start a run (fresh or --resume), kill it at a seeded random moment of the `kind` phase."""
    run = run_dir_of(out)
    done = [int(p.parent.name.split("-")[1]) for p in run.glob("checkpoints/step-*/complete.json")] if run else []
    first_open = max(done, default=0) + 1
    if kind in ("step", "checkpoint") and first_open > STEPS:
        kind = "report"  # nothing left to train
    proc = Proc(cli(CRASH, out, *(["--resume"] if resume else [])))
    info = {"kind": kind, "resume": resume, "mid_checkpoint_write": False}
    if kind == "startup":  # imports, data and model loading, the step-0 evaluation: before step 1 ends
        delay = rng.uniform(0.3, 6.0)  # at most; a fast machine reaches step 1 sooner, and the kill follows it
        proc.wait_until(lambda: bool(proc.steps), timeout=delay)
    elif kind == "step":  # anywhere in a training step, its evaluation or its checkpoint
        k = rng.randint(first_open, STEPS)
        proc.wait_until(lambda: k in proc.steps)
        time.sleep(rng.uniform(0.0, 0.5))
        info["after_step"] = k
    elif kind == "checkpoint":  # while the checkpoint of step k is being written to its temporary folder
        k = rng.randint(first_open, STEPS)
        pattern = str(out / "crash" / "tiny--gad--*" / "checkpoints" / f".step-{k}.*")
        written = str(out / "crash" / "tiny--gad--*" / "checkpoints" / f"step-{k}")
        proc.wait_until(lambda: bool(glob.glob(pattern) or glob.glob(written)), poll=0.002)
        time.sleep(rng.uniform(0.0, 0.01))
        info["mid_checkpoint_write"] = bool(glob.glob(pattern))
        info["step"] = k
    else:  # "report": after the run's summary, while the suite record and report are written
        pattern = str(out / "crash" / "tiny--gad--*" / "summary.json")
        proc.wait_until(lambda: bool(glob.glob(pattern)), poll=0.01)
        time.sleep(rng.uniform(0.0, 2.5))
    info["killed"] = proc.kill()
    if not info["killed"]:
        assert proc.p.returncode == 0, "".join(proc.lines[-30:])
    return info


def chain(out: Path, kinds: list[str], seed: int, ref: Reference) -> list[dict]:
    """Fresh start, killed; then `--resume` runs killed again (crashes during recovery); then a `--resume`
    that finishes. Checked after every kill and at the end."""
    rng = random.Random(seed)
    log = []
    for i, kind in enumerate(kinds):
        info = kill_one(out, resume=i > 0, kind=kind, rng=rng)
        info["seen"] = check_consistent(out, ref)
        log.append(info)
    proc = run_cli(cli(CRASH, out, "--resume"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    check_consistent(out, ref)
    run = run_dir_of(out)
    final = read_checkpoint(run / "checkpoints" / f"step-{STEPS}")
    assert same_models(final, ref.states[STEPS])
    assert no_row_times(list(read_jsonl(run / "metrics.jsonl"))) == ref.rows
    got, want = read_json(run / "budget.json")["totals"], dict(ref.budget["totals"])
    got.pop("wall_s"), want.pop("wall_s")
    assert got == want
    summary = read_json(run / "summary.json")
    assert (summary["eval"], summary["selection"]) == (ref.summary["eval"], ref.summary["selection"])
    assert not list((run / "checkpoints").glob(".step-*")), "a temporary checkpoint folder was left behind"
    return log


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_ends_where_the_uninterrupted_run_ends(reference, tmp_path):
    kinds = ["startup", "step", "checkpoint", "report"] * 3
    rng = random.Random(20251113)
    rng.shuffle(kinds)
    order = {"startup": 0, "step": 1, "checkpoint": 1, "report": 2}  # later phases last within a chain
    chains = [sorted(kinds[i:i + 3], key=order.get) for i in range(0, len(kinds), 3)]
    t0 = time.monotonic()
    with ThreadPoolExecutor(2) as pool:  # two chains at a time: kills follow events, not the wall clock
        logs = list(pool.map(lambda a: chain(tmp_path / f"chain{a[0]}", a[1], 1000 + a[0], reference),
                             enumerate(chains)))
    kills = [k for log in logs for k in log if k["killed"]]
    print(f"\n{len(kills)} kills in {len(chains)} chains, {time.monotonic() - t0:.0f} s:")
    for n, log in enumerate(logs):
        for k in log:
            print(f"  chain {n}: {k}")
    assert len(kills) >= 10
    assert {k["kind"] for k in kills} >= {"startup", "step", "checkpoint", "report"}
    assert any(k["mid_checkpoint_write"] for k in kills), "no kill landed inside a checkpoint write"
    assert any(k["resume"] for k in kills), "no resumed run was killed"


# ======================================================================== 2. a judging job killed midway


def _tag(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def judge_reply(body: dict) -> str:
    """A deterministic judge whose every reply names the request it answers (#tag of the request text)."""
    text = body["messages"][-1]["content"]
    if re.fullmatch(r"question \d+", text):
        return f"REF reference answer #{_tag(text)}"
    i = int(re.search(r"student reply (\d+)", text).group(1))
    return f"8 {i % 10 + 1}\nThe first answer is better. #{_tag(text)}"


def _cached(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT key, text FROM responses").fetchall())


def test_judging_killed_halfway_resumes_without_resending_or_losing_answers(tmp_path):
    n = 24  # 24 references, then 24 judgments
    cache, out = tmp_path / "judge.sqlite", tmp_path / "out.json"
    with LoopbackServer(latency=0.05, reply=judge_reply) as server:
        argv = [sys.executable, str(FIX / "judge_driver.py"), server.url, str(cache), str(out), str(n)]
        env = {**ENV, "PYTHONPATH": str(ROOT)}
        before: dict[str, str] = {}
        sent = 0

        def nothing_lost_or_resent() -> None:
            resent = [_tag(b["messages"][-1]["content"]) for b in server.received[sent:]]
            assert not set(resent) & {t.rsplit("#", 1)[1] for t in before.values()}, "a cached answer was asked again"
            assert len(resent) == len(set(resent))
            after = _cached(cache)
            assert all(after.get(k) == v for k, v in before.items()), "a cached answer was lost or changed"

        # killed once among the references and once among the judgments (the second run is a resume)
        for threshold in (n // 2, n + n // 2):
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 120
            while sum(server.answered.values()) < threshold and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
            assert not out.exists()
            nothing_lost_or_resent()
            before, sent = _cached(cache), len(server.received)
            assert threshold - 6 <= len(before) <= threshold + 3  # concurrency 3: few were in flight

        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        nothing_lost_or_resent()
        assert len(server.received) - sent == 2 * n - len(before) and len(_cached(cache)) == 2 * n
        usage = read_json(out)["usage"]
        assert (usage["cached"], usage["requests"]) == (len(before), 2 * n - len(before))

    # the judgments equal an uninterrupted run's
    with LoopbackServer(reply=judge_reply) as clean:
        items = [JudgeItem(str(i), f"question {i}", f"student reply {i}") for i in range(n)]
        c = ChatClient("judge-model", base_url=clean.url, cache_path=tmp_path / "clean.sqlite", progress=False)
        want = json.loads(json.dumps([j.to_json() for j in judge(items, GadPaper(), c)]))  # tuples -> lists
    got = read_json(out)["judgments"]
    assert got == want and all(j["valid"] for j in got)


# ================================================================================ 3. bad input, via the CLI


def one_line_error(proc: subprocess.CompletedProcess, *needles: str, whole: bool = False) -> str:
    """Exit 2, no traceback, and the last stderr line (the only one from gadbench when `whole`) holds the
    problem and the fix."""
    err = proc.stderr
    assert proc.returncode == 2, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip()]
    ours = [ln for ln in lines if ln.startswith("gadbench: ")]
    assert len(ours) == 1 and lines[-1] == ours[0], err[-3000:]
    if whole:
        assert lines == ours, err
    for needle in needles:
        assert needle in ours[0], ours[0]
    return ours[0]


@pytest.fixture(scope="module")
def no_template_model(tmp_path_factory) -> Path:
    """A copy of the world's tiny student whose tokenizer has no chat template."""
    from gadbench.worlds.student import world_student_dir

    src = world_student_dir("tiny")
    src = src if src.is_absolute() else ROOT / src
    if not (src / "config.json").exists():  # built relative to another working directory
        src = ROOT / "results" / "cache" / src.name
    dst = tmp_path_factory.mktemp("no-template") / "model"
    shutil.copytree(src, dst)
    (dst / "chat_template.jinja").unlink(missing_ok=True)
    cfg = json.loads((dst / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (dst / "tokenizer_config.json").write_text(json.dumps(cfg))
    return dst


def test_bad_input_stops_with_one_line_naming_problem_and_fix(tmp_path, no_template_model):
    data = FIX / "data.yaml"
    cases = {
        "malformed": (cli(FIX / "malformed.yaml", tmp_path / "a"), ("malformed YAML at line 5", "fix the syntax")),
        "unknown key": (cli(FIX / "unknown_key.yaml", tmp_path / "b"),
                        ("unknown key `train.stepz`", "did you mean `train.steps`?")),
        "wrong type": (cli(FIX / "wrong_type.yaml", tmp_path / "c"),
                       ("`train.batch_size` = 'sixteen'", "should be of type int")),
        "missing file": (cli(data, tmp_path / "d", "--set", f"data.train.path={tmp_path / 'absent.jsonl'}"),
                         ("absent.jsonl does not exist", "check the path")),
        "empty file": (cli(data, tmp_path / "e", "--set", f"data.train.path={FIX / 'empty.jsonl'}"),
                       ("has no usable rows", "empty.jsonl", "add rows")),
        "no chat template": (cli(CRASH, tmp_path / "f", "--set", f"students.tiny.path={no_template_model}"),
                             ("has no chat template", "set `template: paper` or `template: plain`")),
        "not offline": (cli(CRASH, tmp_path / "g", "--set", "students.tiny.path=gadbench-test/no-such-model-7f3"),
                        ("`gadbench-test/no-such-model-7f3` is not available offline", "hf download")),
    }
    with ThreadPoolExecutor(3) as pool:
        procs = dict(zip(cases, pool.map(lambda c: run_cli(c[0]), cases.values()), strict=True))
    for name, (_, needles) in cases.items():
        one_line_error(procs[name], *needles, whole=name in ("malformed", "unknown key", "wrong type"))
    assert not any((tmp_path / d).exists() for d in "abc")  # config errors stop before anything is written


def test_nan_loss_stops_with_one_line_and_keeps_a_loadable_checkpoint(tmp_path):
    # lr 1e30 for G in warmup: step 2 (the first G update) moves the weights by ~1e30, step 3 overflows
    proc = run_cli(cli(CRASH, tmp_path, "--set", "train.lr_warmup=1e30"))
    line = one_line_error(proc, "sft_loss became nan at step", "Lower the learning rate")
    bad = int(re.search(r"became nan at step (\d+)", line).group(1))
    kept = int(re.search(r"\(step (\d+)\) is kept", line).group(1))
    assert kept == bad - 1 >= 1
    run = run_dir_of(tmp_path)
    assert max(int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("step-*")) == kept
    state = read_checkpoint(run / "checkpoints" / f"step-{kept}")
    assert state["step"] == kept
    assert all(torch.isfinite(t).all() for m in ("g", "d") for t in state[m].values())
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == list(range(1, bad))  # nan step not logged
    assert all(math.isfinite(v) for r in read_jsonl(run / "metrics.jsonl") for v in r.values()
               if isinstance(v, float))


def test_long_prompts_are_kept_and_left_truncated_to_max_prompt_tokens(tmp_path):
    """Documented behaviour (docs/data.md): a suite's data config has no length filter, so a prompt over
    train.max_prompt_tokens is kept whole in the data and in the results, and the model sees its last
    max_prompt_tokens tokens (the end of the prompt and the generation prompt: left truncation)."""
    from gadbench.config import run_spec_from_dict
    from gadbench.methods.context import Context
    from gadbench.models import load_causal_lm, prompt_ids

    path = FIX / "long_prompts.jsonl"
    long_prompt = [r["prompt"] for r in read_jsonl(path) if len(r["prompt"]) > 1000][0]
    proc = run_cli(cli(FIX / "data.yaml", tmp_path, "--set", f"data.train.path={path}",
                       "--set", f"data.eval.long={{source: jsonl, path: {path}}}",
                       "--set", "data.allow_overlap=true"))  # the training file doubles as the eval set
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = Path(glob.glob(str(tmp_path / "data" / "tiny--seqkd--*"))[0])
    rows = list(read_jsonl(run / "eval" / "step-2" / "long.jsonl"))
    assert long_prompt in [r["prompt"] for r in rows] and len(rows) == 6

    spec = run_spec_from_dict(yaml.safe_load((run / "config.yaml").read_text()))
    g = load_causal_lm(spec.student)
    ctx = Context(spec=spec, g=g, d=None, engine=None, device=torch.device("cpu"), g_params=0)
    full = prompt_ids(g.tokenizer, long_prompt, g.template)
    limit = spec.train.max_prompt_tokens
    assert len(full) > 10 * limit
    assert ctx.prompt_ids(long_prompt) == full[-limit:]


def _mount_tmpfs(where: Path, size: int) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint_then_resume_finishes(reference, tmp_path):
    """A real filesystem that fills up: a tmpfs that holds one checkpoint and not two."""
    one = folder_size(reference.run / "checkpoints" / "step-1")
    out = tmp_path / "small-disk"
    if not _mount_tmpfs(out, one + 1024 * 1024):
        pytest.skip("mounting a tmpfs is not permitted here (needs root / CAP_SYS_ADMIN); "
                    "test_file_too_large_while_checkpointing covers the error path with RLIMIT_FSIZE")
    try:
        proc = run_cli(cli(CRASH, out))
        line = one_line_error(proc, "could not write the checkpoint of step 2 (No space left on device)",
                              "the previous checkpoint (step 1) is intact", "Free disk space", "--resume")
        run = run_dir_of(out)
        assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-1"], line  # no partial folder left
        state = read_checkpoint(run / "checkpoints" / "step-1")
        assert state["step"] == 1 and same_models(state, reference.states[1])
        assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == [1, 2]

        subprocess.run(["mount", "-o", "remount,size=64m", str(out)], check=True, timeout=30)
        proc = run_cli(cli(CRASH, out, "--resume"))  # as the message says: free space, rerun with --resume
        assert proc.returncode == 0, proc.stderr[-3000:]
        final = read_checkpoint(run / "checkpoints" / f"step-{STEPS}")
        assert same_models(final, reference.states[STEPS])
        assert no_row_times(list(read_jsonl(run / "metrics.jsonl"))) == reference.rows
    finally:
        subprocess.run(["umount", str(out)], timeout=30)


def test_a_checkpoint_counts_only_under_its_name_with_its_marker_and_pruning_clears_what_crashes_left(tmp_path):
    """A folder is a checkpoint only under its real name with complete.json; a write cut short (a temporary
    folder) and a deletion cut short (a real name whose marker went first) are not, and the next commit's
    pruning removes both while keeping the newest and the stage ends."""
    from gadbench.rundir import RunDir

    run = RunDir(tmp_path / "run")
    for step in (1, 2, 3):  # step 2 ends a stage
        folder = run.new_checkpoint_dir(step)
        (folder / "shard").write_bytes(b"x")
        run.commit_checkpoint(folder, step, {"step": step}, keep_stage_end=step == 2, keep_newest=10)
    assert read_json(run.checkpoint(3) / "complete.json") == {"step": 3}
    (run.checkpoint(3) / "complete.json").unlink()  # pruning deletes the marker first, then was killed
    run.new_checkpoint_dir(4)  # a write killed before its commit
    assert run.checkpoint_steps() == [1, 2] and run.latest_checkpoint() == 2
    folder = run.new_checkpoint_dir(5)
    run.commit_checkpoint(folder, 5, {"step": 5}, keep_stage_end=False, keep_newest=1)
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["step-2", "step-5"]
    assert run.checkpoint_steps() == [2, 5] and (run.checkpoint(2) / "KEEP").exists()


def test_file_too_large_while_checkpointing_keeps_the_previous_checkpoint(reference, tmp_path):
    """RLIMIT_FSIZE in the child: writes past the limit fail with EFBIG (SIGXFSZ ignored). Warmup checkpoints
    fit under the limit; the first adversarial one (step 5, it also holds the KL reference) does not."""
    warm, adv = (largest_file(reference.run / "checkpoints" / f"step-{k}") for k in (4, 5))
    assert adv > warm + 64 * 1024
    limit = (warm + adv) // 2

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = run_cli(cli(CRASH, tmp_path), preexec_fn=limit_file_size)
    one_line_error(proc, "could not write the checkpoint of step 5 (File too large)",
                   "the previous checkpoint (step 4) is intact")
    run = run_dir_of(tmp_path)
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["step-3", "step-4"], names  # keep_checkpoints 2; no partial folder left
    state = read_checkpoint(run / "checkpoints" / "step-4")
    assert same_models(state, reference.states[4])


# ================================================================================ 4. API faults


def rating_reply(body: dict) -> str:
    text = body["messages"][-1]["content"]
    return f"Explanation.\nRating: [[{len(text) % 9 + 1}]]"


ITEMS = [JudgeItem(str(i), f"Question {i}?", f"answer {i} " * (i + 1), f"teacher {i}") for i in range(6)]
NEW_FAULTS = ["chunked-cut", "reset", "html", "error200", "badusage", "nontext", "status:502", "status:503"]


def judge_client(server: LoopbackServer, tmp_path: Path, **kw) -> ChatClient:
    kw = {"concurrency": 3, "max_retries": 3, "backoff_base": 0.01, "backoff_max": 0.02, "timeout": 5.0,
          "progress": False, "cache_path": tmp_path / "judge.sqlite", **kw}
    return ChatClient("judge-model", base_url=server.url, **kw)


@pytest.fixture(scope="module")
def clean_judgments(tmp_path_factory) -> list[dict]:
    with LoopbackServer(reply=rating_reply) as srv:
        run = judge(ITEMS, MtBenchSingle(), judge_client(srv, tmp_path_factory.mktemp("clean")))
    assert all(j.valid for j in run)
    return [j.to_json() for j in run]


@pytest.mark.parametrize("fault", NEW_FAULTS)
def test_each_broken_response_is_retried_through_the_judge_and_never_cached(fault, tmp_path, clean_judgments):
    with LoopbackServer(script=[fault, fault], reply=rating_reply) as srv:
        client = judge_client(srv, tmp_path, concurrency=1)
        run = judge(ITEMS[:1], MtBenchSingle(), client)
        assert [j.to_json() for j in run] == clean_judgments[:1]
        assert (run.usage["requests"], run.usage["retries"], run.usage["failures"]) == (3, 2, 0)
        assert list(_cached(tmp_path / "judge.sqlite").values()) == [run[0].raw[0]]  # only the good answer


def test_a_burst_of_mixed_faults_across_a_concurrent_batch_loses_no_judgment(tmp_path, clean_judgments):
    burst = NEW_FAULTS + ["status:502", "status:503"] * 3
    with LoopbackServer(script=burst, reply=rating_reply, latency=0.01) as srv:
        client = judge_client(srv, tmp_path, max_retries=len(burst))
        run = judge(ITEMS, MtBenchSingle(), client)
        assert [j.to_json() for j in run] == clean_judgments
        assert run.usage["retries"] == len(burst) and run.usage["failures"] == 0
        assert len(srv.received) == len(ITEMS) + len(burst)
        cached = _cached(tmp_path / "judge.sqlite")
        assert sorted(cached.values()) == sorted(j.raw[0] for j in run)
        again = judge(ITEMS, MtBenchSingle(), judge_client(srv, tmp_path))
        assert again.usage["requests"] == 0 and [j.to_json() for j in again] == clean_judgments


def test_refused_connection_gives_invalid_judgments_not_a_crash(tmp_path):
    with LoopbackServer() as srv:
        url = srv.url  # a port that was just open and is now closed
    client = ChatClient("judge-model", base_url=url, max_retries=2, backoff_base=0.01, progress=False,
                        cache_path=tmp_path / "judge.sqlite")
    run = judge(ITEMS[:2], MtBenchSingle(), client)
    assert [j.valid for j in run] == [False, False]
    assert all("api error" in j.details["error"] and "connection failed" in j.details["error"] for j in run)
    assert run.usage["requests"] == 6 and run.usage["failures"] == 2 and _cached(tmp_path / "judge.sqlite") == {}


SECRET = "sk-gadbench-reliability-5e1f0c9ab27d4e83"


def test_401_through_the_judge_engine_is_one_clear_sentence_and_no_retry(tmp_path, monkeypatch):
    monkeypatch.setenv("GADBENCH_TEST_KEY", SECRET)
    with LoopbackServer(default="status:401", reply=rating_reply) as srv:
        client = judge_client(srv, tmp_path, api_key_env="GADBENCH_TEST_KEY", concurrency=1, max_retries=6)
        with pytest.raises(FatalAPIError) as err:
            judge(ITEMS, GadPaper(), client)
        assert len(srv.received) == 1 and client.usage.retries == 0
    msg = str(err.value)
    assert "rejected the API key in $GADBENCH_TEST_KEY (401)" in msg and "set a valid key" in msg
    assert "\n" not in msg and SECRET not in msg
    assert _cached(tmp_path / "judge.sqlite") == {}


# ================================================================================ 5. secrets


def scan_for(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for p in root.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            hits += [f"{p}: {n!r}" for n in needles if n in data]
    return hits


def test_the_judge_api_key_reaches_the_server_and_no_file(tmp_path):
    suite = FIX / "llmjudge.yaml"
    env = {**ENV, "GADBENCH_TEST_KEY": SECRET}
    needles = [SECRET.encode(), SECRET[-12:].encode()]  # whole, and the tail a masked echo would show

    with LoopbackServer(default="status:401") as srv:  # a rejected key: stop in one line, key not shown
        proc = run_cli(cli(suite, tmp_path / "rejected", "--set", f"judge.base_url={srv.url}"), env=env)
        assert srv.headers and srv.headers[0]["authorization"] == f"Bearer {SECRET}"
        assert len(srv.received) <= 2  # concurrency 2, no retry of a 401
    one_line_error(proc, "rejected the API key in $GADBENCH_TEST_KEY (401)")
    assert SECRET not in proc.stderr + proc.stdout

    out = tmp_path / "accepted"
    with LoopbackServer(reply=rating_reply) as srv:
        proc = run_cli(cli(suite, out, "--set", f"judge.base_url={srv.url}"), env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert len(srv.received) > 0
        assert all(h["authorization"] == f"Bearer {SECRET}" for h in srv.headers)  # the key was used
    run = run_dir_of(out, "llmjudge")
    assert "mtbench-single/score" in read_json(run / "eval" / "step-2" / "metrics.json")["world-id"]
    assert _cached(out / "cache" / "judge.sqlite")  # the judge cache is under the results root
    assert SECRET not in proc.stderr + proc.stdout
    hits = scan_for(tmp_path, needles)
    assert not hits, hits


# ================================================================================ 6. one owner per run


class Paused:
    """A CLI run stopped (SIGSTOP) once it has logged training step `step`: alive, owning its run, its files
    half written. Leaving the block lets it go on (SIGCONT), or kills it when the block failed."""

    def __init__(self, argv: list[str], step: int):
        self.proc = Proc(argv)
        self.proc.wait_until(lambda: step in self.proc.steps)
        assert self.proc.p.poll() is None, "".join(self.proc.lines[-30:])
        os.kill(self.proc.p.pid, signal.SIGSTOP)

    @property
    def pid(self) -> int:
        return self.proc.p.pid

    def __enter__(self) -> Paused:
        return self

    def __exit__(self, failed, *exc) -> None:
        os.kill(self.pid, signal.SIGCONT)
        if failed:
            self.proc.kill()

    def finish(self) -> str:
        """Wait for the run to end; its output."""
        assert self.proc.p.wait(timeout=600) == 0, "".join(self.proc.lines[-30:])
        self.proc.reader.join(10)
        return "".join(self.proc.lines)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


CLOCK = ("wall_s", "step_time")  # wall-clock fields (and every `time/<phase>`): they differ between any two runs


def without_clock(obj):
    if isinstance(obj, dict):
        return {k: without_clock(v) for k, v in obj.items() if k not in CLOCK and not k.startswith("time/")}
    if isinstance(obj, list):
        return [without_clock(v) for v in obj]
    return obj


def assert_same_run(got: Path, want: Path) -> None:
    """Same files; each byte-identical, except for wall-clock fields (in JSON, JSONL and checkpoints) and the
    checkpoints' manifests (the sha256 of a checkpoint covers its wall-clock fields: the same files are listed)."""
    files = sorted(str(p.relative_to(want)) for p in want.rglob("*") if p.is_file())
    assert sorted(str(p.relative_to(got)) for p in got.rglob("*") if p.is_file()) == files
    for name in files:
        a, b = got / name, want / name
        if a.name == MANIFEST:
            assert read_json(a).keys() == read_json(b).keys(), name
        elif a.parent.parent.name == "checkpoints" and a.suffix in (".distcp", ""):  # the shards and .metadata:
            continue  # compared as tensors with complete.json below
        elif a.parent.parent.name == "checkpoints" and a.name == "complete.json":
            sa, sb = (read_checkpoint(x.parent) for x in (a, b))
            assert sa.keys() == sb.keys() and all(_same(sa[k], sb[k]) for k in sa), name
            assert without_clock(read_json(a)) == without_clock(read_json(b)), name
        elif a.name in ("metrics.jsonl", "budget.json", "summary.json"):
            load = (lambda p: list(read_jsonl(p))) if a.suffix == ".jsonl" else read_json
            assert without_clock(load(a)) == without_clock(load(b)), name
        else:
            assert a.read_bytes() == b.read_bytes(), name


def test_a_second_process_on_a_run_stops_at_once_and_the_first_ends_as_if_alone(reference, tmp_path):
    out, keep = tmp_path / "shared", ("--set", "train.keep_checkpoints=100")  # the reference run's settings
    host = socket.gethostname()
    with Paused(cli(CRASH, out, *keep), step=3) as first:
        run = run_dir_of(out)
        before = snapshot(out)
        for flags in ((), ("--resume",)):
            second = run_cli(cli(CRASH, out, *keep, *flags), timeout=120)
            one_line_error(second, f"run {run.name} is in use by PID {first.pid} on host {host} (since ",
                           "wait for it to end and rerun with --resume, or use another --out")
            assert snapshot(out) == before, "the second process wrote into the first's folder"
    first.finish()
    assert_same_run(run, reference.run)


def test_report_and_eval_of_a_run_being_written_do_not_crash(tmp_path):
    with Paused(cli(CRASH, tmp_path), step=5) as first:
        run = run_dir_of(tmp_path)
        before = snapshot(run)
        report = run_cli([sys.executable, "-m", "gadbench.cli", "report", str(tmp_path / "crash")], timeout=120)
        assert report.returncode == 0 and "Traceback" not in report.stderr, report.stderr[-3000:]
        assert (tmp_path / "crash" / "REPORT.md").exists()  # (today it notes the run as unfinished)
        ev = run_cli([sys.executable, "-m", "gadbench.cli", "eval", str(run)], timeout=120)
        one_line_error(ev, f"run {run.name} is in use by PID {first.pid}", "the run is incomplete",
                       "run `gadbench eval` again when it has ended")
        assert snapshot(run) == before
    first.finish()
    ev = run_cli([sys.executable, "-m", "gadbench.cli", "eval", str(run), "--checkpoint", "8"], timeout=300)
    assert ev.returncode == 0 and "checkpoint: step 8" in ev.stdout, ev.stderr[-3000:]


def test_kill_9_frees_the_run_so_resume_starts_at_once(tmp_path):
    proc = Proc(cli(CRASH, tmp_path))
    proc.wait_until(lambda: 3 in proc.steps)
    assert proc.kill()
    done = run_cli(cli(CRASH, tmp_path, "--resume"), timeout=300)
    assert done.returncode == 0 and "in use" not in done.stderr, done.stderr[-3000:]
    assert [r["step"] for r in read_jsonl(run_dir_of(tmp_path) / "metrics.jsonl")] == list(range(1, STEPS + 1))


def test_a_lock_ends_with_its_owner_not_with_the_children_it_forked(tmp_path):
    """A forked child (a rollout engine's worker, say) shares its parent's lock descriptor; the child closes its
    copy, so after kill -9 of the owner the run is free although the child lives on."""
    run = tmp_path / "suite" / "run"
    holder = subprocess.Popen([sys.executable, str(FIX / "lock_holder.py"), str(run)], cwd=ROOT, env=ENV,
                              stdout=subprocess.PIPE, text=True)
    child = None
    try:
        child = int(holder.stdout.readline())
        with pytest.raises(RunLockError, match=f"run run is in use by PID {holder.pid} on host"):
            RunLock(run, "try later").acquire()
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        os.kill(child, 0)  # the child is still alive
        with RunLock(run, "try later"):
            pass
    finally:
        holder.kill()
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


def test_skip_locked_lets_processes_share_a_suite(reference, tmp_path):
    """Two processes, each `--resume --skip-locked` (array tasks): each trains the runs the other is not on. The
    suite has a regression baseline: the process that ends first, with a run still being trained by the other,
    does not compare; the one that completes the suite does."""
    baseline = tmp_path / "baseline.json"  # the gad run's metrics (seqkd's come out as "new", which passes)
    baseline.write_text(json.dumps({k: {"value": v, "tolerance": 1e-6} for k, v in
                                    current_metrics(reference.run.parent).items()}))
    two = ("--set", "methods.seqkd={kind: seqkd}", "--set", f"baseline={baseline}")  # gad first, then seqkd
    out = tmp_path / "out"
    with Paused(cli(CRASH, out, *two, "--resume", "--skip-locked"), step=2) as first:
        gad = run_dir_of(out)
        alone = run_cli(cli(CRASH, out, *two), timeout=120)  # without --skip-locked: stops, writes nothing
        one_line_error(alone, f"run {gad.name} is in use by PID {first.pid}", "--skip-locked runs the suite's other runs")
        assert not glob.glob(str(out / "crash" / "tiny--seqkd--*"))
        shared = run_cli(cli(CRASH, out, *two, "--resume", "--skip-locked"), timeout=300)
        assert shared.returncode == 0, shared.stderr[-3000:]
        assert f"run {gad.name} is in use by PID {first.pid}" in shared.stderr and "skipped (--skip-locked)" in shared.stderr
        assert f"1 run(s) skipped, in use by other processes: {gad.name}; when they end, rerun with --resume" in shared.stderr
        assert f"regression check not run: 1 run(s) of the suite are not complete ({gad.name}, ...)" in shared.stdout
        assert "MOVED" not in shared.stdout and "missing" not in shared.stdout
        (seqkd,) = glob.glob(str(out / "crash" / "tiny--seqkd--*"))
        assert (Path(seqkd) / "summary.json").exists() and not (gad / "summary.json").exists()
    log = first.finish()
    assert f"{Path(seqkd).name}: already complete, skipped" in log
    assert f"tracked metrics within tolerance of {baseline}" in log
    checks = read_json(out / "crash" / "suite.json")["budget_check"]
    assert sorted(checks) == sorted([gad.name, Path(seqkd).name])
    for run in (gad, Path(seqkd)):
        assert read_json(run / "summary.json")["budget_check"] == checks[run.name]


def test_a_run_logs_and_records_what_each_data_load_kept_and_skipped(tmp_path):
    """bad_rows.jsonl: 10 lines, of which one is Latin-1 (not UTF-8), one torn JSON, one without a prompt and
    one with an empty prompt; the run keeps and trains on the other 6 and says so in its log and summary."""
    path = FIX / "bad_rows.jsonl"
    proc = run_cli(cli(FIX / "data.yaml", tmp_path, "--set", f"data.train.path={path}"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = glob.glob(str(tmp_path / "data" / "tiny--seqkd--*"))
    line = (f"{Path(run).name}: data jsonl ({path}): kept 6 of 10 rows; skipped: empty_prompt=1, invalid_json=1, "
            "missing_fields=1, not_utf8=1")
    assert line in proc.stderr
    assert read_json(Path(run) / "summary.json")["data"] == [
        {"source": "jsonl", "path": str(path), "total": 10, "kept": 6, "first_turn_only": 0,
         "skipped": {"empty_prompt": 1, "invalid_json": 1, "missing_fields": 1, "not_utf8": 1}}]
    strict = run_cli(cli(FIX / "data.yaml", tmp_path / "strict", "--set", f"data.train.path={path}",
                         "--set", "data.train.bad_rows=error"))
    one_line_error(strict, f"{path}: row 3: the line is not UTF-8 text (byte 0xe9 at column 16)",
                   "save the file as UTF-8")


# ================================================================ 7. named kill points (GADBENCH_KILL_AT)

KEEP_ALL = ("--set", "train.keep_checkpoints=100")  # the reference run's settings: every checkpoint kept
# In a run's order: a step's log row, a checkpoint's state written without its manifest, a checkpoint renamed
# into place (before pruning), the step-8 evaluation after its validation set and after its metrics.json, and
# either side of the summary. Each kill is followed by a --resume that the next point kills.
KILL_POINTS = ["after-metrics-row:2", "mid-checkpoint:3", "after-checkpoint-rename:5", "mid-eval:8", "after-eval:8",
               "before-summary", "after-summary"]


def killed_at(point: str, out: Path, resume: bool) -> subprocess.CompletedProcess:
    proc = run_cli(cli(CRASH, out, *KEEP_ALL, *(["--resume"] if resume else [])),
                   env={**ENV, "GADBENCH_KILL_AT": point})
    assert proc.returncode == -signal.SIGKILL, (point, proc.returncode, proc.stderr[-3000:])
    return proc


@pytest.mark.slow
def test_kill_points_and_a_damaged_checkpoint_then_resume_end_bitwise_where_the_uninterrupted_run_ends(
        reference, tmp_path):
    """Killed at every named point in turn (each resume killed at the next point); after the kill at
    after-checkpoint-rename:5, checkpoint step-5 is damaged (a byte flipped), so the next resume must pass it
    over for step-4 with a warning naming it. The run that finally completes equals the uninterrupted one:
    every file, byte for byte (wall-clock fields and checkpoint manifests aside)."""
    out = tmp_path / "out"
    for i, point in enumerate(KILL_POINTS):
        proc = killed_at(point, out, resume=i > 0)
        check_consistent(out, reference)
        if point == "after-checkpoint-rename:5":
            shards = run_dir_of(out) / "checkpoints" / "step-5" / "__0_0.distcp"
            data = bytearray(shards.read_bytes())
            data[len(data) // 2] ^= 0xFF
            shards.write_bytes(bytes(data))
        if point == "mid-eval:8":  # the resume after the damage
            assert "checkpoint step-5 is damaged" in proc.stderr and "does not match its sha256" in proc.stderr
            assert "resumed tiny--gad" in proc.stderr and "from step 4" in proc.stderr, proc.stderr[-3000:]
    done = run_cli(cli(CRASH, out, *KEEP_ALL, "--resume"))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert_same_run(run_dir_of(out), reference.run)


def test_every_checkpoint_damaged_stops_resume_in_one_line_and_changes_nothing(tmp_path):
    killed_at("after-checkpoint-rename:2", tmp_path, resume=False)
    run = run_dir_of(tmp_path)
    (run / "checkpoints" / "step-2" / "__0_0.distcp").write_bytes(b"")  # emptied
    shards = run / "checkpoints" / "step-1" / "__0_0.distcp"
    shards.write_bytes(shards.read_bytes()[:1000])  # cut short
    before = snapshot(run)
    proc = run_cli(cli(CRASH, tmp_path, *KEEP_ALL, "--resume"))
    one_line_error(proc, f"no intact checkpoint is left in {run / 'checkpoints'}", "step-2/__0_0.distcp has 0 bytes",
                   "rerun without --resume")
    assert "checkpoint step-2 is damaged" in proc.stderr and "checkpoint step-1 is damaged" in proc.stderr
    assert snapshot(run) == before


# ======================================================================= 8. damaged results on --resume


def copy_reference(reference: Reference, tmp_path: Path) -> Path:
    """A copy of the uninterrupted run's --out folder; returns the run's directory in it."""
    out = tmp_path / "out"
    shutil.copytree(reference.run.parents[1], out, ignore=shutil.ignore_patterns("*.lock"))
    return out / "crash" / reference.run.name


def test_resume_rebuilds_a_truncated_summary_and_leaves_a_damaged_evaluation_out(reference, tmp_path):
    run = copy_reference(reference, tmp_path)
    for name in ("summary.json", "eval/step-4/metrics.json"):
        data = (run / name).read_bytes()
        (run / name).write_bytes(data[: len(data) // 2])
    proc = run_cli(cli(CRASH, run.parents[1], *KEEP_ALL, "--resume"))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert f"{run / 'summary.json'} is damaged: not valid JSON" in proc.stderr and "summarizing the run again" in proc.stderr
    assert f"{run / 'eval/step-4/metrics.json'} is damaged" in proc.stderr
    assert "the report leaves that evaluation out" in proc.stderr  # the report builds without it
    summary = read_json(run / "summary.json")
    assert any("eval/step-4/metrics.json is damaged: step 4 was left out of checkpoint selection" in w
               for w in summary["warnings"]), summary["warnings"]
    assert f"gadbench eval {run} --checkpoint 4" in " ".join(summary["warnings"])
    assert summary["selection"]["checkpoint"] == 8  # the one evaluation point left
    if reference.summary["selection"]["checkpoint"] == 8:
        assert summary["eval"] == reference.summary["eval"]


def test_a_damaged_middle_line_of_the_step_log_stops_resume_in_one_line(reference, tmp_path):
    run = copy_reference(reference, tmp_path)
    (run / "summary.json").unlink()
    (run / "budget.json").unlink()  # training "not finished": resume reads the step log
    rows = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    rows[3] = rows[3][:20] + "\n"
    (run / "metrics.jsonl").write_text("".join(rows))
    before = snapshot(run)
    proc = run_cli(cli(CRASH, run.parents[1], *KEEP_ALL, "--resume"))
    one_line_error(proc, f"{run / 'metrics.jsonl'}: line 4 is not valid JSON", "fix or remove that line")
    assert snapshot(run) == before


# ================================================================= 9. a judge outage does not stop a suite


OUTAGE = ("--set", "methods.seqkd={kind: seqkd}", "--set", "eval.selection_metric=mtbench-single/score",
          "--set", "judge.max_retries=0")


def judge_rows(run: Path) -> list[dict]:
    return [j for p in sorted(run.glob("eval/step-*/*.jsonl")) for r in read_jsonl(p)
            for n, j in r["judgments"].items() if n == "mtbench-single"]


def test_a_judge_outage_skips_its_evaluation_points_and_resume_and_eval_ask_again(tmp_path):
    """Every judge request fails (503, no retry): both runs of the suite complete, each evaluation point without
    a valid judgment is left out of selection with a warning naming it, and the usage counts the failures.
    With the endpoint back, `gadbench eval` re-asks one step's failed judgments and `--resume` the rest, only
    those; the summaries then select on the scores and add up what every process spent."""
    suite, env = FIX / "llmjudge.yaml", {**ENV, "GADBENCH_TEST_KEY": SECRET}
    out = tmp_path / "out"
    with LoopbackServer(default="status:503", reply=rating_reply) as srv:
        argv = cli(suite, out, "--set", f"judge.base_url={srv.url}", *OUTAGE)
        down = run_cli(argv, env=env)
        assert down.returncode == 0 and "Traceback" not in down.stderr, down.stderr[-3000:]
        failed = len(srv.received)
        assert failed > 0 and "judgments failed (api error: gave up after 1 attempts; last error: HTTP 503)" in down.stderr
        runs = sorted(p for p in (out / "llmjudge").iterdir() if (p / "config.yaml").exists())
        assert len(runs) == 2
        for run in runs:
            s = read_json(run / "summary.json")
            steps = sorted(int(p.name.split("-")[1]) for p in run.glob("eval/step-*") if p.name != "step-0")
            assert s["selection"]["rule"] == "last" and s["selection"]["skipped"] == steps, s["selection"]
            assert [w for w in s["warnings"] if "has no valid mtbench-single/score score" in w] == [
                f"evaluation at step {k} has no valid mtbench-single/score score on the validation split (every "
                "judgment failed, e.g. a judge outage): it was left out of checkpoint selection; `gadbench run "
                "--resume` asks the failed judgments again" for k in steps]
            assert all(not j["valid"] and j["details"]["error"].startswith("api error") for j in judge_rows(run))
        usage = [read_json(r / "summary.json")["judge_usage"] for r in runs]
        assert sum(u["failures"] for u in usage) == sum(u["requests"] for u in usage) == failed

        srv.default = "ok"  # the endpoint is back
        gad = next(r for r in runs if "--gad--" in r.name)
        last = max(int(p.name.split("-")[1]) for p in gad.glob("eval/step-*"))
        ev = run_cli([sys.executable, "-m", "gadbench.cli", "eval", str(gad), "--checkpoint", str(last)], env=env)
        assert ev.returncode == 0, ev.stderr[-3000:]
        step_rows = [j for p in (gad / "eval" / f"step-{last}").glob("*.jsonl") for r in read_jsonl(p)
                     for n, j in r["judgments"].items() if n == "mtbench-single"]
        assert 0 < len(srv.received) - failed <= len(step_rows) and all(j["valid"] for j in step_rows)
        assert all(not j["valid"] for j in judge_rows(gad) if j not in step_rows)  # only that step was asked

        up = run_cli(cli(suite, out, "--set", f"judge.base_url={srv.url}", *OUTAGE, "--resume"), env=env)
        assert up.returncode == 0 and "Traceback" not in up.stderr, up.stderr[-3000:]
        # each distinct request that failed is asked once more (a step whose answers repeat another's is cached)
        distinct = {json.dumps(b, sort_keys=True) for b in srv.received[:failed]}
        again = [json.dumps(b, sort_keys=True) for b in srv.received[failed:]]
        assert len(again) == len(set(again)) == len(distinct) and set(again) == distinct, up.stderr[-3000:]
    for run in runs:
        s = read_json(run / "summary.json")
        assert s["selection"]["rule"] == "validation" and "skipped" not in s["selection"], s["selection"]
        assert not [w for w in s["warnings"] if "no valid" in w]
        assert all(j["valid"] for j in judge_rows(run))
    usage = [read_json(r / "summary.json")["judge_usage"] for r in runs]
    assert sum(u["requests"] for u in usage) == len(srv.received) and sum(u["failures"] for u in usage) == failed


def test_judge_usage_of_a_killed_run_is_kept_by_resume(tmp_path):
    """Killed after its last evaluation (while writing that step's checkpoint): the resumed process asks the
    judge nothing, and the summary still counts every request the killed process sent."""
    suite, env = FIX / "llmjudge.yaml", {**ENV, "GADBENCH_TEST_KEY": SECRET}
    with LoopbackServer(reply=rating_reply) as srv:
        argv = cli(suite, tmp_path, "--set", f"judge.base_url={srv.url}")
        proc = run_cli(argv, env={**env, "GADBENCH_KILL_AT": "mid-checkpoint:2"})
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
        sent = len(srv.received)
        done = run_cli(argv + ["--resume"], env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        assert len(srv.received) == sent > 0
    usage = read_json(run_dir_of(tmp_path, "llmjudge") / "summary.json")["judge_usage"]
    assert usage["requests"] == sent and usage["cost_usd"] == pytest.approx(
        (usage["prompt_tokens"] * 1.0 + usage["completion_tokens"] * 2.0) / 1e6), usage


def test_judge_timeout_and_retries_are_settings_that_reach_the_client(tmp_path):
    """A hung endpoint costs (judge.max_retries + 1) x judge.timeout per request, both set in the suite."""
    from gadbench.judge.records import JUDGES
    from gadbench.suite import get_suite
    from gadbench.teachers import teacher_from

    with LoopbackServer(default="hang") as srv:
        spec = runs_of_suite(get_suite(str(FIX / "llmjudge.yaml"), [f"judge.base_url={srv.url}", "judge.timeout=0.2",
                                                                      "judge.max_retries=1"]))[0]
        judge_ = JUDGES["mtbench-single"].build(spec, tmp_path)
        assert (judge_.client.timeout, judge_.client.max_retries) == (0.2, 1)
        judge_.client.backoff_base = 0.01
        run = judge_.judge(ITEMS[:1])
        assert len(srv.received) == 2 and not run[0].valid
        assert "gave up after 2 attempts; last error: no response within 0.2 s" in run[0].details["error"]
        teacher = teacher_from(replace(spec.teacher, spec=f"openai:m@{srv.url}", timeout=3.0, max_retries=2))
        assert (teacher.client.timeout, teacher.client.max_retries) == (3.0, 2)


# ================================================================================ 10. checkpoint manifests


def test_a_manifest_names_every_kind_of_damage_to_a_checkpoint_folder(tmp_path):
    """seal writes the size and sha256 of every file (subfolders too) last; verify names the damaged file:
    bytes changed in place, a file cut short or emptied, removed, added, or the manifest itself gone."""
    from gadbench.rundir import seal, verify

    def folder() -> Path:
        d = tmp_path / f"ckpt{len(list(tmp_path.iterdir()))}"
        (d / "shards").mkdir(parents=True)
        (d / "state.pt").write_bytes(os.urandom(5000))
        (d / "shards" / "rank0.distcp").write_bytes(os.urandom(300))
        (d / "KEEP").touch()
        seal(d)
        assert verify(d) is None
        return d

    def flip(p: Path) -> None:
        data = bytearray(p.read_bytes())
        data[2500] ^= 1
        p.write_bytes(bytes(data))

    damage = {
        "state.pt does not match its sha256 in the manifest": lambda d: flip(d / "state.pt"),
        "state.pt has 2500 bytes, the manifest 5000": lambda d: (d / "state.pt").write_bytes(
            (d / "state.pt").read_bytes()[:2500]),
        "state.pt has 0 bytes, the manifest 5000": lambda d: (d / "state.pt").write_bytes(b""),
        "shards/rank0.distcp is missing": lambda d: (d / "shards" / "rank0.distcp").unlink(),
        "extra.bin is not in the manifest": lambda d: (d / "extra.bin").write_bytes(b"x"),
        "manifest.json is missing": lambda d: (d / MANIFEST).unlink(),
        "manifest.json is not a readable manifest": lambda d: (d / MANIFEST).write_text('{"state.pt": '),
    }
    for expected, spoil in damage.items():
        d = folder()
        spoil(d)
        problem = verify(d)
        assert problem is not None and expected in problem and str(d) in problem, (expected, problem)
