"""What a run needs, predicted before anything is loaded: each phase's peak memory per process from a run's
settings, the model's shape and the launch (`memory`), model shapes without loading them (`shapes`), each
phase's peak measured in a run (`probe`, train.log_memory), and the hours of a suite on a GPU kind
(`throughput`, estimates from cited rates). docs/scale.md has the formulas and their checks."""

from gadbench.capacity.memory import (
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
