"""A one-line progress display on stderr: only on a terminal, and only after a few seconds."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total_steps: int, mode: str = "auto", delay_s: float = 3.0):
        self.total = total_steps
        self.enabled = mode == "on" or (mode == "auto" and sys.stderr.isatty())
        self.start = time.perf_counter()
        self.delay_s = 0.0 if mode == "on" else delay_s
        self.shown = False

    def update(self, step: int, loss: float, samples_per_s: float) -> None:
        if not self.enabled or time.perf_counter() - self.start < self.delay_s:
            return
        self.shown = True
        sys.stderr.write(f"\rstep {step}/{self.total}  loss {loss:.4g}  {samples_per_s:,.0f} samples/s ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
