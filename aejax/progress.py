"""Training progress: a live bar on a terminal, steady log lines elsewhere.

On a terminal (`trainer.progress=auto` or `on`) one line on stderr is redrawn after each
compiled call. Without one (a SLURM job's `.out` file, a pipe) `auto` logs one line through
Python logging (logger `aejax.progress`, so Hydra's log file has it too) at most every
`trainer.progress_interval_s` seconds, and at the end: epoch, step, loss, samples/s, ETA.
"""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger(__name__)
BAR = 24


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def clock(seconds: float) -> str:
    """A short duration for log lines: 2:03, or 1:02:03 past an hour."""
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    def __init__(self, total_steps: int, mode: str = "auto", interval_s: float = 30.0, total_epochs: int = 0,
                 first_step: int = 0, delay_s: float = 3.0):
        self.total, self.total_epochs = total_steps, total_epochs
        terminal = sys.stderr.isatty()
        self.kind = {"on": "bar", "off": None, "log": "log"}.get(mode, "bar" if terminal else "log")
        self.interval_s = interval_s
        self.start = self.last_log = time.perf_counter()
        self.first_step = first_step  # a resumed run's ETA counts only the steps it trains
        self.delay_s = 0.0 if mode == "on" else delay_s
        self.shown = False
        self.line = ""

    def update(self, step: int, epoch: int, loss: float, samples_per_s: float) -> None:
        if self.kind is None:
            return
        now = time.perf_counter()
        done = step - self.first_step
        eta = (now - self.start) / done * (self.total - step) if done > 0 else 0.0
        self.line = (f"epoch {epoch}/{self.total_epochs}  step {step}/{self.total}  loss {loss:.4g}  "
                     f"{samples_per_s:,.0f} samples/s  ETA {_duration(eta)}")
        if self.kind == "bar":
            if now - self.start < self.delay_s:
                return
            filled = int(BAR * step / max(self.total, 1))
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (BAR - filled)}] {self.line} ")
            sys.stderr.flush()
            self.shown = True
        elif now - self.last_log >= self.interval_s or step >= self.total:
            log.info(self.line)
            self.last_log = now

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            self.shown = False
