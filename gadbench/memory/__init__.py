"""Memory: each phase's peak per process predicted from a run's settings, the model's shape and the launch
(`model`), model shapes without loading them (`shapes`), and each phase's peak measured in a run (`probe`,
train.log_memory). docs/scale.md has the formulas and their check against measurements."""

from gadbench.memory.model import (
    Launch,
    Lengths,
    MemoryPlanError,
    check,
    launch_of,
    plan_text,
    predict,
    problem,
)

__all__ = ["Launch", "Lengths", "MemoryPlanError", "check", "launch_of", "plan_text", "predict", "problem"]
