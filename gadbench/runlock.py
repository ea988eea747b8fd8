"""One owner per run: an exclusive OS lock that a process holds on a run while it may write the run's files.

The lock is `fcntl.flock` on `results/<suite>/.<run_id>.lock`, beside the run directory (a fresh start deletes
the run directory, never its lock file). The kernel drops the lock when its holder ends in any way, kill -9
included, so a crashed run needs no cleanup: `--resume` may follow at once. The lock file's content names the
holder (PID, host, start time) for the message that another process gets; the content is not the lock.
Children forked while a lock is held close their copy of it, so the lock ends with its owner alone.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from gadbench.errors import OneLineError

_HELD: set[int] = set()  # file descriptors of the locks this process holds


def _drop_inherited() -> None:
    """In a forked child: close the inherited lock descriptors (the parent keeps its locks)."""
    for fd in _HELD:
        os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_drop_inherited)


class RunLockError(OneLineError):
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
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
