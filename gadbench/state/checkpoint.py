"""Checkpoints written with torch.distributed.checkpoint (DCP): each process writes its own shards, and any
process count or sharding reads them back.

    checkpoints/step-K/
      .metadata, __<rank>_0.distcp   the parts g, d, ref (model states) and g_opt, d_opt (AdamW states), keyed by
                                     parameter name; under FSDP each process writes its shards, and a tensor that
                                     every process holds (a replica) is written once
      rng-<rank>.pt                  each process's RNG states (torch, CUDA, Python, NumPy)
      KEEP                           a stage end: pruning keeps it
      complete.json                  {"step", "parts", "processes", "sharding", "meter"}
      manifest.json                  written last: the size and sha256 of every other file (gadbench.rundir.seal)

Writing: process 0 makes a temporary folder `.step-K.*`; every process writes its shards and RNG states into
it; process 0 then writes complete.json and the manifest and renames the folder to step-K (gadbench.rundir). Only a folder
under its real name holding complete.json is a checkpoint, so a crash at any moment leaves the earlier ones
as they were. Reading: `load` fills the models and optimizers it is given, whatever their sharding: DCP reads
the slices each process needs (saved by 2 FSDP processes, read by 1, 2 or 8), and only the parts asked for
(`gadbench eval` reads G alone). An optimizer with no state yet (before its first step) is not saved, and a
resumed one stays fresh.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint import FileSystemReader, FileSystemWriter
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.filesystem import FileSystem
from torch.distributed.checkpoint.metadata import TensorStorageMetadata
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from gadbench import dist
from gadbench.io import read_json
from gadbench.rundir import CheckpointWriteError, RunDir, WriteRecorder, save_state

Optimizers = dict[str, tuple[nn.Module, torch.optim.Optimizer]]  # part -> (model, its optimizer)


def save(run: RunDir, step: int, models: dict[str, nn.Module], optimizers: Optimizers, info: dict,
         keep_stage_end: bool, keep_newest: int) -> None:
    """Write checkpoint `step` of `models` (part -> model) and `optimizers` (those with state), every process's
    RNG states and `info` (into complete.json, with the parts), then prune (`RunDir.commit_checkpoint`). Every
    process calls it. A failed write raises CheckpointWriteError and leaves the earlier checkpoints intact."""
    states = {part: get_model_state_dict(m) for part, m in models.items()}
    states.update({part: get_optimizer_state_dict(m, opt) for part, (m, opt) in optimizers.items() if opt.state})
    tmp = Path(dist.from_main(lambda: str(run.new_checkpoint_dir(step))))
    writer = FileSystemWriter(tmp)
    writer.fs = fs = _RecordingFileSystem()
    try:
        with _interrupt_afterwards(), _alone_quietly() as single:
            dcp.save(states, storage_writer=writer, no_dist=single)
            save_state(_rng_state(), tmp / f"rng-{dist.rank()}.pt")
            dist.barrier()
            if dist.is_main():
                run.commit_checkpoint(tmp, step, {**info, "step": step, "parts": sorted(states)}, keep_stage_end,
                                      keep_newest)
    except (OSError, CheckpointException) as e:
        cause = _os_error(e, fs)
        if cause is None:
            raise
        if dist.is_main():
            shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointWriteError(
            f"could not write the checkpoint of step {step} ({cause.strerror or cause}); the previous checkpoint "
            f"(step {run.latest_checkpoint()}) is intact. Free disk space under {run.checkpoints} and rerun with "
            "--resume."
        ) from None
    dist.barrier()


@contextlib.contextmanager
def _interrupt_afterwards():
    """Ctrl-C (SIGINT) during the block raises KeyboardInterrupt when the block ends, not inside it: DCP turns
    an interrupt inside its writes into a CheckpointException, and the checkpoint being written is then lost.
    Only the main thread can hold signal handlers; elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda *_: caught.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
    if caught:
        raise KeyboardInterrupt


def read_info(run: RunDir, step: int) -> dict:
    """complete.json of checkpoint `step`: step, parts, processes, sharding, meter."""
    return read_json(run.checkpoint(step) / "complete.json")


def load(run: RunDir, step: int, models: dict[str, nn.Module], optimizers: Optimizers | None = None) -> None:
    """Fill `models` and `optimizers` (parts of checkpoint `step`) in place; only those parts are read. A
    collective when several processes run."""
    optimizers = optimizers or {}
    states = {part: get_model_state_dict(m) for part, m in models.items()}
    # A fresh optimizer gets its state's structure from one zero-gradient step at lr 0 (torch's
    # _init_optim_state: the weights do not move); the loaded values replace it, step count included.
    states.update({part: get_optimizer_state_dict(m, opt) for part, (m, opt) in optimizers.items()})
    with _alone_quietly() as single:
        dcp.load(states, checkpoint_id=run.checkpoint(step), no_dist=single)
    for part, m in models.items():
        set_model_state_dict(m, states[part])
    for part, (m, opt) in optimizers.items():
        set_optimizer_state_dict(m, opt, states[part])


def restore_rng(run: RunDir, step: int) -> None:
    """This process's RNG states from checkpoint `step`: its own rank's, or process 0's when the checkpoint was
    written by fewer processes."""
    folder = run.checkpoint(step)
    path = folder / f"rng-{dist.rank()}.pt"
    rng = torch.load(path if path.exists() else folder / "rng-0.pt", weights_only=False)
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def read_part(folder: str | Path, part: str) -> dict[str, torch.Tensor]:
    """The full tensors of one part of a checkpoint folder, by name (an optimizer's as `state.<param>.<key>`),
    read in this process without a model: for inspecting checkpoints and for tests."""
    reader = FileSystemReader(folder)
    prefix = part + "."
    target = {key: torch.empty(m.size, dtype=m.properties.dtype)
              for key, m in reader.read_metadata().state_dict_metadata.items()
              if key.startswith(prefix) and isinstance(m, TensorStorageMetadata)}
    with _alone_quietly():
        dcp.load(target, storage_reader=reader, no_dist=True)
    return {key[len(prefix):]: t for key, t in target.items()}


@contextlib.contextmanager
def _alone_quietly():
    """Yields whether this process reads and writes alone (no process group: one process, `gadbench eval`),
    without DCP's warning that it then assumes so."""
    single = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is (disabled, )?unavailable or uninitialized")
        yield single


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _os_error(e: BaseException, fs: _RecordingFileSystem) -> OSError | None:
    """The OSError behind a failed write: `e` itself, one this process's DCP files recorded, or one another
    process raised (DCP hands every process a CheckpointException listing each process's failure)."""
    if isinstance(e, OSError):
        return e
    recorded = [r.error for r in fs.streams if r.error]
    failures = [exc for exc, _ in getattr(e, "failures", {}).values() if isinstance(exc, OSError)]
    return (recorded + failures or [None])[0]


class _RecordingFileSystem(FileSystem):
    """DCP's local filesystem, its files written through WriteRecorder: a failed write (no space left, file too
    large) inside DCP's torch.save surfaces as an opaque RuntimeError, and this keeps the OSError behind it."""

    def __init__(self):
        self.streams: list[WriteRecorder] = []

    @contextlib.contextmanager
    def create_stream(self, path, mode: str):
        with super().create_stream(path, mode) as stream:
            self.streams.append(WriteRecorder(stream))
            yield self.streams[-1]
