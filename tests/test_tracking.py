"""Live tracking (`log.tracker`, gadbench.tracking) through the real libraries, offline: a `gadbench run` subprocess
per tracker, then the library's own local store read back: every field of every metrics.jsonl row at its step,
every evaluation mean at its step, and the run's resolved config.

    tensorboard  the run's tensorboard/ event files, read with tensorboard's EventAccumulator
    trackio      its SQLite store under $TRACKIO_DIR, read with trackio's SQLiteStorage and Api
    wandb        the run's wandb/offline-run-*/run-*.wandb, W&B's record log (LevelDB log framing of protobuf
                 `Record`s, read below with wandb's own protobuf classes)

A tracker whose library is not installed is skipped here (pip install -e '.[dev]' installs all three).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from gadbench.io import read_json, read_jsonl
from gadbench.rundir import RunDir
from gadbench.tracking import MODULES, flat_means

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "fixtures" / "cli" / "tiny.yaml"
ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("WANDB_")},
       "GADBENCH_EXPERIMENTS": str(ROOT / "experiments"), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def tracked_run(tracker: str, tmp_path: Path) -> tuple[RunDir, dict]:
    """A GAD run of tiny.yaml logged to `tracker`; its run directory and the subprocess environment."""
    env = {**ENV, "TRACKIO_DIR": str(tmp_path / "trackio")}
    argv = [sys.executable, "-m", "gadbench.cli", "-q", "run", "--suite", str(TINY), "--out", str(tmp_path / "out"),
            "--set", "methods.seqkd=null", "--set", f"log.tracker={tracker}"]
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = [p for p in (tmp_path / "out" / "tiny").glob("tiny--gad--*") if p.is_dir()]
    return RunDir(run), env


def expected(run: RunDir) -> dict[int, dict]:
    """step -> what the tracker must hold at that step: each metrics.jsonl field, each evaluation mean."""
    want: dict[int, dict] = {}
    for row in read_jsonl(run.metrics):
        want.setdefault(row["step"], {}).update({k: v for k, v in row.items() if k != "step"})
    for step in run.eval_steps():
        want.setdefault(step, {}).update(flat_means(read_json(run.eval_dir(step) / "metrics.json")))
    return want


def check(got: dict[int, dict], want: dict[int, dict], rel: float = 1e-9) -> None:
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))
    for step, fields in want.items():
        for key, value in fields.items():
            assert key in got[step], f"step {step}: {key} not logged (logged: {sorted(got[step])})"
            have = got[step][key]
            if isinstance(value, str):
                assert have == value, (step, key, have, value)
            else:
                assert have == pytest.approx(float(value), rel=rel, abs=1e-6), (step, key, have, value)


def check_config(config: dict, run: RunDir) -> None:
    resolved = read_json(run.path / "summary.json")
    assert config["method_name"] == "gad" and config["seed"] == resolved["seed"] == 0
    assert config["train"]["steps"] == 4 and config["train"]["lr_generator"] == pytest.approx(3e-5)


def test_tensorboard_event_files_hold_every_row_and_the_config(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    run, _ = tracked_run("tensorboard", tmp_path)
    acc = EventAccumulator(str(run.path / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    got: dict[int, dict] = {}
    for tag in acc.Tags()["scalars"]:
        for event in acc.Scalars(tag):
            got.setdefault(event.step, {})[tag] = event.value
    texts = {tag.removesuffix("/text_summary"): acc.Tensors(tag) for tag in acc.Tags()["tensors"]}
    for event in texts.pop("stage"):
        got.setdefault(event.step, {})["stage"] = make_ndarray(event.tensor_proto).item().decode()
    check(got, expected(run), rel=1e-6)  # TensorBoard keeps float32
    (config,) = texts.pop("config")
    text = make_ndarray(config.tensor_proto).item().decode()
    import yaml

    check_config(yaml.safe_load(text.strip("`\n")), run)
    assert not texts, f"unexpected text tags {list(texts)}"


def test_trackio_local_store_holds_every_row_and_the_config(tmp_path):
    pytest.importorskip("trackio")
    run, env = tracked_run("trackio", tmp_path)
    read = ("import json, sys, trackio\n"
            "from trackio.sqlite_storage import SQLiteStorage\n"
            "name = sys.argv[1]\n"
            "runs = [r for r in trackio.Api().runs('gadbench') if r.name == name]\n"
            "print(json.dumps({'logs': SQLiteStorage.get_logs('gadbench', name), 'runs': len(runs),"
            " 'config': runs[0].config}, default=str))\n")
    proc = subprocess.run([sys.executable, "-c", read, run.path.name], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    store = json.loads(proc.stdout.strip().splitlines()[-1])
    assert store["runs"] == 1
    got: dict[int, dict] = {}
    for row in store["logs"]:
        got.setdefault(row["step"], {}).update({k: v for k, v in row.items() if k not in ("step", "timestamp")})
    check(got, expected(run))
    check_config(store["config"], run)


def wandb_records(path: Path):
    """The protobuf records of a .wandb file: a 7-byte header (`:W&B`, magic 0xBEE1, version), then LevelDB log
    framing (32 KiB blocks; each chunk a 7-byte header: CRC, length, type FULL=1 FIRST=2 MIDDLE=3 LAST=4)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    ident, magic, _ = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and magic == 0xBEE1, (ident, magic)
    pos, block, record = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:
            continue
        record = chunk if kind in (1, 2) else record + chunk
        if kind in (1, 4):
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(record)
            yield rec


