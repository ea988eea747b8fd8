"""A run's directory: where each file of a run lives, and its checkpoints (docs/results-format.md).

    <out>/<suite>/<run_id>/  config.yaml  metrics.jsonl  budget.json  summary.json  eval/step-K/
                             checkpoints/step-K/ (gadbench.state.checkpoint: DCP shards, rng-<rank>.pt, KEEP at stage
                             ends, complete.json, manifest.json)
    <out>/cache/             answers of API teachers and judges, shared by the suites of one --out

A checkpoint is written to a temporary folder, marked complete (complete.json), sealed (below) and renamed into
place; only a folder under its real name with the marker counts, and pruning deletes the marker first, so
neither a crash while writing nor one while pruning leaves a partial checkpoint that passes for a complete
one. A failed write (disk full) raises `CheckpointWriteError` and leaves the previous checkpoint intact.
Before the rename, `seal` writes the folder's manifest after every other file: the size and sha256 of each
file in it (whatever files the checkpoint format writes). `intact_checkpoint` verifies checkpoints against
their manifests before one is loaded: a damaged one (bytes changed, a file cut short, emptied, missing or
added, the manifest missing or unreadable) is passed over with a warning for the newest intact one, and when
none is left `--resume` stops in one line naming the damaged file. The sha256 reads every byte of a
checkpoint once more at each write and each resume (several files at once).

One owner per run (`RunLock`): an exclusive OS lock that a process holds on a run while it may write the
run's files: `fcntl.flock` on `<out>/<suite>/.<run_id>.lock`, beside the run directory (a fresh start deletes
the run directory, never its lock file). The kernel drops the lock when its holder ends in any way, kill -9
included, so a crashed run needs no cleanup: `--resume` may follow at once. The lock file's content names the
holder (PID, host, start time) for the message that another process gets; the content is not the lock.
Children forked while a lock is held close their copy of it, so the lock ends with its owner alone.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from gadbench import GadbenchError
from gadbench.io import atomic_write_json, kill_point

log = logging.getLogger("gadbench")

MANIFEST = "manifest.json"  # a checkpoint folder's {file: {"size", "sha256"}}, written after every other file


class CheckpointWriteError(GadbenchError, OSError):
    """A checkpoint could not be written (e.g. no space left); the previous checkpoint is intact."""


class CheckpointDamagedError(GadbenchError, OSError):
    """A checkpoint does not match its manifest; the message names the damaged file."""


@dataclass(frozen=True)
class RunDir:
    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def budget(self) -> Path:
        return self.path / "budget.json"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def cache(self) -> Path:
        """The cache of the `--out` root the run's suite lives in."""
        return self.path.parent.parent / "cache"

    def eval_dir(self, step: int) -> Path:
        return self.path / "eval" / f"step-{step}"

    def eval_steps(self) -> list[int]:
        """Steps with a complete evaluation (eval/step-K/metrics.json)."""
        return sorted(int(p.parent.name.split("-")[1]) for p in (self.path / "eval").glob("step-*/metrics.json")
                      if p.parent.name.split("-")[1].isdigit())

    # ------------------------------------------------------------------------------------- checkpoints

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"step-{step}"

    def checkpoint_steps(self) -> list[int]:
        """Steps with a complete checkpoint."""
        if not self.checkpoints.is_dir():
            return []
        return sorted(int(p.name.split("-")[1]) for p in self.checkpoints.glob("step-*")
                      if p.name.split("-")[1].isdigit() and (p / COMPLETE).exists())

    def latest_checkpoint(self) -> int:
        return max(self.checkpoint_steps(), default=0)

    def intact_checkpoint(self) -> int:
        """The newest checkpoint that matches its manifest (0 when there is no checkpoint). Each damaged one
        newer than it is named in a warning; when every checkpoint is damaged, CheckpointDamagedError."""
        damaged = []
        for step in reversed(self.checkpoint_steps()):
            problem = verify(self.checkpoint(step))
            if problem is None:
                return step
            damaged.append(problem)
            log.warning("checkpoint step-%d is damaged (%s); trying the one before it", step, problem)
        if damaged:
            raise CheckpointDamagedError(
                f"no intact checkpoint is left in {self.checkpoints} (the newest: {damaged[0]}); rerun without "
                "--resume to start the run over, or restore the checkpoints from a copy.")
        return 0

    def earlier_format_steps(self) -> list[int]:
        """Steps whose checkpoint an earlier gadbench wrote (one state.pt file), which this version does not read."""
        return sorted(int(p.parent.name.split("-")[1]) for p in self.checkpoints.glob("step-*/state.pt")
                      if p.parent.name.split("-")[1].isdigit())

    def new_checkpoint_dir(self, step: int) -> Path:
        """An empty temporary folder for checkpoint `step`, beside the checkpoints."""
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=self.checkpoints, prefix=f".step-{step}."))

    def commit_checkpoint(self, tmp: Path, step: int, info: dict, keep_stage_end: bool, keep_newest: int) -> None:
        """Make the written folder `tmp` checkpoint `step`: KEEP at stage ends, complete.json (`info`), the
        manifest last (`seal`), then the rename; then keep the newest `keep_newest` checkpoints plus those marked
        as stage ends."""
        if keep_stage_end:
            (tmp / "KEEP").touch()
        atomic_write_json(tmp / COMPLETE, info)
        kill_point("mid-checkpoint", step)
        seal(tmp)
        final = self.checkpoint(step)
        if final.exists():
            _remove(final)
        tmp.rename(final)
        kill_point("after-checkpoint-rename", step)
        self._prune(keep_newest)

    def _prune(self, keep_newest: int) -> None:
        """Also deletes what crashes left: temporary folders, and folders whose deletion was cut short."""
        for tmp in self.checkpoints.glob(".step-*"):
            shutil.rmtree(tmp, ignore_errors=True)
        done = self.checkpoint_steps()
        for path in self.checkpoints.glob("step-*"):
            if path.name.split("-")[1].isdigit() and int(path.name.split("-")[1]) not in done:
                _remove(path)
        for step in done[:-keep_newest]:
            if not (self.checkpoint(step) / "KEEP").exists():
                _remove(self.checkpoint(step))


