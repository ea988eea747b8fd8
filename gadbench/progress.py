"""Progress on long work: a tqdm bar on a terminal, a plain line every ~10% otherwise; `status(text)` says what
is happening between steps (an evaluation): the bar's postfix, or a plain line."""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("gadbench")
SHOWN = ("d_loss", "d_acc", "reward_mean", "sft_loss", "response_len")


def duration(seconds: float) -> str:
    """42 s, 3 min 05 s, 1 h 02 min."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class _Plain:
    def __init__(self, total: int, initial: int, desc: str):
        self.total, self.n, self.desc = total, initial, desc
        self.every = max(1, total // 10)

    def update(self, n: int = 1, metrics: dict | None = None) -> None:
        self.n += n
        if self.n % self.every == 0 or self.n == self.total:
            shown = " ".join(f"{k}={metrics[k]:.3g}" for k in SHOWN if metrics and k in metrics)
            log.info("%s: step %d/%d %s", self.desc, self.n, self.total, shown)

    def status(self, text: str) -> None:
        log.info("%s: %s", self.desc, text)

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

    def status(self, text: str) -> None:
        self.bar.set_postfix_str(text)

    def close(self) -> None:
        self.bar.close()


def progress_bar(total: int, initial: int = 0, desc: str = "", enabled: bool = True):
    """A bar when stderr is a terminal and `enabled`; plain log lines otherwise."""
    if enabled and sys.stderr.isatty():
        return _Bar(total, initial, desc)
    return _Plain(total, initial, desc)
