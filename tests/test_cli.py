"""A researcher's first hour on the command line, through `python -m gadbench.cli` subprocesses (or `main()` where
nothing is trained): the answer and progress lines a run prints, a finished `--out` that a fresh start may not
overwrite, the world students cached under `--out`, Ctrl-C, a closed pipe, a terminal's progress bars, and the
small commands (`--version`, `-q` after the subcommand, `suites`, `--explain --suite`, `doctor`, plan units).

tests/fixtures/cli/tiny.yaml is SeqKD and GAD for 4 steps on the synthetic world: a run takes seconds.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from loopback import LoopbackServer, free_port

from gadbench import __version__
from gadbench.cli import SIGPIPE_EXIT, main
from gadbench.io import read_json

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "fixtures" / "cli" / "tiny.yaml"
ENV = {**os.environ, "GADBENCH_EXPERIMENTS": str(ROOT / "experiments"), "HF_HUB_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def gadbench(*argv: str, env: dict | None = None, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gadbench.cli", *argv], cwd=cwd, env=env or ENV, capture_output=True,
                          text=True, timeout=timeout)


def run_tiny(out: Path, *extra: str, **kw) -> subprocess.CompletedProcess:
    return gadbench("run", "--suite", str(TINY), "--out", str(out), *extra, **kw)


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every result file's modification time and bytes (lock files left out: their content names the last
    process that asked for the run)."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")}


def only_line(proc: subprocess.CompletedProcess) -> str:
    """Exit 2, no traceback, and the last stderr line is gadbench's one line."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("gadbench: ") and sum(ln.startswith("gadbench: ") for ln in lines) == 1, proc.stderr
    return lines[-1]


