"""Progress on long work: a tqdm bar on a terminal, a plain line every ~10% otherwise."""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("gadbench")
SHOWN = ("d_loss", "d_acc", "reward_mean", "sft_loss", "response_len")


class _Plain:
    def __init__(self, total: int, initial: int, desc: str):
        self.total, self.n, self.desc = total, initial, desc
        self.every = max(1, total // 10)

    def update(self, n: int = 1, metrics: dict | None = None) -> None:
        self.n += n
        if self.n % self.every == 0 or self.n == self.total:
            shown = " ".join(f"{k}={metrics[k]:.3g}" for k in SHOWN if metrics and k in metrics)
            log.info("%s: step %d/%d %s", self.desc, self.n, self.total, shown)

    def close(self) -> None:
        pass


class _Bar(_Plain):
    def __init__(self, total: int, initial: int, desc: str):
        from tqdm import tqdm

        super().__init__(total, initial, desc)
        self.bar = tqdm(total=total, initial=initial, desc=desc, leave=False, dynamic_ncols=True)

    def update(self, n: int = 1, metrics: dict | None = None) -> None:
        self.bar.update(n)
        if metrics:
            self.bar.set_postfix({k: f"{metrics[k]:.3g}" for k in SHOWN if k in metrics}, refresh=False)

    def close(self) -> None:
        self.bar.close()


def progress_bar(total: int, initial: int = 0, desc: str = "", enabled: bool = True):
    """A bar when stderr is a terminal and `enabled`; plain log lines otherwise."""
    if enabled and sys.stderr.isatty():
        return _Bar(total, initial, desc)
    return _Plain(total, initial, desc)
