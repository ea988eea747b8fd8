"""A run's data: training examples in a fixed order, a validation split held out from them, and eval sets.

Every method of a suite gets the same examples in the same order (the order depends on the data config and
the seed, never on the method), which is half of a matched budget. Missing teacher responses are filled by
the suite's black-box teacher.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gadbench.config import DatasetConfig, RunSpec
from gadbench.data import DataError, DataSpec, Example, LoadReport, load_examples
from gadbench.worlds import synthetic as world


@dataclass
class RunData:
    train: list[Example]
    validation: list[Example]
    eval: dict[str, list[Example]]
    reports: list[LoadReport]
    teacher_usage: dict = field(default_factory=dict)  # an API teacher's requests, cache hits, tokens and cost

    def batch(self, step: int, size: int) -> list[Example]:
        """The examples of global step `step` (1-based): consecutive slices of the epoch-ordered list."""
        n = len(self.train)
        start = ((step - 1) * size) % n
        return [self.train[(start + i) % n] for i in range(size)]


def _world_examples(cfg: DatasetConfig, offset: int) -> list[Example]:
    """World problems: split `id` or `ood`; `offset` keeps train, validation and test prompts disjoint."""
    split = cfg.split if cfg.split in world.SPLITS else "id"
    n = cfg.limit or 64
    pool = world.sample_problems(offset + n, split, seed=0)[offset:]
    return [Example(p.prompt, None, {"id": f"{split}-{offset + i}", "source": "world", "task": p.task})
            for i, p in enumerate(pool)]


def _load(cfg: DatasetConfig, require_teacher: bool) -> tuple[list[Example], LoadReport | None]:
    fields = {k: v for k, v in (("prompt", cfg.prompt_field), ("response", cfg.response_field), ("id", cfg.id_field)) if v}
    spec = DataSpec(source=cfg.source, path=cfg.path, hub_id=cfg.hub_id, split=cfg.split, limit=cfg.limit,
                    fields=fields, bad_rows=cfg.bad_rows, require_teacher=require_teacher, multi_turn=cfg.multi_turn,
                    max_chars=cfg.max_chars, max_response_chars=cfg.max_response_chars,
                    max_repetition=cfg.max_repetition, test_fraction=cfg.test_fraction)
    return load_examples(spec)


WORLD_OFFSETS = {"train": 0, "validation": 5000, "test": 6000}


def load_run_data(spec: RunSpec, teacher, fill_train: bool = True) -> RunData:
    """Load, fill teacher responses, hold out validation, and shuffle the training order by seed.

    `fill_train=False` leaves the training examples' missing responses unasked (evaluation only)."""
    d = spec.data
    reports: list[LoadReport] = []
    needs_teacher = spec.teacher.spec == "dataset"
    if d.train.source == "world":
        pool = _world_examples(d.train, WORLD_OFFSETS["train"])
        validation = _world_examples(DatasetConfig("world", split="id", limit=d.validation_size or 1), WORLD_OFFSETS["validation"])
        validation = validation[: d.validation_size]
    else:
        pool, report = _load(d.train, require_teacher=needs_teacher)
        reports.append(report)
        if not pool:
            raise DataError(f"the training data has no usable rows ({report.summary()}); add rows to it or fix "
                            "data.train's path and fields.")
        held = random.Random(f"validation:{spec.seed}").sample(range(len(pool)), min(d.validation_size, len(pool) // 2))
        held_set = set(held)
        validation = [pool[i] for i in sorted(held)]
        pool = [ex for i, ex in enumerate(pool) if i not in held_set]
    if fill_train:
        pool = fill_teacher(pool, teacher)
    order = list(range(len(pool)))
    random.Random(f"order:{spec.seed}").shuffle(order)
    train = [pool[i] for i in order]
    evals = {}
    for name, cfg in d.eval.items():
        if cfg.source == "world":
            evals[name] = _world_examples(cfg, WORLD_OFFSETS["test"])
        else:
            examples, report = _load(cfg, require_teacher=False)
            reports.append(report)
            evals[name] = examples
    validation = fill_teacher(validation, teacher)
    evals = {k: fill_teacher(v, teacher) for k, v in evals.items()}
    usage = getattr(teacher, "usage", None)
    return RunData(train, validation, evals, reports, asdict(usage) if usage is not None else {})


def fill_teacher(examples: list[Example], teacher) -> list[Example]:
    """Ask the black box once for every example that has no teacher response."""
    missing = [i for i, ex in enumerate(examples) if ex.teacher_response is None]
    if not missing or teacher is None:
        return examples
    answers = teacher.respond([examples[i].prompt for i in missing])
    out = list(examples)
    for i, a in zip(missing, answers, strict=True):
        out[i] = Example(examples[i].prompt, a, examples[i].meta)
    return out


def run_teacher(spec: RunSpec, cache_dir: Path | None = None):
    """The black box a run asks for missing teacher responses: None for `dataset` (the responses are in the
    data), the world's program, or a `gadbench.teachers` backend; an API teacher caches its answers in
    `cache_dir`, so the runs of a suite ask each prompt once."""
    s = spec.teacher.spec
    if s == "dataset":
        return None
    if s in ("program", "program:world"):
        from gadbench.worlds.synthetic import ProgramTeacher

        return ProgramTeacher(seed=0)
    from gadbench.teachers import make_teacher as make

    opts = {"cache_path": cache_dir / "teacher.sqlite"} if cache_dir is not None and s.startswith("openai:") else {}
    return make(s, api_key_env=spec.teacher.api_key_env, concurrency=spec.teacher.concurrency, **opts)