COMPLETE = "complete.json"  # a checkpoint folder's marker, written before its manifest


def _remove(folder: Path) -> None:
    """Delete a checkpoint folder, its marker first: a crash halfway leaves a folder that no longer counts."""
    (folder / COMPLETE).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


class WriteRecorder:
    """A file that keeps the OSError of a failed write (no space left, file too large), which torch.save
    writing through it reports as an opaque RuntimeError; everything else is the file's own."""

    def __init__(self, f):
        self.f, self.error = f, None

    def __getattr__(self, name: str):
        return getattr(self.f, name)

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        try:
            self.f.flush()
        except OSError as e:
            self.error = e
            raise


def save_state(state: dict, path: Path) -> None:
    """torch.save to `path`, flushed to disk; a failed write raises its OSError."""
    import torch

    with open(path, "wb") as f:
        sink = WriteRecorder(f)
        try:
            torch.save(state, sink)
        except RuntimeError:
            if sink.error is None:
                raise
            raise sink.error from None
        f.flush()
        os.fsync(f.fileno())


# ------------------------------------------------------------------------------------------- manifest


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def _sha256s(folder: Path, names: list[str]) -> dict[str, str]:
    """sha256 of each file, several files at once (hashlib releases the GIL: a sharded checkpoint's files hash
    in parallel)."""
    with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1, len(names)))) as pool:
        return dict(zip(names, pool.map(lambda name: _sha256(folder / name), names), strict=True))


def seal(folder: Path) -> None:
    """Write `folder`'s manifest: the size and sha256 of every file in it (subfolders included), written last
    and flushed to disk, so a folder with a manifest had all its files written before it."""
    folder = Path(folder)
    names = _files(folder)
    files = {name: {"size": (folder / name).stat().st_size, "sha256": sha}
             for name, sha in _sha256s(folder, names).items()}
    with open(folder / MANIFEST, "w", encoding="utf-8") as f:
        json.dump(files, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())


def verify(folder: Path) -> str | None:
    """None when every file of `folder`'s manifest is there with its size and sha256 and no file was added;
    else what is wrong, naming the file."""
    folder = Path(folder)
    try:
        listed = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        assert isinstance(listed, dict) and all(isinstance(v, dict) for v in listed.values())
    except FileNotFoundError:
        return f"{folder / MANIFEST} is missing (an earlier gadbench wrote none, or the folder was damaged)"
    except (OSError, ValueError, AssertionError):
        return f"{folder / MANIFEST} is not a readable manifest"
    for name in sorted(set(_files(folder)) - set(listed)):
        return f"{folder / name} is not in the manifest"
    for name, want in sorted(listed.items()):
        path = folder / name
        if not path.is_file():
            return f"{path} is missing"
        size = path.stat().st_size
        if size != want.get("size"):
            return f"{path} has {size} bytes, the manifest {want.get('size')}"
    for name, sha in _sha256s(folder, sorted(listed)).items():
        if sha != listed[name].get("sha256"):
            return f"{folder / name} does not match its sha256 in the manifest"
    return None


# ---------------------------------------------------------------------------------------------- owner

_HELD: set[int] = set()  # file descriptors of the locks this process holds


def _drop_inherited() -> None:
    """In a forked child: close the inherited lock descriptors (the parent keeps its locks)."""
    for fd in _HELD:
        os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_drop_inherited)


class RunLockError(GadbenchError):
    """A run that this process may not own now: another process holds it, or its lock cannot be taken."""


def lock_path(run_dir: Path) -> Path:
    return run_dir.parent / f".{run_dir.name}.lock"


class RunLock:
    """The lock of run directory `run_dir`; `with RunLock(run_dir, fix):` owns the run for the block.

    Taking it never waits: when another process holds it, `acquire` raises RunLockError naming the run, the
    holder's PID and host, and `fix` (what to do instead)."""

    def __init__(self, run_dir: str | Path, fix: str):
        self.run_dir = Path(run_dir)
        self.path = lock_path(self.run_dir)
        self.fix = fix
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise RunLockError(f"cannot create the lock file {self.path} ({e.strerror}); check that the results "
                               "folder is writable.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLockError(f"run {self.run_dir.name} is in use by {describe(read_holder(self.path))}; "
                               f"{self.fix}.") from None
        except OSError as e:
            os.close(fd)
            raise RunLockError(f"cannot lock {self.path} ({e.strerror}): this filesystem has no file locks; put "
                               "--out on one that has (a local disk or NFSv4).") from None
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "since": time.strftime("%Y-%m-%d %H:%M:%S")})
        os.ftruncate(fd, 0)
        os.pwrite(fd, (record + "\n").encode(), 0)
        self._fd = fd
        _HELD.add(fd)

    def release(self) -> None:
        """Give the run up (closing the descriptor drops the lock); the lock file stays for the next owner."""
        if self._fd is not None:
            _HELD.discard(self._fd)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def read_holder(path: Path, tries: int = 20) -> dict | None:
    """The holder's record in lock file `path`, or None when it cannot be read; a holder that has just taken
    the lock writes its record a moment later, hence the few tries."""
    for _ in range(tries):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(record, dict):
                return record
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    return None


def describe(record: dict | None) -> str:
    if not record:
        return "another process (its PID is not recorded)"
    return f"PID {record.get('pid')} on host {record.get('host')} (since {record.get('since')})"
