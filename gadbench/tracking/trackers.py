"""The tracker adapters of gadbench.tracking: TensorBoard (torch's SummaryWriter), trackio and wandb, each logging
a row's numbers as scalars and its text as text (`scalars_and_text`)."""

from __future__ import annotations

import os
from pathlib import Path


def scalars_and_text(values: dict) -> tuple[dict[str, float], dict[str, str]]:
    """A metrics row split into numbers (booleans as 0/1) and text; `step` and None are left out."""
    numbers, text = {}, {}
    for key, value in values.items():
        if key == "step" or value is None:
            continue
        if isinstance(value, bool | int | float):
            numbers[key] = float(value)
        elif isinstance(value, str):
            text[key] = value
    return numbers, text


class TensorBoard:
    """torch's SummaryWriter, opened at the first logged step with purge_step there: events a killed run wrote
    past its checkpoint are dropped when the run resumes."""

    def __init__(self, log_dir: Path, config: dict):
        self.log_dir, self.config, self.writer = log_dir, config, None

    def log(self, values: dict, step: int) -> None:
        if self.writer is None:
            import yaml
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.log_dir), purge_step=step)
            self.writer.add_text("config", "```\n" + yaml.safe_dump(self.config, sort_keys=True) + "```", step)
        numbers, text = scalars_and_text(values)
        for key, value in numbers.items():
            self.writer.add_scalar(key, value, step)
        for key, value in text.items():
            self.writer.add_text(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Trackio:
    """A trackio run named `name` in `project` of its local store; `existed`: continue it (--resume)."""

    def __init__(self, project: str, name: str, existed: bool, config: dict):
        import trackio

        self.run = trackio.init(project=project, name=name, config=config, resume="allow" if existed else "never",
                                embed=False, auto_log_cpu=False, auto_log_gpu=False)

    def log(self, values: dict, step: int) -> None:
        numbers, text = scalars_and_text(values)
        self.run.log({**numbers, **text}, step=step)

    def close(self) -> None:
        self.run.finish()


class Wandb:
    """A wandb run with id `ident` in <run_dir>/wandb/, offline unless $WANDB_MODE or $WANDB_API_KEY is set."""

    def __init__(self, project: str, name: str, ident: str, run_dir: Path, config: dict):
        import wandb

        mode = None if os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY") else "offline"
        run_dir.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=project, name=name, id=ident, resume="allow", dir=str(run_dir),
                              config=config, mode=mode, settings=wandb.Settings(console="off", x_disable_stats=True))

    def log(self, values: dict, step: int) -> None:
        numbers, text = scalars_and_text(values)
        self.run.log({**numbers, **text}, step=step)

    def close(self) -> None:
        self.run.finish()
