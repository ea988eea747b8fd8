"""A run's data: training examples in a fixed order, a validation split held out from them, and eval sets.

Every method of a suite gets the same examples in the same order (the order depends on the data config and
the seed, never on the method), which is half of a matched budget. Missing teacher responses are filled by
the suite's black-box teacher.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gadbench.config import DataConfig, DatasetConfig, RunSpec
from gadbench.data import DataError, DataSpec, Example, LoadReport, load_examples
from gadbench.teachers import BACKENDS, teacher_from


@dataclass
class RunData:
    train: list[Example]
    validation: list[Example]
    eval: dict[str, list[Example]]
    reports: list[LoadReport]
    teacher_usage: dict = field(default_factory=dict)  # an API teacher's requests, cache hits, tokens and cost
    overlap: dict = field(default_factory=dict)  # eval set -> its prompts also among the training prompts (`overlap`)

    def batch(self, step: int, size: int) -> list[Example]:
        """The examples of global step `step` (1-based): consecutive slices of the epoch-ordered list."""
        n = len(self.train)
        start = ((step - 1) * size) % n
        return [self.train[(start + i) % n] for i in range(size)]


def data_spec(cfg: DatasetConfig, require_teacher: bool = False, offset: int = 0) -> DataSpec:
    """What the data loaders read for a dataset's settings (the one mapping from settings to loader)."""
    fields = {k: v for k, v in (("prompt", cfg.prompt_field), ("response", cfg.response_field), ("id", cfg.id_field)) if v}
    return DataSpec(source=cfg.source, path=cfg.path, hub_id=cfg.hub_id, split=cfg.split, limit=cfg.limit,
                    fields=fields, bad_rows=cfg.bad_rows, require_teacher=require_teacher, multi_turn=cfg.multi_turn,
                    max_chars=cfg.max_chars, max_response_chars=cfg.max_response_chars,
                    max_repetition=cfg.max_repetition, test_fraction=cfg.test_fraction, offset=offset)


WORLD_OFFSETS = {"train": 0, "validation": 5000, "test": 6000}  # the world's disjoint problem pools


def load_run_data(spec: RunSpec, teacher, fill_train: bool = True) -> RunData:
    """Load, fill teacher responses, hold out validation, and shuffle the training order by seed.

    `fill_train=False` leaves the training examples' missing responses unasked (evaluation only)."""
    d = spec.data
    reports: list[LoadReport] = []
    needs_teacher = spec.teacher.spec == "dataset"
    replace = BACKENDS[spec.teacher.spec.partition(":")[0]].answers_every_prompt
    if d.train.source == "world":
        pool, report = load_examples(data_spec(d.train, offset=WORLD_OFFSETS["train"]))
        reports.append(report)
        held = DatasetConfig("world", split="id", limit=d.validation_size or 1)
        validation = load_examples(data_spec(held, offset=WORLD_OFFSETS["validation"]))[0][: d.validation_size]
    else:
        pool, report = load_examples(data_spec(d.train, require_teacher=needs_teacher))
        reports.append(report)
        if not pool:
            raise DataError(f"the training data has no usable rows ({report.summary()}); add rows to it or fix "
                            "data.train's path and fields.")
        held = random.Random(f"validation:{spec.seed}").sample(range(len(pool)), min(d.validation_size, len(pool) // 2))
        held_set = set(held)
        validation = [pool[i] for i in sorted(held)]
        pool = [ex for i, ex in enumerate(pool) if i not in held_set]
    if fill_train:
        pool = fill_teacher(pool, teacher, replace)
    order = list(range(len(pool)))
    random.Random(f"order:{spec.seed}").shuffle(order)
    train = [pool[i] for i in order]
    evals = {}
    for name, cfg in d.eval.items():
        examples, report = load_examples(data_spec(cfg, offset=WORLD_OFFSETS["test"] if cfg.source == "world" else 0))
        reports.append(report)
        evals[name] = examples
    found = overlap(d, train + validation, evals)
    if not d.allow_overlap and (hit := next((k for k, v in found.items() if v["overlap"]), None)):
        o = found[hit]
        raise DataError(
            f"eval set `{hit}`: {o['overlap']} of its {o['n']} prompts are also training prompts (ids "
            f"{', '.join(o['ids'])}); make the data disjoint, or set data.allow_overlap: true to run anyway (the "
            "overlap is then reported).")
    validation = fill_teacher(validation, teacher, replace)
    evals = {k: fill_teacher(v, teacher, replace) for k, v in evals.items()}
    usage = getattr(teacher, "usage", None)
    return RunData(train, validation, evals, reports, asdict(usage) if usage is not None else {}, found)


def normalized(prompt: str) -> str:
    """A prompt as the overlap check compares it: NFKC, case-folded, whitespace runs collapsed to one space."""
    return " ".join(unicodedata.normalize("NFKC", prompt).casefold().split())


def overlap(d: DataConfig, training: list[Example], evals: dict[str, list[Example]]) -> dict[str, dict]:
    """Per eval set {n, overlap, ids}: its prompts that are also training prompts (`training`: the training
    examples and the validation split held out from them), by normalised text, or by id when the set reads the
    same data as data.train (same source, path and hub id); `ids` lists the first five."""
    texts = {normalized(ex.prompt) for ex in training}
    ids = {ex.meta.get("id") for ex in training} - {None}
    same = (d.train.source, d.train.path, d.train.hub_id)
    out = {}
    for name, examples in evals.items():
        cfg = d.eval[name]
        by_id = (cfg.source, cfg.path, cfg.hub_id) == same
        hits = [ex for ex in examples if normalized(ex.prompt) in texts or (by_id and ex.meta.get("id") in ids)]
        out[name] = {"n": len(examples), "overlap": len(hits), "ids": [str(ex.meta.get("id")) for ex in hits[:5]]}
    return out


def fill_teacher(examples: list[Example], teacher, replace: bool = False) -> list[Example]:
    """Ask the black box once for every example that has no teacher response (every example with `replace`:
    the data's own responses are not the teacher's)."""
    missing = [i for i, ex in enumerate(examples) if replace or ex.teacher_response is None]
    if not missing or teacher is None:
        return examples
    answers = teacher.respond([examples[i].prompt for i in missing])
    out = list(examples)
    for i, a in zip(missing, answers, strict=True):
        out[i] = Example(examples[i].prompt, a, examples[i].meta)
    return out


def run_teacher(spec: RunSpec, cache_dir: Path | None = None):
    """The black box a run asks for missing teacher responses: None for `dataset` (the responses are in the
    data), else its backend built from the suite's teacher settings; an API teacher caches its answers in
    `cache_dir/teacher.sqlite`, so the runs of a suite ask each prompt once."""
    if spec.teacher.spec == "dataset":
        return None
    return teacher_from(spec.teacher, cache_dir / "teacher.sqlite" if cache_dir is not None else None)
