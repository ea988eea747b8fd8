"""Run lm-evaluation-harness tasks on an in-memory (student) model through lm_eval's HFLM wrapper."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def run_lm_eval(
    model,
    tokenizer,
    tasks: Sequence[str],
    include_path: str | Path | None = None,
    limit: int | float | None = None,
    batch_size: int = 4,
    bootstrap_iters: int = 1000,
    builtin_tasks: bool = True,
) -> dict:
    """Evaluate `model` on lm_eval `tasks`; `include_path` adds a folder of local YAML tasks.

    Returns {"results": {task: {metric: value, "<metric>,stderr": ...}}, "versions", "n-samples",
    "higher_is_better"} from `lm_eval.simple_evaluate`. Built-in tasks download data from the Hub, so offline
    runs must use local tasks; `builtin_tasks=False` skips indexing lm_eval's own task folder (about 20 s).
    """
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise RuntimeError("lm_eval is not installed; run `pip install gadbench[lmeval]`.") from None
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=str(model.device))
    manager = TaskManager(
        include_path=None if include_path is None else str(include_path), include_defaults=builtin_tasks
    )
    out = lm_eval.simple_evaluate(
        model=lm,
        tasks=list(tasks),
        limit=limit,
        task_manager=manager,
        bootstrap_iters=bootstrap_iters,
        log_samples=False,
    )
    return {k: out[k] for k in ("results", "versions", "n-samples", "higher_is_better")}
