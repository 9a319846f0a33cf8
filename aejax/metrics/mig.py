"""Mutual Information Gap (Chen et al. 2018; disentanglement_lib `mig.py`, study `mig.gin`).

MIG = mean_j (I_(1)j - I_(2)j) / H_j: per factor j, the gap between the two codes with the largest
discrete mutual information with it (codes binned into 20 equal-width histogram bins), over the
factor's entropy. Study defaults: 10,000 points.
"""

from __future__ import annotations

import numpy as np

from aejax.metrics.common import (Draw, as_members, check_factors, discrete_entropy, histogram_discretize, mutual_info,
                                  unbatch)

NAMES = ("mig",)
SALT = 5  # position of mig.gin among the study's sorted metric files
SIZES = {"num_train": 10_000}


def mig(codes, factors, num_bins: int = 20):
    """`codes (n, K)` or `(M, n, K)`, `factors (n, F)` -> MIG (float, or `(M,)`)."""
    codes, single = as_members(codes)
    factors = check_factors(factors, codes.shape[1])
    m = mutual_info(histogram_discretize(codes, num_bins), factors)  # (M, K, F)
    top = -np.sort(-m, axis=1)
    return unbatch(np.mean((top[:, 0] - top[:, 1]) / discrete_entropy(factors), axis=-1), single)


def sample(ground_truth, rng: np.random.Generator, num_train: int = SIZES["num_train"]) -> Draw:
    return Draw(ground_truth.sample_factors(num_train, rng))


def score(codes, draw: Draw, mode: str = "exact", posterior=None, names=NAMES) -> dict:
    del mode, posterior, names  # no classifier: one definition
    return {"mig": mig(codes, draw.factors)}
