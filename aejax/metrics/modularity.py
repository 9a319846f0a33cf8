"""Modularity and explicitness (Ridgeway & Mozer 2018; disentanglement_lib
`modularity_explicitness.py`, study `modularity_explicitness.gin`: 10,000 train, 5,000 test points).

- modularity: with m_ij the discrete MI between code i (20 histogram bins) and factor j, per code
  1 - (sum_j m_ij^2 - max_j m_ij^2) / (max_j m_ij^2 (F - 1)), 0 for a code with no information;
  the mean over codes.
- explicitness: codes z-scored with the train mean and std; per factor a `LogisticRegression()`
  (scikit-learn defaults) on all codes; the macro ROC-AUC of its class probabilities on the test
  points (one-vs-rest indicators), averaged over factors (disentanglement_lib's
  `explicitness_score_test`).
"""

from __future__ import annotations

import warnings

import numpy as np

from aejax.metrics.common import (Draw, as_members, check_factors, histogram_discretize, mutual_info, sample_split,
                                  split, unbatch)

NAMES = ("modularity", "explicitness")
SALT = 6
SIZES = {"num_train": 10_000, "num_test": 5_000}


def modularity_from_mi(m: np.ndarray) -> np.ndarray:
    """`m (..., K, F)` mutual information -> `(...)` modularity."""
    sq = np.square(m)
    top = sq.max(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_code = 1.0 - (sq.sum(axis=-1) - top) / (top * (sq.shape[-1] - 1.0))
    return np.mean(np.where(top == 0.0, 0.0, per_code), axis=-1)


def modularity(codes, factors, num_bins: int = 20):
    """`codes (n, K)` or `(M, n, K)`, `factors (n, F)` -> modularity (float, or `(M,)`)."""
    codes, single = as_members(codes)
    factors = check_factors(factors, codes.shape[1])
    return unbatch(modularity_from_mi(mutual_info(histogram_discretize(codes, num_bins), factors)), single)


def _explicitness_one(x_train, y_train, x_test, y_test, seed: int) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import MultiLabelBinarizer

    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std == 0.0, 1.0, std)  # a constant code: disentanglement_lib divides by 0 and fails
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    aucs = []
    for j in range(y_train.shape[1]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # lbfgs max_iter=100, as the reference
            clf = LogisticRegression(random_state=seed).fit(x_train, y_train[:, j])
        onehot = MultiLabelBinarizer(classes=clf.classes_).fit_transform(y_test[:, j, None])
        aucs.append(roc_auc_score(onehot, clf.predict_proba(x_test)))
    return float(np.mean(aucs))


def explicitness(codes_train, factors_train, codes_test, factors_test, seed: int = 0):
    """Codes `(n, K)` or `(M, n, K)` -> mean test ROC-AUC over factors (float, or `(M,)`)."""
    (xs, single), (xt, _) = as_members(codes_train), as_members(codes_test)
    ys, yt = check_factors(factors_train, xs.shape[1]), check_factors(factors_test, xt.shape[1])
    out = np.array([_explicitness_one(xs[m], ys, xt[m], yt, seed) for m in range(xs.shape[0])])
    return float(out[0]) if single else out


def sample(ground_truth, rng, num_train: int = SIZES["num_train"], num_test: int = SIZES["num_test"]) -> Draw:
    return sample_split(ground_truth, rng, num_train, num_test)


def score(codes, draw: Draw, mode: str = "exact", posterior=None, names=NAMES) -> dict:
    del mode, posterior  # one definition in every mode
    x_train, y_train, x_test, y_test = split(codes, draw)
    out = {}
    if "modularity" in names:
        out["modularity"] = modularity(x_train, y_train)
    if "explicitness" in names:
        out["explicitness"] = explicitness(x_train, y_train, x_test, y_test, seed=draw.meta["seed"])
    return out
