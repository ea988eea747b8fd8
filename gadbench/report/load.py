"""Read stored results (a run directory or results/<suite>/) into plain Run and Suite objects."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

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


@dataclass
class Suite:
    path: Path
    name: str
    meta: dict
    runs: list[Run]
    missing: list[str] = field(default_factory=list)  # run ids listed in suite.json without a directory

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
    return Suite(path, str(name), meta, runs, [r for r in listed if r not in found])


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
