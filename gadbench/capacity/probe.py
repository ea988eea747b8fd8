"""Measured peak memory of each phase of a run (`train.log_memory`).

On a GPU, what torch allocated: the peak statistics are reset as a phase starts (`reset_peak_memory_stats`)
and read as it ends (`max_memory_allocated`); the CUDA context, NCCL's buffers and the allocator's cached but
free blocks are not counted (the plan adds them as a reserve). On the host, and so on CPU runs, the resident
set: Linux's peak (VmHWM in /proc/self/status) is reset to the current resident size as a phase starts
(writing 5 to /proc/self/clear_refs) and read as it ends. That is what the OS charges the process, everything
included (allocator overhead, Python objects), at the cost of two small file operations per phase. glibc
keeps freed blocks below its mmap threshold for reuse, which hides later allocations from the resident set;
MALLOC_MMAP_THRESHOLD_=65536 in the environment gives every larger tensor back to the OS when freed, so that
each phase's peak is its own (docs/scale.md, how the model was validated).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

_STATUS, _CLEAR = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def _status(key: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    return 0


def host_resident() -> int:
    """Bytes this process has resident now (0 where /proc is missing)."""
    return _status("VmRSS:") if _STATUS.exists() else 0


def _host_reset() -> None:
    if _CLEAR.exists():
        _CLEAR.write_text("5")


def _host_peak() -> int:
    return _status("VmHWM:") if _STATUS.exists() else 0


class PeakMeter:
    """Per phase, the largest peak seen (bytes) with the memory in use as that phase started: `peaks[name] =
    {"host": [start, peak], "device": [start, peak]}` ("device" on GPUs only). Phases may nest: an outer
    phase's peak includes its inner phases'. `taken()` returns and clears the peaks since the last call."""

    def __init__(self, cuda: bool = False):
        self.cuda = cuda
        self.peaks: dict[str, dict[str, list[int]]] = {}
        self.recent: dict[str, int] = {}
        self._open: list[dict[str, int]] = []  # per open phase: the largest peak seen while an inner one ran

    def _now(self) -> dict[str, int]:
        out = {"host": host_resident()}
        if self.cuda:
            import torch

            out["device"] = torch.cuda.memory_allocated()
        return out

    def _peak(self) -> dict[str, int]:
        out = {"host": _host_peak()}
        if self.cuda:
            import torch

            out["device"] = torch.cuda.max_memory_allocated()
        return out

    def _reset(self) -> None:
        _host_reset()
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()

    def _fold(self, peak: dict[str, int]) -> None:
        if self._open:
            outer = self._open[-1]
            for k, v in peak.items():
                outer[k] = max(outer.get(k, 0), v)

    @contextlib.contextmanager
    def measure(self, name: str):
        self._fold(self._peak())  # the enclosing phase's peak so far survives the reset below
        self._reset()
        start = self._now()
        self._open.append({})
        try:
            yield
        finally:
            inner = self._open.pop()
            peak = {k: max(v, inner.get(k, 0)) for k, v in self._peak().items()}
            self._fold(peak)
            for k, v in peak.items():
                kept = self.peaks.setdefault(name, {}).get(k)
                if kept is None or v > kept[1]:
                    self.peaks[name][k] = [start[k], v]
            key = "device" if self.cuda else "host"
            self.recent[name] = max(self.recent.get(name, 0), peak[key])

    def taken(self) -> dict[str, int]:
        out, self.recent = self.recent, {}
        return out
