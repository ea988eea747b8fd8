"""A run's directory: where each file of a run lives, and its checkpoints (docs/results-format.md).

    <out>/<suite>/<run_id>/  config.yaml  metrics.jsonl  budget.json  summary.json  eval/step-K/
                             checkpoints/step-K/state.pt (+ KEEP at stage ends)
    <out>/cache/             answers of API teachers and judges, shared by the suites of one --out

A checkpoint is written to a temporary folder and renamed into place, so a crash never leaves a partial
checkpoint under a real name; a failed write (disk full) raises `CheckpointWriteError` and leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gadbench import GadbenchError


class CheckpointWriteError(GadbenchError, OSError):
    """A checkpoint could not be written (e.g. no space left); the previous checkpoint is intact."""


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
        return self.checkpoints / f"step-{step}" / "state.pt"

    def checkpoint_steps(self) -> list[int]:
        """Steps with a complete checkpoint."""
        if not self.checkpoints.is_dir():
            return []
        return sorted(int(p.name.split("-")[1]) for p in self.checkpoints.glob("step-*")
                      if p.name.split("-")[1].isdigit() and (p / "state.pt").exists())

    def latest_checkpoint(self) -> int:
        return max(self.checkpoint_steps(), default=0)

    def load_checkpoint(self, step: int) -> dict:
        """Memory-mapped on the CPU: every process reads the same pages, and nothing lands on one GPU."""
        import torch

        return torch.load(self.checkpoint(step), map_location="cpu", mmap=True, weights_only=False)

    def write_checkpoint(self, state: dict, step: int, keep_stage_end: bool, keep_newest: int) -> None:
        """Write `state` as step `step` (atomically), then keep the newest `keep_newest` checkpoints plus
        those marked as stage ends."""
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        final = self.checkpoints / f"step-{step}"
        tmp = Path(tempfile.mkdtemp(dir=self.checkpoints, prefix=f".step-{step}."))
        try:
            _save_state(state, tmp / "state.pt")
            if keep_stage_end:
                (tmp / "KEEP").touch()
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise CheckpointWriteError(
                f"could not write the checkpoint of step {step} ({e.strerror or e}); the previous checkpoint "
                f"(step {self.latest_checkpoint()}) is intact. Free disk space under {self.checkpoints} and "
                "rerun with --resume."
            ) from None
        self._prune(keep_newest)

    def _prune(self, keep_newest: int) -> None:
        for tmp in self.checkpoints.glob(".step-*"):
            shutil.rmtree(tmp, ignore_errors=True)
        done = sorted((int(p.name.split("-")[1]), p) for p in self.checkpoints.glob("step-*"))
        for _, path in done[:-keep_newest]:
            if not (path / "KEEP").exists():
                shutil.rmtree(path, ignore_errors=True)


class _WriteRecorder:
    """The file torch.save writes through: it keeps the OSError of a failed write (no space left, file too
    large), which torch.save alone reports as an opaque RuntimeError."""

    def __init__(self, f):
        self.f, self.error = f, None

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


def _save_state(state: dict, path: Path) -> None:
    """torch.save to `path`, flushed to disk; a failed write raises its OSError."""
    import torch

    with open(path, "wb") as f:
        sink = _WriteRecorder(f)
        try:
            torch.save(state, sink)
        except RuntimeError:
            if sink.error is None:
                raise
            raise sink.error from None
        f.flush()
        os.fsync(f.fileno())
