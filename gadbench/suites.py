"""The suite registry: every `experiments/*.yaml` file is a suite named after the file."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from gadbench.config import ConfigError, SuiteConfig, load_suite


def experiments_dir() -> Path:
    """`$GADBENCH_EXPERIMENTS`, else the `experiments/` folder of the checkout this package runs from."""
    env = os.environ.get("GADBENCH_EXPERIMENTS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "experiments"


def suite_names() -> list[str]:
    return sorted(p.stem for p in experiments_dir().glob("*.yaml"))


def suite_path(name: str) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    path = experiments_dir() / f"{name}.yaml"
    if not path.exists():
        close = difflib.get_close_matches(name, suite_names(), n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"available: {', '.join(suite_names())}."
        raise ConfigError(f"no suite named `{name}` in {experiments_dir()}; {hint}")
    return path


def get_suite(name: str, overrides: list[str] = ()) -> SuiteConfig:
    path = suite_path(name)
    return load_suite(path, overrides, search_dir=experiments_dir())
