"""Data parallelism across 2 real processes (`accelerate launch --multi_gpu`, gloo on CPU).

1. Replicas: each process takes half of the global batch; G and D stay identical across ranks (the trainer
   compares checksums at every checkpoint and stops if they differ) and the run ends where a 1-process run
   with the same global batch ends. Stated tolerance: the rollouts are the same token for token (counter-based
   seeds per global prompt position), so every rollout metric and budget counter is equal; parameters agree
   within 1e-4 and losses within 1e-4 relative (the forward passes see other paddings and summation orders).
2. FSDP2 (`train.sharding: fsdp`): each rank holds about half of G; the run matches the replicated
   2-process run with the same rollouts and parameters within 1e-5 (the local arithmetic is the same and
   reduce-scatter sums the same two numbers; only the gradient norm for clipping is summed over shards in
   another order). With the student's `cpu_offload` the run is bitwise the same (on a CPU the policy moves nothing).
3. Checkpoints (torch.distributed.checkpoint, each process writing its shards): a checkpoint written by 2 FSDP
   processes restores bitwise into 1 process and into 2 (G, D, reference, both optimizers, RNG), and so does
   one written by 1 process into 2 FSDP processes; a resume on 2 from a mid-stage checkpoint ends at the
   uninterrupted run's weights bitwise, and resumes on another process count finish within the 1- vs
   2-process tolerance (1e-4). `gadbench eval` reads a 2-process checkpoint in one process.
4. Load once: G and D loaded by process 0 and broadcast into shards built on the meta device equal, bitwise,
   what each process gets loading the student itself (a bf16-stored student upcast to fp32; D from another
   model; tied embeddings stay tied).
5. HSDP (`train.sharding: hsdp`) launched as 2 nodes of 2 processes (two torchrun agents here): matches a
   replicated 4-process run (tolerances in the test).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ckpt import read_checkpoint
from loopback import free_port

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "tests" / "fixtures" / "suites" / "dp.yaml"


ENV = {**os.environ, "GADBENCH_EXPERIMENTS": str(REPO / "experiments"), "PYTHONWARNINGS": "ignore",
       "OMP_NUM_THREADS": "1"}
FIX = REPO / "tests" / "fixtures" / "distributed"


def _run(cmd: list[str], out: Path, *args: str) -> str:
    """Run the dp suite with `cmd` (a launcher and the CLI module); returns the log (stderr)."""
    proc = subprocess.run([*cmd, "run", "--suite", str(SUITE), "--out", str(out), *args], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


def _script(processes: int, script: str, *args: str) -> str:
    """Run a fixture script in 1 process, or in several under torchrun; returns its output."""
    launch = [sys.executable] if processes == 1 else [sys.executable, "-m", "torch.distributed.run",
                                                      "--nproc_per_node", str(processes), "--master_port",
                                                      str(free_port())]
    proc = subprocess.run([*launch, str(FIX / script), *map(str, args)], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout + proc.stderr


def _run_dir(out: Path) -> Path:
    return Path(glob.glob(str(out / "dp" / "tiny--gad--*"))[0])


def _final(out: Path) -> tuple[dict, list[dict], dict]:
    run = _run_dir(out)
    state = read_checkpoint(run / "checkpoints" / "step-6")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return state, rows, json.loads((run / "budget.json").read_text())["totals"]


def _interrupt_after_step_5(out: Path, copy_to: Path | None = None) -> Path:
    """The run as if killed after step 5's checkpoint (a copy of it when `copy_to`): step 6, the budget (written
    when training ends) and the summary gone."""
    run = _run_dir(out)
    if copy_to is not None:
        shutil.copytree(out, copy_to)
        run = _run_dir(copy_to)
    shutil.rmtree(run / "checkpoints" / "step-6")
    (run / "budget.json").unlink()
    (run / "summary.json").unlink()
    return run


ONE = [sys.executable, "-m", "gadbench.cli"]
# `--multi_gpu` launches through torchrun; with no GPU the processes join a gloo group (`--cpu` would start one).
TWO = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "-m", "gadbench.cli"]
# A checkpoint after every step, also after step 1 where G has not stepped yet (D trains alone).
EVERY_STEP = ("--set", "train.checkpoint_every=1")
ROLLOUT_METRICS = ("response_len", "truncated_frac", "gold/teacher_logprob", "gold/accuracy", "stage", "step")


def _assert_same_weights(a: dict, b: dict, atol: float = 0.0) -> None:
    """G, D and the reference agree within `atol` (bitwise when 0); a failure lists every tensor outside it
    with its largest difference. Every compared tensor is defined by the method (D's head has no bias under
    the BT loss, whose gradient for it is zero: see gadbench.models.Discriminator)."""
    off = {}
    for model in ("g", "d", "ref"):
        assert a[model].keys() == b[model].keys(), model
        for name in a[model]:
            diff = float((a[model][name].double() - b[model][name].double()).abs().max())
            if diff > atol:
                off[f"{model}.{name}"] = diff
    assert not off, f"{len(off)} tensor(s) differ by more than {atol}: " + ", ".join(
        f"{k} {v:.2e}" for k, v in sorted(off.items(), key=lambda kv: -kv[1]))


def _assert_same_scores(rows_a: list[dict], rows_b: list[dict], tol: float) -> None:
    """D's verdicts agree step by step: the mean teacher-minus-student score gap (what the BT loss sees)."""
    gaps = [(r["step"], r["teacher_score"] - r["student_score"], q["teacher_score"] - q["student_score"])
            for r, q in zip(rows_a, rows_b, strict=True) if "teacher_score" in r]
    off = [(step, x, y) for step, x, y in gaps if abs(x - y) > tol]
    assert gaps and not off, f"D's score gaps differ by more than {tol} at (step, a, b): {off}"


