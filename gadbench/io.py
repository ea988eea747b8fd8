"""Crash-safe file primitives: atomic writes (temp file + fsync + rename), torn-line-tolerant JSONL, reads that
name a damaged file, and the named kill points that crash tests stop a process at (`kill_point`)."""

from __future__ import annotations

import json
import os
import signal
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from gadbench import GadbenchError

KILL_AT = "GADBENCH_KILL_AT"


def kill_point(name: str, step: int | None = None) -> None:
    """SIGKILL this process, as `kill -9` would, when $GADBENCH_KILL_AT names point `name` (as `NAME`, or
    `NAME:STEP` for its step `step`); unset, a point costs one lookup. The points, in a run's order:
    after-metrics-row (a step's log row written), mid-eval (a set's rows written, metrics.json not yet),
    after-eval, mid-checkpoint (state written, manifest not yet), after-checkpoint-rename (before pruning),
    before-summary, after-summary (before the suite's budget check and report)."""
    wanted = os.environ.get(KILL_AT)
    if wanted and wanted in (name, f"{name}:{step}"):
        os.kill(os.getpid(), signal.SIGKILL)


REBUILD_FIX = "restore it from a copy, or delete it and rerun with --resume to rebuild it"


class DamagedFileError(GadbenchError, ValueError):
    """A results file that cannot be read (truncated, overwritten, not UTF-8): `problem` names the file and what
    is wrong with it, `fix` what to do; the message is both."""

    def __init__(self, problem: str, fix: str):
        super().__init__(f"{problem}; {fix}.")
        self.problem, self.fix = problem, fix


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the new one, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def file_problem(path: str | Path) -> str | None:
    """Why a file cannot be written at `path` (it is a folder, lies under a file, or its nearest existing folder
    takes no new file: a probe file is created there and deleted at once), or None."""
    path = Path(path)
    if path.is_dir():
        return f"{path} is a folder, not a file"
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"{path} lies under {folder}, which is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        return f"no file can be written in {folder} ({e.strerror or e})"
    return None


def read_json(path: str | Path, fix: str = REBUILD_FIX) -> Any:
    """The JSON value in `path`; a damaged file raises DamagedFileError naming it, where, and `fix`."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DamagedFileError(f"{path} is damaged: byte 0x{data[e.start]:02x} at line {line} is not UTF-8 text",
                               fix) from None
    except json.JSONDecodeError as e:
        raise DamagedFileError(f"{path} is damaged: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})",
                               fix) from None


def append_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    """Append rows, one JSON object per line, and fsync; a crash can only tear the last line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r, sort_keys=True, default=_json_default) + "\n" for r in rows)
    with open(path, "a", encoding="utf-8") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | Path) -> Iterator[dict]:
    """Yield the complete JSON lines of `path`; a torn (unterminated, unparsable or cut mid-character) last line
    is skipped. A damaged line before it raises DamagedFileError naming the file and the line."""
    path = Path(path)
    if not path.exists():
        return
    lines = path.read_bytes().split(b"\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            yield json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            if i >= len(lines) - 2:  # the last written line, torn by a crash
                return
            what = "is not UTF-8 text" if isinstance(e, UnicodeDecodeError) else "is not valid JSON"
            raise DamagedFileError(f"{path}: line {i + 1} {what}", "fix or remove that line") from None


def truncate_jsonl(path: str | Path, keep: int) -> None:
    """Rewrite `path` atomically with only its first `keep` complete rows (used when resuming)."""
    rows = list(read_jsonl(path))[:keep]
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


_UMASK = os.umask(0)
os.umask(_UMASK)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
