"""No trained parameter is pure noise: through `Trainer.train`, every parameter that an optimizer steps gets
a real gradient under every method of the smoke suite.

A parameter whose gradient is zero in exact arithmetic (e.g. a bias that a loss of score differences cancels)
still receives rounding noise, which Adam normalises into full-size steps of either sign: its value becomes
arbitrary and platform-dependent. "No gradient" here means the largest |grad| the parameter ever sees is below
1e-6 of the largest |grad| any parameter of the same model sees (float32 rounding noise is ~1e-7 relative).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from gadbench.rundata import load_run_data, run_teacher
from gadbench.suite import get_suite, runs_of
from gadbench.trainer import Trainer

REPO = Path(__file__).resolve().parent.parent
TINY = [
    "train.steps=4", "train.warmup_steps=2", "train.d_only_steps=1", "train.batch_size=4", "train.group_size=2",
    "train.max_response_tokens=16", "train.max_prompt_tokens=32", "train.checkpoint_every=100",
    "data.train.limit=16", "data.validation_size=0", "train.cpu_threads=1", "train.offpolicy_d_steps=2",
]
RELATIVE = 1e-6


@pytest.fixture(scope="module", autouse=True)
def _env():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GADBENCH_CACHE", str(REPO / "results" / "cache"))
        yield


def _largest_grads(spec, tmp_path: Path) -> dict[str, dict[str, float]]:
    """model ('g' or 'd') -> parameter name -> the largest |grad| seen at any optimizer step of the run."""
    data = load_run_data(spec, run_teacher(spec))
    trainer = Trainer(spec, tmp_path / spec.run_id, data, progress=False)
    names = {}
    for tag, m in (("g", trainer.ctx.g), ("d", trainer.ctx.d)):
        for n, p in (m.model.named_parameters() if m is not None else ()):
            names[id(p)] = (tag, n)
    seen: dict[str, dict[str, float]] = {}

    def record(opt, args, kwargs):
        for group in opt.param_groups:
            for p in group["params"]:
                tag, n = names[id(p)]
                g = 0.0 if p.grad is None else float(p.grad.abs().max())
                seen.setdefault(tag, {})[n] = max(seen.get(tag, {}).get(n, 0.0), g)

    handle = register_optimizer_step_pre_hook(record)
    try:
        trainer.train()
    finally:
        handle.remove()
    return seen


METHODS = [r.method_name for r in runs_of(get_suite("smoke"))]


@pytest.mark.parametrize("method", METHODS)
def test_every_stepped_parameter_has_a_gradient(tmp_path, method):
    torch.set_num_threads(1)
    spec = next(r for r in runs_of(get_suite("smoke", TINY)) if r.method_name == method)
    seen = _largest_grads(spec, tmp_path)
    assert "g" in seen
    noise = {f"{tag}.{n}": g for tag, grads in seen.items() for n, g in grads.items()
             if g <= RELATIVE * max(grads.values())}
    scale = {tag: max(grads.values()) for tag, grads in seen.items()}
    assert not noise, f"parameters stepped on rounding noise alone (largest |grad| per model: {scale}): {noise}"