# ======================================================================================== a run and its answer


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("finished") / "out"
    proc = run_tiny(out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_a_finished_run_prints_findings_main_table_report_paths_and_wall_time(finished):
    out, proc = finished
    suite_dir = out / "tiny"
    text = proc.stdout
    findings = text.index("Paper findings in this suite")
    main_table = text.index("Main results (Table 2 layout)")
    assert findings < main_table, text
    for finding in ("GAD beats SeqKD (in distribution)", "GAD generalises better (world-ood)"):
        line = next(ln for ln in text.splitlines() if ln.startswith(finding))
        assert re.search(r"\b(reproduced|not reproduced|inconclusive)\s*$", line), line
    rows = text[main_table:].splitlines()
    assert any(re.match(r"\s+SeqKD\s+-?\d+\.\d+\*?\s+-?\d+\.\d+", r) for r in rows), text
    assert any(re.match(r"\s+GAD\s+-?\d+\.\d+\*?\s+-?\d+\.\d+", r) for r in rows), text
    assert "**" not in text  # terminal text, not Markdown
    assert f"report:  {suite_dir / 'REPORT.md'}\n         {suite_dir / 'report.html'}\n" in text
    assert (suite_dir / "REPORT.md").exists() and (suite_dir / "report.html").exists()
    assert re.search(r"^suite tiny done in \d+ s$", text, re.M), text
    # the main table printed is the report's: the same numbers in REPORT.md's main table
    md = (suite_dir / "REPORT.md").read_text()
    seqkd_row = next(r for r in rows if r.strip().startswith("SeqKD")).split()[1:]
    assert any(("SeqKD" in ln and all(v.rstrip("*") in ln for v in seqkd_row)) for ln in md.splitlines()), md


def test_a_run_says_what_it_does_run_by_run_with_the_time_left(finished):
    out, proc = finished
    err = proc.stderr
    summaries = {p.parent.name: read_json(p) for p in (out / "tiny").glob("tiny--*/summary.json")
                 if "--before--" not in p.parent.name}
    ids = sorted(summaries, key=lambda r: err.index(r))
    assert len(ids) == 2
    assert re.search(rf"run 1/2: {re.escape(ids[0])}, 4 steps; time left estimated after the first run", err), err
    assert re.search(rf"run 2/2: {re.escape(ids[1])}, 4 steps; about \d+ (s|min \d\d s) left \(estimate\)", err), err
    for i, run_id in enumerate(ids, 1):
        s = summaries[run_id]
        step, metric = s["selection"]["checkpoint"], s["selection"]["metric"]
        val = s["validation"][metric]["mean"]
        done = re.search(rf"run {i}/2 done in (\d+) s: {re.escape(run_id)}: selected step (\d+) \(validation\); "
                         rf"{re.escape(metric)}: validation (\S+),", err)
        assert done, err
        assert int(done.group(2)) == step and float(done.group(3)) == pytest.approx(val, rel=1e-3)
        assert f"{run_id}: evaluating step 0" in err and f"{run_id}: loading the data" in err
    assert "Loading weights" not in err and "\r" not in err  # no bars when stderr is not a terminal


def test_rerunning_a_finished_out_stops_untouched_and_force_starts_again(finished, tmp_path):
    src, _ = finished
    out = tmp_path / "out"
    shutil.copytree(src, out)
    before = snapshot(out)
    line = only_line(run_tiny(out))
    assert line == (f"gadbench: 2 runs are complete in {out / 'tiny'}; add --resume to continue or --force to "
                    "start again."), line
    assert snapshot(out) == before, "a refused start changed the results"
    # a run that has started (a step log, no summary) counts too
    started = next(p for p in (out / "tiny").glob("tiny--gad--*") if p.is_dir())
    (started / "summary.json").unlink()
    before = snapshot(out)
    line = only_line(run_tiny(out))
    assert "1 run is complete and 1 run has started in" in line, line
    assert snapshot(out) == before
    # --force trains both again
    old = {p.parent.name: p.stat().st_mtime_ns for p in (out / "tiny").glob("tiny--*/metrics.jsonl")}
    forced = run_tiny(out, "--force")
    assert forced.returncode == 0, forced.stderr[-3000:]
    new = {p.parent.name: p.stat().st_mtime_ns for p in (out / "tiny").glob("tiny--*/metrics.jsonl")}
    assert new.keys() == old.keys() and all(new[k] > old[k] for k in old), (old, new)
    assert all((out / "tiny" / k / "summary.json").exists() for k in new)
    assert "suite tiny done in" in forced.stdout


def test_resume_and_force_together_are_refused(tmp_path):
    proc = run_tiny(tmp_path, "--resume", "--force", "--dry-run")
    assert proc.returncode == 2 and "not allowed with argument" in proc.stderr, proc.stderr


def test_the_world_student_is_cached_under_out_not_the_working_directory(tmp_path):
    """Without $GADBENCH_CACHE, a run keeps its world student in <out>/cache (results/README.md). The cache is
    seeded with the student this test session has already built, so nothing is pre-trained again."""
    from gadbench.worlds.student import world_student_dir

    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    built = world_student_dir("tiny")
    shutil.copytree(built, out / "cache" / built.name)
    env = {k: v for k, v in ENV.items() if k != "GADBENCH_CACHE"}
    proc = run_tiny(out, "--set", "methods.gad=null", env=env, cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (elsewhere / "results").exists(), "the run wrote a cache into its working directory"
    assert [p.name for p in (out / "cache").iterdir() if p.name.startswith("world-")] == [built.name]
    assert "building the world student" not in proc.stderr


def test_ctrl_c_prints_one_line_saying_how_to_resume_and_exits_130(tmp_path):
    # 40 steps: the interrupt lands mid-run even when this reader is starved of CPU for seconds
    longer = ("--set", "train.steps=40")
    argv = [sys.executable, "-m", "gadbench.cli", "run", "--suite", str(TINY), "--out", str(tmp_path), *longer]
    proc = subprocess.Popen(argv, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if ": step 4/40" in line:  # a checkpoint (checkpoint_every 2) is written after this step
                time.sleep(0.2)
                proc.send_signal(signal.SIGINT)
                break
        rest = proc.stdout.read()
        code = proc.wait(timeout=120)
    finally:
        proc.kill()
    text = "".join(seen) + rest
    assert code == 130, text[-3000:]
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-3000:]
    last = text.strip().splitlines()[-1]
    assert last == (f"gadbench: interrupted; the checkpoints written so far are kept; continue with `gadbench run "
                    f"--suite {TINY} --out {tmp_path} --set train.steps=40 --resume`"), last
    resumed = run_tiny(tmp_path, *longer, "--resume")
    assert resumed.returncode == 0 and "suite tiny done in" in resumed.stdout, resumed.stderr[-3000:]


def test_on_a_terminal_gadbench_shows_its_bar_and_transformers_shows_none(tmp_path):
    """stderr on a pseudo-terminal: gadbench's progress bar is drawn; transformers' "Loading weights" bar is not."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 40 rows x 120 columns
    argv = [sys.executable, "-m", "gadbench.cli", "run", "--suite", str(TINY), "--out", str(tmp_path),
            "--set", "methods.gad=null"]
    proc = subprocess.Popen(argv, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 300)
            if not ready:
                break
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
        os.close(master)
    text = b"".join(chunks).decode(errors="replace")
    assert code == 0, text[-3000:]
    assert "Loading weights" not in text, text[-3000:]
    assert re.search(r"tiny--seqkd--s0--\w+:\s+\d+%\|", text), text[-3000:]  # tqdm's bar


# ============================================================================================ small commands


def test_a_closed_pipe_ends_quietly(tmp_path):
    """`gadbench suites --explain | head`: the reader goes away; no traceback, the shell's SIGPIPE status."""
    proc = subprocess.Popen([sys.executable, "-m", "gadbench.cli", "suites", "--explain"], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # no reader: the first write fails with EPIPE
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == SIGPIPE_EXIT, err
    assert err == "", err


def test_version_and_quiet_after_the_subcommand(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out == f"gadbench {__version__}\n"
    from gadbench.cli import build_parser

    for argv in (["-q", "suites"], ["suites", "-q"], ["run", "--suite", "smoke", "-q"],
                 ["teacher", "collect", "--teacher", "dataset", "--data", "x", "--out", "y", "-q"]):
        assert build_parser().parse_args(argv).quiet is True, argv
    assert build_parser().parse_args(["suites"]).quiet is False
    assert main(["run", "--suite", "smoke", "--dry-run", "-q"]) == 0


def test_explain_with_a_suite_shows_its_values_beside_the_defaults(capsys):
    assert main(["suites", "--explain", "train.steps", "--suite", "smoke"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("train.steps (int, default 2400, range [1, inf]): ") and line.endswith("; suite smoke: 40")
    assert main(["suites", "--explain", "methods.gad-d-small.d_model", "--suite", "smoke"]) == 0
    assert capsys.readouterr().out.strip().endswith("; suite smoke: 'world:small'")
    assert main(["suites", "--explain", "train.steps"]) == 0
    assert "suite" not in capsys.readouterr().out.split("):", 1)[1]


def test_suites_fits_100_columns_and_agrees_with_the_readme_on_times(capsys):
    assert main(["suites"]) == 0
    lines = capsys.readouterr().out.splitlines()
    widest = max(len(ln) for ln in lines)
    assert widest <= 100, f"{widest} columns:\n" + "\n".join(lines)
    from gadbench.suite import get_suite

    def times(text: str) -> set[str]:
        return {f"{n} {unit}" for n, unit in re.findall(r"(\d+) ?(min|h)\b", text)}

    readme = (ROOT / "README.md").read_text()
    for name in ("world-study", "sharegpt-smol", "api-teacher-smol"):
        row = next(ln for ln in readme.splitlines() if ln.startswith(f"| `{name}`"))
        said = times(get_suite(name).description)
        assert said <= times(row) or not times(row), (name, said, row)


def test_plan_shows_parameters_in_billions_and_flops_in_g_t_p_e(capsys):
    from gadbench.commands.run import count, flops

    assert (count(3.0e9), count(135e6), count(113_600), count(7)) == ("3.0B", "135.0M", "113.6k", "7")
    assert (flops(3.0e9), flops(2.5e13), flops(8.5e20), flops(500)) == ("3.0G", "25.0T", "850.0E", "500")
    assert main(["run", "--suite", "paper", "--dry-run"]) == 0
    plan_table = capsys.readouterr().out.split("\n\n")[1].splitlines()  # header, rule, one row per run
    assert [c.strip() for c in plan_table[0].split("|")][5] == "params"
    params = [row.split("|")[5].strip() for row in plan_table[2:]]
    assert len(params) == 10 and all(re.fullmatch(r"\d+\.\dB", p) for p in params), params


def test_doctor_exits_1_when_the_judge_endpoint_is_unreachable(capsys):
    closed = f"http://127.0.0.1:{free_port()}/v1"
    assert main(["doctor", "--judge-url", closed]) == 1
    captured = capsys.readouterr()
    assert "unreachable" in captured.out
    assert captured.err.startswith(f"gadbench doctor: the judge endpoint {closed} is unreachable (")
    with LoopbackServer() as server:
        assert main(["doctor", "--judge-url", server.url]) == 0
    assert "reachable (HTTP" in capsys.readouterr().out


def test_the_time_left_is_seconds_per_step_so_far_times_the_steps_to_come():
    from gadbench.runner import SuiteClock, steps_for
    from gadbench.suite import get_suite, runs_of

    suite = get_suite(str(TINY), ["methods.gad-offpolicy={kind: gad-offpolicy}"])  # 4 + 4 + (2 + 40 + 2) steps
    seqkd, gad, off = runs_of(suite)
    clock = SuiteClock([seqkd, gad, off], steps_for(suite))
    assert clock.left() == "time left estimated after the first run"
    clock.done(seqkd.run_id, 10.0)  # 2.5 s per step, 48 steps to come
    assert clock.left() == "about 2 min 00 s left (estimate)"
    clock.skip(gad.run_id)  # complete already (--resume): 44 steps to come
    assert clock.left() == "about 1 min 50 s left (estimate)"
