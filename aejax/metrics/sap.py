"""SAP score (Kumar et al. 2018; disentanglement_lib `sap_score.py`, study `sap_score.gin`:
10,000 train and 5,000 test points, `continuous_factors=False`).

S[i, j] = test accuracy of `LinearSVC(C=0.01, class_weight="balanced")` fit on code i alone to predict
factor j; SAP = mean_j (S_(1)j - S_(2)j), the gap between the two most predictive codes.
"""

from __future__ import annotations

import warnings

import numpy as np

from aejax.metrics.common import Draw, as_members, check_factors, sample_split, split

NAMES = ("sap",)
SALT = 7
SIZES = {"num_train": 10_000, "num_test": 5_000}


def score_matrix(x_train, y_train, x_test, y_test, seed: int = 0, continuous_factors: bool = False) -> np.ndarray:
    """One member: `x (n, K)`, `y (n, F)` -> `S (K, F)` single-code test accuracies.

    `continuous_factors=True` (not the study's setting) gives disentanglement_lib's other variant,
    S[i, j] = cov(x_i, y_j)^2 / (var x_i var y_j) on the train points (0 where var x_i <= 1e-12).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    if continuous_factors:
        x, y = np.asarray(x_train, np.float64), np.asarray(y_train, np.float64)
        xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
        cov = xc.T @ yc / (len(x) - 1)
        var_x, var_y = np.var(x, axis=0, ddof=1), np.var(y, axis=0, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = cov**2 / (var_x[:, None] * var_y[None, :])
        return np.where(var_x[:, None] > 1e-12, s, 0.0)
    s = np.zeros((x_train.shape[1], y_train.shape[1]))
    for i in range(x_train.shape[1]):
        for j in range(y_train.shape[1]):
            # random_state only matters for the dual solver; disentanglement_lib leaves it None.
            clf = LinearSVC(C=0.01, class_weight="balanced", random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.fit(x_train[:, i:i + 1], y_train[:, j])
            s[i, j] = np.mean(clf.predict(x_test[:, i:i + 1]) == y_test[:, j])
    return s


def gap_top_two(s: np.ndarray) -> float:
    top = np.sort(s, axis=0)
    return float(np.mean(top[-1] - top[-2]))


def sap(codes_train, factors_train, codes_test, factors_test, seed: int = 0, continuous_factors: bool = False):
    """Codes `(n, K)` or `(M, n, K)` -> SAP (float, or `(M,)`)."""
    (xs, single), (xt, _) = as_members(codes_train), as_members(codes_test)
    ys, yt = check_factors(factors_train, xs.shape[1]), check_factors(factors_test, xt.shape[1])
    out = np.array([gap_top_two(score_matrix(xs[m], ys, xt[m], yt, seed, continuous_factors))
                    for m in range(xs.shape[0])])
    return float(out[0]) if single else out


def sample(ground_truth, rng, num_train: int = SIZES["num_train"], num_test: int = SIZES["num_test"]) -> Draw:
    return sample_split(ground_truth, rng, num_train, num_test)


def score(codes, draw: Draw, mode: str = "exact", posterior=None, names=NAMES) -> dict:
    del mode, posterior, names  # one definition in every mode
    return {"sap": sap(*split(codes, draw), seed=draw.meta["seed"])}