@pytest.mark.slow
def test_two_processes_replicated_and_sharded_match_one(tmp_path):
    _run([*ONE, "-q"], tmp_path / "one", *EVERY_STEP)
    log = _run(TWO, tmp_path / "two", *EVERY_STEP)
    assert "data parallel over 2 processes" in log, log[-2000:]
    one, rows1, budget1 = _final(tmp_path / "one")
    two, rows2, budget2 = _final(tmp_path / "two")
    _assert_same_weights(one, two, atol=1e-4)
    _assert_same_scores(rows1, rows2, tol=1e-4)
    assert len(rows1) == len(rows2) == 6 and rows2[-1]["stage"] == "adversarial"  # process 0 alone writes
    for r1, r2 in zip(rows1, rows2, strict=True):
        assert {k: r1.get(k) for k in ROLLOUT_METRICS} == {k: r2.get(k) for k in ROLLOUT_METRICS}
        for k in ("d_loss", "sft_loss", "pg_loss"):
            if k in r1:
                assert r2[k] == pytest.approx(r1[k], rel=1e-4, abs=1e-6), (r1["step"], k)
    assert {k: v for k, v in budget1.items() if k != "wall_s"} == {k: v for k, v in budget2.items() if k != "wall_s"}
    assert budget2["rollouts"] == 6 * 8 * 4  # every step samples 4 responses for each of 8 prompts

    log = _run(TWO, tmp_path / "fsdp", *EVERY_STEP, "--set", "train.sharding=fsdp")
    line = next(x for x in log.splitlines() if "FSDP over 2 processes" in x)
    local, total = (int(w) for w in line.split("holds ")[1].split(" parameters")[0].split(" of G's "))
    assert local < 0.6 * total
    fsdp, rows3, budget3 = _final(tmp_path / "fsdp")
    _assert_same_weights(two, fsdp, atol=1e-5)
    _assert_same_scores(rows2, rows3, tol=1e-5)
    for r2, r3 in zip(rows2, rows3, strict=True):
        assert {k: r2.get(k) for k in ROLLOUT_METRICS} == {k: r3.get(k) for k in ROLLOUT_METRICS}
        assert r3.keys() == r2.keys()
        for k in {k for k in r2 if k not in ("step_time", "stage") and not k.startswith("time/")}:
            assert r3[k] == pytest.approx(r2[k], rel=1e-5, abs=1e-6), (r2["step"], k)
    assert {k: v for k, v in budget2.items() if k != "wall_s"} == {k: v for k, v in budget3.items() if k != "wall_s"}
    answers = lambda out: [json.loads(x)["answer"] for x in  # noqa: E731
                           next((out / "dp").glob("tiny--gad--*/eval/step-6/world-id.jsonl")).read_text().splitlines()]
    assert answers(tmp_path / "fsdp") == answers(tmp_path / "two")  # evaluated from the gathered copy of G
    # `gadbench eval`, one process, reads the 2-process checkpoint's G and answers as training-time evaluation did
    (_run_dir(tmp_path / "fsdp") / "eval" / "step-6" / "world-id.jsonl").unlink()
    proc = subprocess.run([*ONE, "eval", str(_run_dir(tmp_path / "fsdp")), "--checkpoint", "6"], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert answers(tmp_path / "fsdp") == answers(tmp_path / "two")

    log = _run(TWO, tmp_path / "offload", *EVERY_STEP, "--set", "train.sharding=fsdp", "--set",
               "students.tiny.cpu_offload=true")
    assert "FSDP over 2 processes with CPU offload" in log
    offloaded, rows5, _ = _final(tmp_path / "offload")
    _assert_same_weights(fsdp, offloaded)
    for part in ("g_opt", "d_opt"):
        assert all(torch.equal(fsdp[part][k], offloaded[part][k]) for k in fsdp[part]), part
    assert [{k: v for k, v in r.items() if k != "step_time" and not k.startswith("time/")} for r in rows5] == [
        {k: v for k, v in r.items() if k != "step_time" and not k.startswith("time/")} for r in rows3]

    # Interrupted after step 5 (adversarial stage: optimizer states and the reference are in the checkpoint),
    # written by 2 FSDP processes: it restores bitwise into 1 process and into 2; resumed on 2 it ends
    # bitwise where the uninterrupted run ends, resumed on 1 within the 1- vs 2-process tolerance.
    run = _run_dir(tmp_path / "fsdp")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-3", "step-5", "step-6"]
    assert sorted(p.name for p in (run / "checkpoints" / "step-5").iterdir()) == [
        ".metadata", "__0_0.distcp", "__1_0.distcp", "complete.json", "manifest.json", "rng-0.pt", "rng-1.pt"]
    on_one = _interrupt_after_step_5(tmp_path / "fsdp", copy_to=tmp_path / "fsdp-on-1")
    run = _interrupt_after_step_5(tmp_path / "fsdp")
    assert "restore ok: ['d', 'd_opt', 'g', 'g_opt', 'ref'] on 1 process(es)" in _script(1, "restore_check.py", run, 5)
    assert "restore ok: ['d', 'd_opt', 'g', 'g_opt', 'ref'] on 2 process(es)" in _script(2, "restore_check.py", run, 5)
    log = _run(TWO, tmp_path / "fsdp", *EVERY_STEP, "--set", "train.sharding=fsdp", "--resume")
    assert "from step 5 (written by 2 process(es))" in log
    resumed, rows4, _ = _final(tmp_path / "fsdp")
    _assert_same_weights(fsdp, resumed)
    assert [r["step"] for r in rows4] == [1, 2, 3, 4, 5, 6]

    log = _run(ONE, tmp_path / "fsdp-on-1", *EVERY_STEP, "--set", "train.sharding=fsdp", "--resume")
    assert "from step 5 (written by 2 process(es))" in log and not (on_one / "checkpoints" / "step-6" / "rng-1.pt").exists()
    resumed_on_one, rows6, _ = _final(tmp_path / "fsdp-on-1")
    _assert_same_weights(fsdp, resumed_on_one, atol=1e-4)
    assert [r["step"] for r in rows6] == [1, 2, 3, 4, 5, 6]


@pytest.mark.slow
def test_hybrid_sharding_across_two_nodes_matches_replicas(tmp_path):
    """HSDP over 2 "nodes" of 2 processes (two torchrun agents on this machine, as the multi-node recipe
    launches them) ends where a replicated 4-process run ends: the same rollouts; the reference (G after the
    warmup stage, lr 3e-3) within 1e-5, so every node's gradients reached every node; G and D within 1e-3
    after the adversarial stage, whose group-normalised advantages amplify summation-order noise (two
    replicated runs on 2 and 4 processes differ by 2e-4 there)."""
    four = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "4", "-m",
            "gadbench.cli"]
    _run(four, tmp_path / "four", *EVERY_STEP)
    port = free_port()
    agents = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(node),
         "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(port),
         "-m", "gadbench.cli", "run", "--suite", str(SUITE), "--out", str(tmp_path / "hsdp"), *EVERY_STEP,
         "--set", "train.sharding=hsdp"],
        cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for node in (0, 1)]
    logs = [a.communicate(timeout=600)[1] for a in agents]
    assert [a.returncode for a in agents] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    line = next(x for x in logs[0].splitlines() if "HSDP over 4 processes" in x)
    local, total = (int(w) for w in line.split("holds ")[1].split(" parameters")[0].split(" of G's "))
    assert local < 0.6 * total  # sharded over the 2 processes of a node
    replicas, rows4, budget4 = _final(tmp_path / "four")
    hsdp, rows_h, budget_h = _final(tmp_path / "hsdp")
    for name in replicas["ref"]:
        torch.testing.assert_close(replicas["ref"][name], hsdp["ref"][name], rtol=0, atol=1e-5, msg=name)
    _assert_same_weights(replicas, hsdp, atol=1e-3)
    for r4, rh in zip(rows4, rows_h, strict=True):
        assert {k: r4.get(k) for k in ROLLOUT_METRICS} == {k: rh.get(k) for k in ROLLOUT_METRICS}
    assert {k: v for k, v in budget4.items() if k != "wall_s"} == {k: v for k, v in budget_h.items() if k != "wall_s"}


