"""The paper's published numbers (baselines/paper.json), validated and indexed for lookup."""

from __future__ import annotations

import json
from pathlib import Path

from gadbench.io import read_json
from gadbench.report.naming import OOD, same_model, student_label
from gadbench.report.schema import validate

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "baselines" / "paper.json"
_PRIORITY = ("2", "7", "6", "3", "4", "5")  # Table 2/7 first; Table 6 adds lengths; Tables 3-5 ablations
_QWEN_TEACHER = "Qwen2.5-14B-Instruct"


class Baselines:
    """Look up a published value by (teacher, student, variant key, dataset, metric)."""

    def __init__(self, entries: list[dict]):
        self._index: dict[tuple, dict] = {}
        tables = [e for e in entries if "table" in e]
        for e in sorted(tables, key=lambda e: _PRIORITY.index(e["table"])):
            self._index.setdefault(
                self._key(e["teacher"], e["student"], e["key"], e["dataset"], e["metric"]), e
            )

    @staticmethod
    def _key(teacher, student, key, dataset, metric) -> tuple:
        return teacher, student_label(student).lower(), key, dataset, metric

    @staticmethod
    def teacher_for(run_teacher: str) -> str:
        """Table 7 used a Qwen2.5-14B-Instruct teacher; everything else GPT-5-Chat."""
        return _QWEN_TEACHER if run_teacher and same_model(run_teacher, _QWEN_TEACHER) else "GPT-5-Chat"

    def entry(self, teacher: str, student: str, key: str, dataset: str, metric: str = "score") -> dict | None:
        return self._index.get(self._key(self.teacher_for(teacher), student, key, dataset, metric))

    def value(
        self, teacher: str, student: str, key: str, dataset: str, metric: str = "score"
    ) -> float | None:
        """A published value; 'Others' falls back to the mean of the three OOD sets when not printed."""
        e = self.entry(teacher, student, key, dataset, metric)
        if e:
            return e["value"]
        if dataset == "Others":
            parts = [self.entry(teacher, student, key, d, metric) for d in OOD]
            if all(parts):
                return sum(p["value"] for p in parts) / len(parts)
        return None


def load_baselines(path: str | Path | None = None) -> Baselines:
    """Load and validate paper.json against paper.schema.json next to it."""
    path = Path(path) if path else DEFAULT_PATH
    if not path.is_file():
        raise FileNotFoundError(f"there is no baselines file {path}; pass --baselines a JSON file like "
                                f"{DEFAULT_PATH.name}, or leave it out for the paper's numbers.")
    doc = read_json(path, fix=f"pass a valid JSON file like {DEFAULT_PATH.name}")
    schema_path = path.with_name("paper.schema.json")
    if schema_path.exists():
        errors = validate(doc, json.loads(schema_path.read_text(encoding="utf-8")))
        if errors:
            raise ValueError(f"{path} does not match {schema_path.name}: " + "; ".join(errors[:5]) + "; fix those "
                             "entries.")
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list):
        raise ValueError(f"{path} holds no list of `entries`; pass a baselines file like {DEFAULT_PATH.name}.")
    return Baselines(doc["entries"])
