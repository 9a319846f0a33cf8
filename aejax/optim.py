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
    schedule: str = setting("constant", "learning-rate schedule (warmup_decay: linear warm-up, constant, linear decay "
                            "to 0 over the last optim.decay_steps, as Anthropic's SAEs; burda: stages of 1, 3, 9, "
                            "... 3^i of 3,280 parts of training, each at 10^(-1/7) of the rate before, Burda et al.'s IWAE "
                            "schedule over its 3,280 epochs)",
                            choices=("constant", "cosine", "warmup_cosine", "warmup_decay", "burda"))
    warmup_steps: int = setting(0, "warmup_cosine, warmup_decay: steps of linear warmup", rule=NON_NEGATIVE_INT)
    decay_steps: int = setting(0, "warmup_decay: the last steps, over which the rate falls linearly to 0",
                               rule=NON_NEGATIVE_INT)
    momentum: float = setting(0.9, "sgd", rule=Rule(lambda v: 0 <= v < 1, "a number in [0, 1)"))
    weight_decay: float = setting(1e-4, "adamw", rule=NON_NEGATIVE)
    eps: float = setting(1e-8, "adam, adamw: epsilon added to the update's denominator (Burda et al.'s IWAE: 1e-4)",
                         rule=POSITIVE)
    clip_norm: float | None = setting(None, "clip the global gradient norm (null: no clipping)",
                                      rule=Rule(lambda v: v > 0, "null or a number > 0"))

    def check_rules(self) -> None:
        require(self.warmup_steps == 0 or self.schedule in ("warmup_cosine", "warmup_decay"), "optim.warmup_steps",
                self.warmup_steps, "0 unless optim.schedule=warmup_cosine or warmup_decay (the others have no warmup)")
        require(self.eps == OptimSpec.eps or self.name in ("adam", "adamw"), "optim.eps", self.eps,
                f"{OptimSpec.eps} (its default) unless optim.name=adam or adamw (the others have no epsilon)")
        require(self.decay_steps == 0 or self.schedule == "warmup_decay", "optim.decay_steps", self.decay_steps,
                "0 unless optim.schedule=warmup_decay")


def make_schedule(spec: OptimSpec, total_steps: int) -> optax.Schedule:
    if spec.schedule == "constant":
        return optax.constant_schedule(1.0)
    if spec.schedule == "cosine":
        return optax.cosine_decay_schedule(1.0, max(total_steps, 1))
    if spec.schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, 1.0, spec.warmup_steps, max(total_steps, spec.warmup_steps + 1))
    if spec.schedule == "burda":
        return burda(total_steps)
    return warmup_decay(spec.warmup_steps, spec.decay_steps, total_steps)


def warmup_decay(warmup: int, decay: int, total: int) -> optax.Schedule:
    """0 -> 1 linearly over `warmup` steps, 1, then 1 -> 0 linearly over the last `decay` steps."""
    import jax.numpy as jnp

    def schedule(step):
        up = jnp.minimum(1.0, (step + 1) / warmup) if warmup else 1.0
        down = jnp.clip((total - step) / decay, 0.0, 1.0) if decay else 1.0
        return jnp.minimum(up, down)

    return schedule


def burda(total: int) -> optax.Schedule:
    """Burda et al. 2016 (IWAE, Sec. 5): 3,280 epochs in 8 stages of 3^i epochs, i = 0..7, stage i at
    10^(-i/7) of the rate. The stages keep their shares of training when it is shorter or longer."""
    import jax.numpy as jnp
    import numpy as np

    stage_ends = jnp.asarray(np.cumsum([3**i for i in range(8)])[:-1] / 3280 * total)

    def schedule(step):
        return 10.0 ** (-jnp.sum(step >= stage_ends) / 7)

    return schedule


OPTIMIZERS = {
    "adam": lambda s, lr: optax.adam(lr, eps=s.eps),
    "adamw": lambda s, lr: optax.adamw(lr, eps=s.eps, weight_decay=s.weight_decay),
    "sgd": lambda s, lr: optax.sgd(lr, momentum=s.momentum or None),
    "rmsprop": lambda s, lr: optax.rmsprop(lr),
}


def make_optimizer(spec: OptimSpec, total_steps: int) -> optax.GradientTransformation:
    optimizer = OPTIMIZERS[spec.name](spec, make_schedule(spec, total_steps))
    if spec.clip_norm:
        optimizer = optax.chain(optax.clip_by_global_norm(spec.clip_norm), optimizer)
    return optimizer
