"""Live tracking of a run through the libraries researchers watch training with (`log.tracker`).

One tracker run per gadbench run, opened on process 0 only, with the run's resolved config (its config.yaml as
a mapping). Logged at their step: every field of each metrics.jsonl row (numbers as scalars, booleans as 0/1,
text such as `stage` as text), and after each evaluation the means of eval/step-K/metrics.json as
`eval/<set>/<metric>` (`flat_means`).

    tensorboard  event files in <run_dir>/tensorboard/ (`tensorboard --logdir results/<suite>`); a resumed
                 run purges the events its checkpoint had not reached (SummaryWriter's purge_step)
    trackio      trackio's local store ($TRACKIO_DIR, else its default), project `log.project`, run named by
                 the run id; `trackio show --project gadbench`
    wandb        <run_dir>/wandb/, offline (WANDB_MODE=offline) unless $WANDB_API_KEY or $WANDB_MODE is set;
                 `wandb sync <run_dir>/wandb/offline-run-*` uploads it later

The wandb and trackio run ids live in <run_dir>/tracker.json, so `--resume` continues the same tracker run and
`--force` (which deletes the run directory) starts a new one. The three adapters are in `trackers`; each
imports its library when it opens.
"""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path
from typing import Protocol

from gadbench.config import LogConfig, RunSpec, to_dict
from gadbench.io import atomic_write_json, read_json

MODULES = {"tensorboard": "tensorboard", "trackio": "trackio", "wandb": "wandb"}  # log.tracker -> import name


class Tracker(Protocol):
    def log(self, values: dict, step: int) -> None: ...

    def close(self) -> None: ...


def missing_tracker(cfg: LogConfig) -> str | None:
    """What is missing for `cfg.tracker` (its library), or None."""
    module = MODULES.get(cfg.tracker)
    if module and importlib.util.find_spec(module) is None:
        return f"the {cfg.tracker} package for log.tracker={cfg.tracker} (pip install {cfg.tracker})"
    return None


def open_tracker(cfg: LogConfig, spec: RunSpec, run_dir: Path) -> Tracker | None:
    """The tracker of one run (None for `none`); call on process 0 only."""
    if cfg.tracker == "none":
        return None
    from gadbench.tracking.trackers import TensorBoard, Trackio, Wandb

    config = to_dict(spec)
    if cfg.tracker == "tensorboard":
        return TensorBoard(run_dir / "tensorboard", config)
    ident, existed = _tracker_id(run_dir, cfg.tracker)
    if cfg.tracker == "trackio":
        return Trackio(cfg.project, spec.run_id, existed, config)
    return Wandb(cfg.project, spec.run_id, ident, run_dir, config)


def _tracker_id(run_dir: Path, tracker: str) -> tuple[str, bool]:
    """(the tracker's id of this run, whether it existed): kept in <run_dir>/tracker.json for `--resume`."""
    path = run_dir / "tracker.json"
    record = read_json(path) if path.exists() else {}
    if record.get("tracker") == tracker and record.get("id"):
        return record["id"], True
    record = {"tracker": tracker, "id": uuid.uuid4().hex[:16]}
    atomic_write_json(path, record)
    return record["id"], False


def flat_means(metrics: dict, prefix: str = "eval") -> dict[str, float]:
    """eval/step-K/metrics.json flattened: `<prefix>/<set>/<metric>` -> the mean of a statistic with a `mean`,
    a number as it is (teacher_length, D's diagnostics); lists (n-gram curves) are left out."""
    out = {}
    for key, value in metrics.items():
        name = f"{prefix}/{key}"
        if isinstance(value, dict) and "mean" in value:  # a statistic; its mean is None when no item was valid
            if isinstance(value["mean"], int | float):
                out[name] = float(value["mean"])
        elif isinstance(value, dict):
            out.update(flat_means(value, name))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out
