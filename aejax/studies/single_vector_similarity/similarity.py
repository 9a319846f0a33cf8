"""Similarity measures between codes, and their statistics. numpy in, numpy out."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr


def cosine(a: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise cosine similarity of `(n, k)` arrays; NaN where a code is all zeros."""
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    out = np.sum(a * b, axis=-1) / np.maximum(na * nb, eps)
    return np.where((na < eps) | (nb < eps), np.nan, out)


def linear_cka(x: np.ndarray, y: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Linear CKA (Kornblith et al. 2019) of representations `(..., P, k1)` and `(..., P, k2)`.

    Invariant to rotations and isotropic scaling of either code space, so it compares what two
    encoders do to the same P probe inputs without assuming their code bases agree.
    """
    x = x - x.mean(axis=-2, keepdims=True)
    y = y - y.mean(axis=-2, keepdims=True)
    cross = np.sum((np.swapaxes(y, -1, -2) @ x) ** 2, axis=(-2, -1))
    xx = np.sqrt(np.sum((np.swapaxes(x, -1, -2) @ x) ** 2, axis=(-2, -1)))
    yy = np.sqrt(np.sum((np.swapaxes(y, -1, -2) @ y) ** 2, axis=(-2, -1)))
    return cross / np.maximum(xx * yy, eps)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rho over the pairs where both values are finite."""
    ok = np.isfinite(x) & np.isfinite(y)
    return float(spearmanr(x[ok], y[ok]).statistic)


def spearman_with_ci(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, n_boot: int = 1000,
                     level: float = 0.95) -> dict:
    """Spearman rho of (x, y) over pairs, with a percentile bootstrap interval (pairs resampled).

    Pairs where y is NaN (an all-zero code) are dropped and counted.
    """
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    rho = spearman(x, y)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(x), len(x))
        boots.append(spearmanr(x[idx], y[idx]).statistic)
    boots = np.asarray(boots, float)
    boots = boots[np.isfinite(boots)]
    lo, hi = np.percentile(boots, [50 * (1 - level), 50 * (1 + level)]) if len(boots) else (np.nan, np.nan)
    return {"rho": rho, "lo": float(lo), "hi": float(hi), "n": int(ok.sum()), "dropped": int((~ok).sum())}
