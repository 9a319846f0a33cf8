"""Compiled calls sized by time: how a run's steps are cut into calls of the population program.

Everything the host does between steps (a progress line, a validation, a checkpoint, answering
a signal or a SLURM preemption, which gives 120 s before the kill) waits for the compiled call
in flight. A call of a fixed number of steps lasts milliseconds for a small MLP and minutes for
a conv VAE, so calls are sized by their measured duration instead:

1. the run's first call is a probe: one epoch when an epoch has at most PROBE_EPOCH_STEPS steps,
   else PROBE_STEPS steps;
2. its time (compilation excluded: programs are compiled ahead of their first call) gives the
   seconds per step, and the following calls take `trainer.call_seconds` worth of steps, capped
   at MAX_STEPS_PER_CALL (beyond it, the host's work per call is already negligible).

A call is either whole epochs (a divisor of the run's epochs, of the checkpoint and validation
intervals and of the epoch it starts from, so each of those falls between two calls) or a run
of steps inside one epoch (the epoch's last call takes the remainder). Calls never change
what is computed: a step's batch and key depend on its number alone (aejax.train), so any cut
gives bitwise the same parameters (tests/test_schedule.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PROBE_STEPS = 8
PROBE_EPOCH_STEPS = 64
MAX_STEPS_PER_CALL = 500


@dataclass(frozen=True)
class Call:
    first_step: int
    n_epochs: int
    n_steps: int       # steps of each epoch in the call

    @property
    def shape(self) -> tuple[int, int]:
        return self.n_epochs, self.n_steps

    @property
    def end(self) -> int:
        return self.first_step + self.n_epochs * self.n_steps


def steps_for(seconds_per_step: float, call_seconds: float) -> int:
    """Steps per call for a measured step time: `call_seconds` worth, at least 1, at most MAX_STEPS_PER_CALL."""
    return max(1, min(MAX_STEPS_PER_CALL, int(call_seconds / max(seconds_per_step, 1e-9))))


def plan(first_step: int, total_steps: int, steps_per_epoch: int, steps_per_call: int, *intervals: int) -> list[Call]:
    """The calls from `first_step` to `total_steps`, each about `steps_per_call` steps.

    `intervals` (epochs; 0 means none) must each fall between two calls: checkpoints and validation."""
    calls, step = [], first_step
    epochs = total_steps // steps_per_epoch
    while step < total_steps:
        epoch, offset = divmod(step, steps_per_epoch)
        if offset == 0 and steps_per_call >= steps_per_epoch:
            period = math.gcd(epochs, *intervals)
            n = max(d for d in range(1, period + 1) if period % d == 0 and d * steps_per_epoch <= steps_per_call)
            # From an epoch that is not a multiple of n (after a one-epoch probe, or on resume), one call
            # catches up to the next multiple: every later call ends where the intervals can fall.
            calls.append(Call(step, n - epoch % n, steps_per_epoch))
        else:
            calls.append(Call(step, 1, min(steps_per_call, steps_per_epoch - offset)))
        step = calls[-1].end
    return calls


def probe_call(first_step: int, total_steps: int, steps_per_epoch: int, *intervals: int) -> Call:
    """The run's first call: one epoch when epochs are short (at most PROBE_EPOCH_STEPS steps; the
    whole-epoch calls after it then need at most one more compilation), else PROBE_STEPS steps."""
    probe = steps_per_epoch if steps_per_epoch <= PROBE_EPOCH_STEPS else PROBE_STEPS
    return plan(first_step, total_steps, steps_per_epoch, probe, *intervals)[0]
