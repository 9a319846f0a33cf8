"""Synthetic data with known structure.

- `manifold_points`: points near a smooth `intrinsic_dim`-dimensional manifold in `dim`
  dimensions: t ~ U(-1, 1)^k, x = tanh(t A) B / sqrt(h) + noise * N(0, I), with fixed random
  A (k x h) and B (h x dim), h = 4 * dim. The manifold dimension is known, so a code of that
  size suffices.
- `cosine_pairs`: pairs of unit vectors whose cosine similarity is exactly `similarity`.
"""

from __future__ import annotations

import numpy as np


def manifold_points(rng: np.random.Generator, n: int, dim: int, intrinsic_dim: int,
                    noise: float) -> np.ndarray:
    hidden = 4 * dim
    a = rng.normal(size=(intrinsic_dim, hidden)) * 2.0
    b = rng.normal(size=(hidden, dim))
    t = rng.uniform(-1, 1, size=(n, intrinsic_dim))
    x = np.tanh(t @ a) @ b / np.sqrt(hidden)
    return (x + noise * rng.normal(size=x.shape)).astype(np.float32)


def cosine_pairs(rng: np.random.Generator, n: int, dim: int, similarity) -> tuple[np.ndarray, np.ndarray]:
    """`n` pairs (v1, v2) of unit vectors in R^dim with cos(v1, v2) = similarity.

    v2 = s v1 + sqrt(1 - s^2) w, where w is a unit vector orthogonal to v1 (Gram-Schmidt),
    so the similarity is exact up to float rounding. `similarity` is a scalar or `(n,)`.
    """
    s = np.broadcast_to(np.asarray(similarity, np.float64), (n,))[:, None]
    v1 = rng.normal(size=(n, dim))
    v1 /= np.linalg.norm(v1, axis=1, keepdims=True)
    w = rng.normal(size=(n, dim))
    w -= np.sum(w * v1, axis=1, keepdims=True) * v1
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    v2 = s * v1 + np.sqrt(np.clip(1 - s**2, 0, None)) * w
    return v1.astype(np.float32), v2.astype(np.float32)