@pytest.mark.slow
def test_a_one_process_checkpoint_resumes_on_two_fsdp_processes(tmp_path):
    """`train.sharding: fsdp` on one process holds plain tensors (FSDP is off there); its checkpoint restores
    bitwise into 2 FSDP processes, and the resumed run finishes within the 1- vs 2-process tolerance."""
    _run([*ONE, "-q"], tmp_path / "out", *EVERY_STEP, "--set", "train.sharding=fsdp")
    one, _, _ = _final(tmp_path / "out")
    run = _interrupt_after_step_5(tmp_path / "out")
    assert "restore ok: ['d', 'd_opt', 'g', 'g_opt', 'ref'] on 2 process(es)" in _script(2, "restore_check.py", run, 5)
    log = _run(TWO, tmp_path / "out", *EVERY_STEP, "--set", "train.sharding=fsdp", "--resume")
    assert "FSDP over 2 processes" in log and "from step 5 (written by 1 process(es))" in log
    resumed, rows, _ = _final(tmp_path / "out")
    _assert_same_weights(one, resumed, atol=1e-4)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert (run / "checkpoints" / "step-6" / "rng-1.pt").exists()  # written by both processes


@pytest.mark.slow
def test_load_once_equals_every_process_loading_the_student(tmp_path):
    """Through gadbench.state.loading on 2 processes (tests/fixtures/distributed/load_once.py): a student stored in bf16
    (read by process 0 in bf16, upcast into fp32 shards, offloaded), and the world student with D from another
    model (world:small)."""
    from tinymodels import build_tiny_model

    model, tok = build_tiny_model(tmp_path / "fp32", arch="llama")
    model.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    tok.save_pretrained(tmp_path / "bf16")
    out = _script(2, "load_once.py", SUITE, tmp_path / "bf16", "-", "offload")
    assert "load-once ok" in out and f"process 0 read {tmp_path / 'bf16'} (torch.bfloat16" in out, out[-3000:]
    out = _script(2, "load_once.py", SUITE, "world:tiny", "world:small", "-")
    assert "load-once ok" in out and "process 0 read world:small" in out, out[-3000:]


