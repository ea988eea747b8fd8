"""Source `world`: problems of the synthetic world (gadbench.worlds.synthetic), split `id` or `ood` (any other
split reads `id`), `limit` of them (64 by default) from problem `offset` on; prompts only (the world's program
teacher answers them)."""

from __future__ import annotations

from collections.abc import Iterator

from gadbench.data.base import DataSpec, Row, register_source
from gadbench.worlds import synthetic as world

DEFAULT_SIZE = 64


@register_source("world", size=DEFAULT_SIZE)
def load(spec: DataSpec) -> tuple[str, Iterator[Row]]:
    split = spec.split if spec.split in world.SPLITS else "id"
    n = spec.limit or DEFAULT_SIZE
    pool = world.sample_problems(spec.offset + n, split, seed=0)[spec.offset:]
    rows = (Row(spec.offset + i, p.prompt, None, {"id": f"{split}-{spec.offset + i}", "task": p.task})
            for i, p in enumerate(pool))
    return f"the synthetic world ({split})", rows
