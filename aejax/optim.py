"""Optimisers from optax, picked by name (`optim.name`).

The optax transform is built with a *normalised* schedule (peak 1); the step multiplies
its update by each member's own learning rate. For adam, adamw, sgd and rmsprop the
learning rate is the last factor of the update, so this equals building the optimiser
with that learning rate, and lets one compiled program train members with different rates.
"""

from __future__ import annotations

from dataclasses import dataclass

import optax

from aejax.settings import NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, Rule, Settings, require, setting


@dataclass(frozen=True)
class OptimSpec(Settings):
    section = "optim"
    name: str = setting("adam", "the optimiser", choices=("adam", "adamw", "sgd", "rmsprop"))
    learning_rate: float = setting(1e-3, "the step size", rule=POSITIVE, member=True, label="lr")
    schedule: str = setting("constant", "learning-rate schedule", choices=("constant", "cosine", "warmup_cosine"))
    warmup_steps: int = setting(0, "warmup_cosine: steps of linear warmup", rule=NON_NEGATIVE_INT)
    momentum: float = setting(0.9, "sgd", rule=Rule(lambda v: 0 <= v < 1, "a number in [0, 1)"))
    weight_decay: float = setting(1e-4, "adamw", rule=NON_NEGATIVE)
    clip_norm: float | None = setting(None, "clip the global gradient norm (null: no clipping)",
                                      rule=Rule(lambda v: v > 0, "null or a number > 0"))

    def check_rules(self) -> None:
        require(self.warmup_steps == 0 or self.schedule == "warmup_cosine", "optim.warmup_steps", self.warmup_steps,
                "0 unless optim.schedule=warmup_cosine (the other schedules have no warmup)")


def make_schedule(spec: OptimSpec, total_steps: int) -> optax.Schedule:
    if spec.schedule == "constant":
        return optax.constant_schedule(1.0)
    if spec.schedule == "cosine":
        return optax.cosine_decay_schedule(1.0, max(total_steps, 1))
    return optax.warmup_cosine_decay_schedule(0.0, 1.0, spec.warmup_steps, max(total_steps, spec.warmup_steps + 1))


OPTIMIZERS = {
    "adam": lambda s, lr: optax.adam(lr),
    "adamw": lambda s, lr: optax.adamw(lr, weight_decay=s.weight_decay),
    "sgd": lambda s, lr: optax.sgd(lr, momentum=s.momentum or None),
    "rmsprop": lambda s, lr: optax.rmsprop(lr),
}


def make_optimizer(spec: OptimSpec, total_steps: int) -> optax.GradientTransformation:
    optimizer = OPTIMIZERS[spec.name](spec, make_schedule(spec, total_steps))
    if spec.clip_norm:
        optimizer = optax.chain(optax.clip_by_global_norm(spec.clip_norm), optimizer)
    return optimizer
