"""Data with ground-truth factors of variation: what the disentanglement metrics sample from.

A `GroundTruthData` is a complete grid of discrete factors (factor i takes the values
0..factor_sizes[i]-1, every combination has an observation). As in disentanglement_lib:

- `sample_factors(n, rng)`: each factor drawn independently and uniformly, one column after
  the other (`rng.integers(size_i, size=n)`), so the same rng gives the same factors;
- `observations(factors)`: the `(n, D)` float32 observations (images in [0, 1], flattened
  row-major from `image_shape`) of those factor rows.

The flat grid index of a factor row is `factors @ strides` (row-major, the last factor
fastest): dSprites' `latents_bases` without its colour column.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def grid_strides(sizes) -> np.ndarray:
    """Row-major strides of a grid: (3, 6, 40, 32, 32) -> [245760, 40960, 1024, 32, 1]."""
    sizes = np.asarray(sizes, np.int64)
    return np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]).astype(np.int64)


def grid_factors(sizes) -> np.ndarray:
    """Every factor row of the grid in index order: `(prod(sizes), F)` int64."""
    return np.indices(tuple(sizes), dtype=np.int64).reshape(len(sizes), -1).T


class GroundTruthData:
    """Factor sizes and names, and `observe(factors (n, F) int64) -> (n, D) float32`."""

    def __init__(self, factor_sizes, factor_names, observe: Callable[[np.ndarray], np.ndarray],
                 image_shape: tuple | None = None):
        self.factor_sizes: tuple[int, ...] = tuple(int(s) for s in factor_sizes)
        self.factor_names: tuple[str, ...] = tuple(str(n) for n in factor_names)
        self.image_shape = None if image_shape is None else tuple(image_shape)   # (H, W, C) or None
        if len(self.factor_names) != len(self.factor_sizes) or min(self.factor_sizes, default=0) < 1:
            raise ValueError(f"GroundTruthData: factor_sizes={self.factor_sizes} and factor_names={self.factor_names} "
                             f"are not allowed; expected one name per factor and sizes >= 1")
        self._observe = observe

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    @property
    def strides(self) -> np.ndarray:
        return grid_strides(self.factor_sizes)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """`(n, F)` int64, each factor uniform on 0..size-1, independently."""
        return np.stack([rng.integers(size, size=n) for size in self.factor_sizes], axis=1).astype(np.int64)

    def observations(self, factors: np.ndarray) -> np.ndarray:
        """`(n, D)` float32 observations of the factor rows `(n, F)` (values 0..size-1)."""
        factors = np.asarray(factors)
        if factors.ndim != 2 or factors.shape[1] != self.num_factors or factors.dtype.kind not in "iu":
            raise ValueError(f"GroundTruthData.observations: factors of shape {factors.shape} and dtype "
                             f"{factors.dtype} are not allowed; expected integers (n, {self.num_factors})")
        if len(factors) and ((factors < 0).any() or (factors >= np.asarray(self.factor_sizes)).any()):
            raise ValueError(f"GroundTruthData.observations: factors outside 0..size-1 are not allowed; expected "
                             f"values below the factor sizes {self.factor_sizes}")
        return np.asarray(self._observe(factors.astype(np.int64)), np.float32)

    def __repr__(self) -> str:
        factors = ", ".join(f"{n}={s}" for n, s in zip(self.factor_names, self.factor_sizes))
        return f"GroundTruthData({factors}; image_shape={self.image_shape})"
