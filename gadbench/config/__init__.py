"""Suite settings: the typed schema (`schema`), reading suite files (`load`) and explaining settings (`explain`).
Checks against the method, judge, teacher and data records, and the suite registry, are gadbench.suite's."""

from gadbench.config.explain import explain
from gadbench.config.load import apply_override, build, read_suite_file, run_spec_from_dict
from gadbench.config.schema import (
    INT_MAX,
    BudgetConfig,
    ConfigError,
    DataConfig,
    DatasetConfig,
    EvalConfig,
    JudgeConfig,
    LogConfig,
    MethodConfig,
    ModelConfig,
    Requirements,
    RolloutConfig,
    RunSpec,
    SuiteConfig,
    TeacherConfig,
    ToyConfig,
    TrainConfig,
    setting,
    to_dict,
    to_yaml,
)

__all__ = [
    "INT_MAX", "BudgetConfig", "ConfigError", "DataConfig", "DatasetConfig", "EvalConfig", "JudgeConfig", "LogConfig",
    "MethodConfig", "ModelConfig", "Requirements", "RolloutConfig", "RunSpec", "SuiteConfig", "TeacherConfig",
    "ToyConfig", "TrainConfig", "apply_override", "build", "explain", "read_suite_file", "run_spec_from_dict",
    "setting", "to_dict", "to_yaml",
]