def test_wandb_offline_run_folder_holds_every_row_and_the_config(tmp_path):
    pytest.importorskip("wandb")
    run, _ = tracked_run("wandb", tmp_path)
    (folder,) = (run.path / "wandb").glob("offline-run-*")
    (log,) = folder.glob("run-*.wandb")
    got: dict[int, dict] = {}
    config = {}
    for rec in wandb_records(log):
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item}
            got.setdefault(rec.history.step.num, {}).update({k: v for k, v in items.items() if not k.startswith("_")})
        elif kind in ("run", "config"):
            updates = rec.run.config.update if kind == "run" else rec.config.update
            config.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in updates})
    check(got, expected(run))
    check_config(config, run)
    assert read_json(run.path / "tracker.json") == {"tracker": "wandb", "id": folder.name.rsplit("-", 1)[1]}


def test_the_tracker_is_not_part_of_a_run_id():
    from gadbench.suite import get_suite, runs_of

    ids = [[r.run_id for r in runs_of(get_suite("smoke", [f"log.tracker={t}"]))] for t in ("none", *MODULES)]
    assert all(i == ids[0] for i in ids)


def test_a_tracker_whose_library_is_missing_stops_the_suite_in_one_line(monkeypatch):
    from gadbench.runner import MissingRequirement, check_requirements
    from gadbench.suite import get_suite

    monkeypatch.setitem(MODULES, "wandb", "gadbench_test_no_such_module")
    with pytest.raises(MissingRequirement, match=r"needs the wandb package for log.tracker=wandb \(pip install "
                                                 r"wandb\)"):
        check_requirements(get_suite("smoke", ["log.tracker=wandb"]))


def test_flat_means_keeps_means_and_numbers_and_leaves_out_the_rest():
    metrics = {"world-id": {"gold/accuracy": {"mean": 0.5, "ci_low": 0.25, "ci_high": 0.75, "n_valid": 8,
                                              "n_total": 8},
                            "pairwise/score": {"mean": None, "ci_low": None, "ci_high": None, "n_valid": 0,
                                               "n_total": 8},
                            "teacher_length": 7, "ngram_f1": [0.5, 0.25]},
               "validation": {"d": {"accuracy": 0.75, "pairs": 16}, "flag": True}}
    assert flat_means(metrics) == {"eval/world-id/gold/accuracy": 0.5, "eval/world-id/teacher_length": 7.0,
                                   "eval/validation/d/accuracy": 0.75, "eval/validation/d/pairs": 16.0}
