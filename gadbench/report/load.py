"""Read stored results (a run directory or results/<suite>/) into plain Run and Suite objects.

Seeds are pooled only across runs of one configuration: a run's configuration is its config.yaml minus its
seed. A suite folder can hold runs of several configurations of one method (`gadbench run --set ...` into an
--out that already held the suite): the configuration of the runs suite.json lists (the latest invocation)
is reported and the others are left out (`Suite.superseded`, named in the report); where suite.json does not
settle it, the report refuses with one line (MixedConfigurations). The points of a method's hyperparameter
search are methods of their own (`<method>+<key>=<value>`), so they never meet here."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gadbench import GadbenchError
from gadbench.io import DamagedFileError, read_json, read_jsonl
from gadbench.report.naming import student_label

log = logging.getLogger("gadbench")


@dataclass(frozen=True)
class Identity:
    """What a run is, as its summary.json stores it: the method record's report identity (gadbench.methods) or the
    suite's `before`/teacher rows; the report reads it and infers nothing. A run without a summary (unfinished)
    is known by its method name alone."""

    key: str  # matches baselines/paper.json: gad, gad:d_loss=ce, seqkd, before, teacher, ...
    family: str  # the base method: teacher, before, seqkd, gad, ...
    label: str
    group: str | None = None  # None: a main-table method; else the ablation it belongs to
    description: str = ""

    @classmethod
    def read(cls, stored: dict | None, method: str) -> Identity:
        if not isinstance(stored, dict) or not stored.get("key"):
            return cls(method, method, method)
        return cls(str(stored["key"]), str(stored.get("family") or stored["key"]), str(stored.get("label") or method),
                   stored.get("group"), str(stored.get("description") or ""))


@dataclass
class Run:
    run_id: str
    path: Path
    config: dict
    summary: dict | None
    metrics: list[dict]
    budget: dict | None
    evals: dict[int, dict[str, list[dict]]]  # step -> dataset file stem -> items
    eval_metrics: dict[int, dict]  # step -> eval/step-K/metrics.json (dataset -> statistics)
    toy: dict | None
    student: str
    teacher: str
    method: str
    seed: int
    identity: Identity

    @property
    def label(self) -> str:
        return f"{student_label(self.student)} {self.identity.label}{self.search_label} s{self.seed}"

    @property
    def base_method(self) -> str:
        """The method's name without its search point (`seqkd+lr_sft=0.003` -> `seqkd`)."""
        return self.method.split("+", 1)[0]

    @property
    def search_point(self) -> dict:
        """The run's point of its method's hyperparameter search (summary.json `search_point`), {} without one."""
        point = (self.summary or {}).get("search_point")
        return point if isinstance(point, dict) else {}

    @property
    def search_label(self) -> str:
        return "".join(f" {k}={v:g}" for k, v in self.search_point.items())

    @property
    def family(self) -> str:
        return self.identity.family

    @property
    def configuration(self) -> dict:
        """config.yaml minus the seed: what runs pooled as seeds of one row must share."""
        return {k: v for k, v in self.config.items() if k != "seed"}

    @property
    def row_key(self) -> tuple[str, str, str]:
        """(student, identity key, search point): the runs of one row of the report, one per seed."""
        return self.student, self.identity.key, self.search_label


@dataclass
class Suite:
    path: Path
    name: str
    meta: dict
    runs: list[Run]
    missing: list[str] = field(default_factory=list)  # run ids listed in suite.json without a directory
    superseded: list[tuple[str, str]] = field(default_factory=list)  # (run id, how its configuration differs)

    @property
    def is_paper(self) -> bool:
        return self.meta.get("paper_baseline") is True or self.name == "paper"


