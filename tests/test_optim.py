"""Optimiser settings (`optim.*`, aejax/optim.py): the schedules and Adam's epsilon."""

import numpy as np
import pytest


def test_burdas_schedule_divides_the_rate_by_10_to_the_1_7_after_1_3_9_epochs_of_3280():
    from aejax.optim import OptimSpec, make_schedule

    schedule = make_schedule(OptimSpec(schedule="burda"), 3280 * 10)   # 10 steps an epoch
    ends = np.cumsum([3**i for i in range(8)]) * 10                     # 10, 40, 130, ... 32,800
    for stage, end in enumerate(ends):
        assert float(schedule(end - 1)) == pytest.approx(10 ** (-stage / 7), rel=1e-6)
        if stage < 7:
            assert float(schedule(end)) == pytest.approx(10 ** (-(stage + 1) / 7), rel=1e-6)


def test_adams_epsilon_is_a_setting():
    import jax.numpy as jnp

    from aejax.optim import OptimSpec, make_optimizer

    grads = {"w": jnp.asarray([1e-4])}
    for eps in (1e-8, 1e-4):
        optimizer = make_optimizer(OptimSpec(eps=eps), 10)
        update, _ = optimizer.update(grads, optimizer.init(grads))
        # Adam's first step: -g / (|g| + eps) (bias-corrected moments equal g and g^2), times the normalised rate 1
        assert float(update["w"][0]) == pytest.approx(-1e-4 / (1e-4 + eps), rel=1e-4)
