"""Datasets by name (`data.name`): synthetic, digits, mnist.

`load_dataset(spec)` returns a `Dataset` of float32 arrays `(N, D)` with fixed
train/validation/test splits (the split never depends on a run's seed) and labels
for probes. Image data is scaled to [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aejax.config import DataSpec
from aejax.data.mnist import load_mnist
from aejax.data.synthetic import cosine_pairs, manifold_points

SPLIT_SEED = 20260101  # fixed: the same split for every run and every seed


@dataclass(frozen=True)
class Dataset:
    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    train_labels: np.ndarray | None = None
    val_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    image_shape: tuple | None = None   # (H, W, C) for images

    @property
    def dim(self) -> int:
        return self.train.shape[-1]


def _split_off(x, y, fraction):
    """The last `fraction` of (x, y) becomes the held-out part."""
    n_held = int(round(len(x) * fraction))
    cut = len(x) - n_held
    return (x[:cut], None if y is None else y[:cut]), (x[cut:], None if y is None else y[cut:])


def _digits(spec: DataSpec):
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    bunch = load_digits()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(bunch.data))
    x = (bunch.data[order] / 16.0).astype(np.float32)
    y = bunch.target[order].astype(np.int32)
    (x_trval, y_trval), (x_test, y_test) = _split_off(x, y, 0.2)
    return x_trval, y_trval, x_test, y_test, (8, 8, 1)


def _mnist(spec: DataSpec):
    d = load_mnist(spec.root, spec.download)
    return d["train_images"], d["train_labels"], d["test_images"], d["test_labels"], (28, 28, 1)


def _synthetic(spec: DataSpec):
    rng = np.random.default_rng(spec.seed)
    n_test = max(1, spec.num_samples // 5)
    if spec.generator == "manifold":
        x = manifold_points(rng, spec.num_samples + n_test, spec.dim, spec.intrinsic_dim, spec.noise)
        y = None
    else:
        n_pairs = (spec.num_samples + n_test + 1) // 2
        v1, v2 = cosine_pairs(rng, n_pairs, spec.dim, spec.similarity)
        x = np.stack([v1, v2], axis=1).reshape(-1, spec.dim)[: spec.num_samples + n_test]
        y = np.repeat(np.arange(n_pairs, dtype=np.int32), 2)[: len(x)]  # label = pair index
    return x[n_test:], None if y is None else y[n_test:], x[:n_test], None if y is None else y[:n_test], None


LOADERS = {"digits": _digits, "mnist": _mnist, "synthetic": _synthetic}


def binarize(x: np.ndarray, how: str, seed: int = 0) -> np.ndarray:
    """none | threshold (x > 0.5) | fixed (one Bernoulli(x) draw with a fixed seed, kept for all epochs).

    `dynamic` is `fixed` here: the training split keeps its intensities and the training step
    draws a fresh binarisation of every batch (`aejax.objectives.make_loss`)."""
    if how == "threshold":
        return (x > 0.5).astype(np.float32)
    if how in ("fixed", "dynamic"):
        return (np.random.default_rng(seed).uniform(size=x.shape) < x).astype(np.float32)
    return x


def load_dataset(spec: DataSpec) -> Dataset:
    x_trval, y_trval, x_test, y_test, image_shape = LOADERS[spec.name](spec)
    (x_train, y_train), (x_val, y_val) = _split_off(x_trval, y_trval, spec.val_fraction)
    if spec.train_size:
        x_train = x_train[: spec.train_size]
        y_train = None if y_train is None else y_train[: spec.train_size]
    if spec.test_size:
        x_test = x_test[: spec.test_size]
        y_test = None if y_test is None else y_test[: spec.test_size]
    # Each split gets its own fixed draw, so test images never share noise with training images.
    # With `dynamic` the training images stay grey: every step draws its own binarisation.
    x_train, x_val, x_test = (x if spec.binarize == "dynamic" and i == 0 else binarize(x, spec.binarize, SPLIT_SEED + i)
                              for i, x in enumerate((x_train, x_val, x_test)))
    return Dataset(spec.name, x_train, x_val, x_test, y_train, y_val, y_test, image_shape)


__all__ = ["Dataset", "load_dataset", "cosine_pairs", "manifold_points", "binarize"]