def load_results(path: str | Path) -> Suite:
    """Load a suite directory, or a single run directory as a suite of one."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a directory; pass a run directory or results/<suite>/.")
    if is_run(path):
        run = load_run(path)
        name = (run.summary or {}).get("suite") or path.parent.name
        return Suite(path, name, {}, [run])
    meta = _json_object(path / "suite.json") or {}
    listed = [str(r) for r in meta.get("runs", []) if isinstance(r, str)]
    found = sorted(p.name for p in path.iterdir() if p.is_dir() and is_run(p))
    order = [r for r in listed if r in found] + [r for r in found if r not in listed]
    runs = [load_run(path / r) for r in order]
    if not runs:
        raise ValueError(f"no runs under {path}: expected run directories with config.yaml or summary.json.")
    name = meta.get("suite") or meta.get("name") or path.name
    runs, superseded = one_configuration(runs, set(listed))
    _before_rows(runs)
    return Suite(path, str(name), meta, runs, [r for r in listed if r not in found], superseded)


def _before_rows(runs: list[Run]) -> None:
    """Give each `before` pseudo-run (a summary copied from a run's step-0 evaluation, gadbench.runner) the
    step-0 eval rows of a run of the same student and seed whose step-0 statistics it holds, so that its
    cells get the same intervals as every other row."""
    for b in runs:
        if b.family != "before" or b.evals or not b.summary:
            continue
        held = (b.summary or {}).get("eval") or {}
        for r in runs:
            m = r.eval_metrics.get(0)
            if (r is not b and r.student == b.student and r.seed == b.seed and m and 0 in r.evals
                    and {d: v for d, v in m.items() if d != "validation"} == held):
                b.evals = {0: r.evals[0]}
                break


class MixedConfigurations(GadbenchError):
    """Runs of one report row (student, method, search point) differ in more than their seed."""


def one_configuration(runs: list[Run], listed: set[str]) -> tuple[list[Run], list[tuple[str, str]]]:
    """The runs with one configuration per report row, and the (run id, difference) of each run left out.
    A row with several configurations keeps those of its runs that suite.json lists; if that leaves more than
    one (or suite.json lists none of them), MixedConfigurations names the runs and the differing settings."""
    rows: dict[tuple, list[Run]] = {}
    for r in runs:
        rows.setdefault(r.row_key, []).append(r)
    dropped: dict[str, str] = {}
    for row in rows.values():
        configs = _distinct([r.configuration for r in row])
        if len(configs) < 2:
            continue
        kept = _distinct([r.configuration for r in row if r.run_id in listed])
        if len(kept) != 1:
            a, b = row[0], next(r for r in row if r.configuration != row[0].configuration)
            raise MixedConfigurations(
                f"runs {a.run_id} and {b.run_id} differ in more than their seed ({differences(a.config, b.config)}), "
                "so they cannot be pooled as seeds; report each configuration from its own folder (move one set of "
                "run folders elsewhere, or run again into another --out)")
        for r in row:
            if r.configuration != kept[0]:
                current = next(x for x in row if x.configuration == kept[0])
                dropped[r.run_id] = differences(r.config, current.config)
    return [r for r in runs if r.run_id not in dropped], list(dropped.items())


def _distinct(configs: list[dict]) -> list[dict]:
    out: list[dict] = []
    for c in configs:
        if c not in out:
            out.append(c)
    return out


def differences(a: dict, b: dict, limit: int = 3) -> str:
    """The settings (dotted keys) whose values differ between configurations `a` and `b`, seed aside:
    `train.lr_generator 3e-05 vs 0.0001`."""
    fa, fb = _flat(a), _flat(b)
    keys = sorted(k for k in fa.keys() | fb.keys() if k != "seed" and fa.get(k) != fb.get(k))
    shown = [f"{k} {fa.get(k, '(unset)')} vs {fb.get(k, '(unset)')}" for k in keys[:limit]]
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(shown) + more if shown else "no setting"


def _flat(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


REPORT_FIX = "rerun its suite with `gadbench run --resume` to rebuild it, or move the run's folder away"


def _config(path: Path) -> dict:
    """A run's config.yaml as a mapping ({} without one); a damaged one raises DamagedFileError naming it."""
    if not path.exists():
        return {}
    try:
        config = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        what = "not UTF-8 text" if isinstance(e, UnicodeDecodeError) else "not valid YAML"
        raise DamagedFileError(f"{path} is damaged ({what})", "restore it from a copy, or move the run's folder "
                               "away") from None
    if config is not None and not isinstance(config, dict):
        raise DamagedFileError(f"{path} holds no mapping of settings", "restore it from a copy, or move the run's "
                               "folder away")
    return config or {}


def _json_object(path: Path) -> dict | None:
    """The JSON object in `path` (None without the file); damaged, or not an object: DamagedFileError."""
    if not path.exists():
        return None
    value = read_json(path, fix=REPORT_FIX)
    if not isinstance(value, dict):
        raise DamagedFileError(f"{path} holds no JSON object", REPORT_FIX)
    return value


def load_run(path: Path) -> Run:
    config = _config(path / "config.yaml")
    summary = _json_object(path / "summary.json")
    budget = _json_object(path / "budget.json")
    toy = _json_object(path / "toy.json")
    parts = path.name.split("--")
    s = summary or {}
    student = s.get("student") or _name(config.get("student")) or parts[0]
    method = s.get("method") or _name(config.get("method")) or (parts[1] if len(parts) > 1 else "unknown")
    seed = s.get("seed", config.get("seed"))
    if seed is None:
        m = re.fullmatch(r"s(\d+)", parts[2]) if len(parts) > 2 else None
        seed = int(m.group(1)) if m else 0
    return Run(
        run_id=s.get("run_id") or path.name,
        path=path,
        config=config,
        summary=summary,
        metrics=list(read_jsonl(path / "metrics.jsonl")),
        budget=budget,
        evals=_load_evals(path / "eval"),
        eval_metrics=_load_eval_metrics(path / "eval"),
        toy=toy,
        student=str(student),
        teacher=str(_name(config.get("teacher")) or ""),
        method=str(method),
        seed=int(seed),
        identity=Identity.read(s.get("identity"), str(method).split("+", 1)[0]),
    )


def _load_evals(root: Path) -> dict[int, dict[str, list[dict]]]:
    out: dict[int, dict[str, list[dict]]] = {}
    for step_dir in root.glob("step-*") if root.is_dir() else []:
        m = re.fullmatch(r"step-(\d+)", step_dir.name)
        if m:
            out[int(m.group(1))] = {f.stem: list(read_jsonl(f)) for f in sorted(step_dir.glob("*.jsonl"))}
    return dict(sorted(out.items()))


def _load_eval_metrics(root: Path) -> dict[int, dict]:
    """step -> eval/step-K/metrics.json; a damaged one is left out with a warning (the run's summary, which the
    tables read, names it too, with how to rebuild it)."""
    out = {}
    for f in root.glob("step-*/metrics.json") if root.is_dir() else []:
        m = re.fullmatch(r"step-(\d+)", f.parent.name)
        if m:
            try:
                out[int(m.group(1))] = _json_object(f)
            except DamagedFileError as e:
                log.warning("%s; the report leaves that evaluation out", e.problem)
    return dict(sorted(out.items()))


def is_run(path: Path) -> bool:
    return any((path / f).exists() for f in ("config.yaml", "summary.json", "metrics.jsonl"))


def _name(value) -> str | None:
    """A model or method name from a config entry that is either a string or a mapping with a name."""
    if isinstance(value, dict):
        for key in ("name", "model", "id", "path"):
            if value.get(key):
                return str(value[key])
        return None
    return None if value is None else str(value)