def test_the_processes_of_one_launch_are_one_owner_and_stop_together(tmp_path):
    """Process 0 takes the run's lock for the launch (the 2-process runs above would stop otherwise); when
    another process holds the run, every process of the launch stops with the one line instead of waiting."""
    from gadbench.suite import get_suite, runs_of

    (spec,) = runs_of(get_suite(str(SUITE)))
    run = tmp_path / "out" / "dp" / spec.run_id
    holder = subprocess.Popen([sys.executable, str(REPO / "tests" / "fixtures" / "reliability" / "lock_holder.py"),
                               str(run)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        child = int(holder.stdout.readline())  # the holder owns the run once its forked child prints
        env = {**os.environ, "GADBENCH_EXPERIMENTS": str(REPO / "experiments"), "PYTHONWARNINGS": "ignore"}
        proc = subprocess.run([*TWO, "-q", "run", "--suite", str(SUITE), "--out", str(tmp_path / "out")], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=300)
    finally:
        holder.kill()
        holder.wait()
        os.kill(child, 9)
    assert proc.returncode != 0
    line = f"gadbench: run {spec.run_id} is in use by PID {holder.pid} on host"
    assert proc.stderr.count(line) == 2, proc.stderr[-3000:]  # both processes, from process 0's answer
    assert not run.exists() and not (tmp_path / "out" / "dp" / "suite.json").exists()
