"""CI regression: compare a suite's headline metrics with `baselines/ci/<suite>.json`.

A baseline file maps `<student>--<method>--s<seed>/<dataset>/<metric>` to `{"value": v, "tolerance": t}`; a metric
moved when |ours - value| > tolerance. `gadbench run --suite ci --update-baseline` rewrites the values and
keeps each tolerance (new entries get the metric's entry in DEFAULT_TOLERANCE). The ci suite pins the CPU
kernels (`train.portable_cpu`), so on x86 its runs reproduce bitwise across machines; the tolerances (about
two items of a 48-item set for accuracy) only absorb other library builds, and a real change moves more.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tabulate import tabulate

from gadbench import GadbenchError
from gadbench.io import atomic_write_json, read_json

DEFAULT_TOLERANCE = {"gold/teacher_logprob": 0.05, "gold/accuracy": 0.05, "length": 0.5}
TRACKED = tuple(DEFAULT_TOLERANCE)


def current_metrics(suite_dir: Path) -> dict[str, float]:
    out = {}
    for path in sorted(Path(suite_dir).glob("*/summary.json")):
        s = read_json(path)
        for dataset, metrics in s.get("eval", {}).items():
            for name in TRACKED:
                value = (metrics.get(name) or {}).get("mean")
                if value is not None:
                    out[f"{s['student']}--{s['method']}--s{s['seed']}/{dataset}/{name}"] = round(float(value), 4)
    return out


class BaselineMissingError(GadbenchError, FileNotFoundError):
    """The suite's baseline file is missing and --update-baseline was not given."""


def check_baseline(baseline: Path, update: bool = False) -> None:
    """A baseline that is not there is compared with nothing: stop in one line, unless `update` will write it."""
    if not update and not Path(baseline).is_file():
        raise BaselineMissingError(
            f"the regression baseline {baseline} does not exist; fix `baseline:` in the suite file (a relative path "
            "is read from the suite file's folder), or pass --update-baseline to write it from this run.")


def _default(key: str) -> float:
    return DEFAULT_TOLERANCE[key.split("/", 1)[1].split("/", 1)[1]]


def compare_to_baseline(suite_dir: Path, baseline: Path, update: bool = False) -> int:
    """0 when every tracked metric is within its tolerance (or after an update), 1 otherwise; a missing baseline
    without `update` raises BaselineMissingError."""
    check_baseline(baseline, update)
    ours = current_metrics(suite_dir)
    if update:
        old = read_json(baseline) if baseline.exists() else {}
        atomic_write_json(baseline, {k: {"value": v, "tolerance": old.get(k, {}).get("tolerance", _default(k))}
                                     for k, v in ours.items()})
        print(f"baseline written: {baseline} ({len(ours)} metrics)")
        return 0
    base = read_json(baseline)
    rows, failed = [], 0
    for key in sorted(set(base) | set(ours)):
        ref, value = base.get(key), ours.get(key)
        if ref is None or value is None:
            rows.append([key, ref and ref["value"], value, "", "missing" if value is None else "new"])
            failed += value is None
            continue
        moved = abs(value - ref["value"]) > ref["tolerance"]
        failed += moved
        rows.append([key, ref["value"], value, ref["tolerance"], "MOVED" if moved else "ok"])
    shown = [r for r in rows if r[4] != "ok"] or rows
    print(tabulate(shown, headers=["metric", "baseline", "now", "tolerance", "status"], tablefmt="github"))
    if failed:
        print(f"\n{failed} metric(s) moved beyond tolerance; if the change is intended, run "
              f"`gadbench run --suite ci --update-baseline` and commit {baseline}.", file=sys.stderr)
        return 1
    print(f"\nall {len(rows)} tracked metrics within tolerance of {baseline}")
    return 0
