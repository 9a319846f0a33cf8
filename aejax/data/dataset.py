"""The `Dataset` every loader returns, and the steps every loader shares (splits, caps, binarisation)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from aejax.data.ground_truth import GroundTruthData
from aejax.data.spec import DataSpec
from aejax.errors import ConfigError

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
    label_names: tuple | None = None   # label i is label_names[i] (images: the sub-folder names)
    source: str | None = None          # the file or folder the data came from (data.path)
    # `train` as stored rows (dsprites: bit-packed uint8 (N, D/8)); a pure JAX function maps a batch
    # of them to float32 (B, D) inside the compiled step. None: `train` is float32 (N, D) already.
    train_decode: Callable | None = None
    ground_truth: GroundTruthData | None = None   # factor sizes, sampling and observations (metrics)
    train_factors: np.ndarray | None = None       # (N, F) int64 ground-truth factors of each example
    val_factors: np.ndarray | None = None
    test_factors: np.ndarray | None = None
    # data=synthetic_features: the known features (`.model`, a FeatureModel) and the test rows' true
    # activations (`.test_activations`, CSR (N_test, F)); aejax.data.features
    features: Any = None
    # data=activations: an `aejax.data.activations.RowStream` (`num_rows`, `rows(epoch, start, count)`) that
    # reads each compiled call's training rows from files; `train` and `val` are then empty (0, D).
    stream: object | None = None

    @property
    def num_train(self) -> int:
        """Training examples: in memory, or streamed from files (`data=activations`)."""
        return self.stream.num_rows if self.stream is not None else len(self.train)

    @property
    def dim(self) -> int:
        """D, the values per example (a float32 row; `train` may hold packed rows)."""
        return self.test.shape[-1] if self.train_decode is not None else self.train.shape[-1]


def split_off(x, y, fraction):
    """The last `fraction` of (x, y) becomes the held-out part."""
    n_held = int(round(len(x) * fraction))
    cut = len(x) - n_held
    return (x[:cut], None if y is None else y[:cut]), (x[cut:], None if y is None else y[cut:])


def binarize(x: np.ndarray, how: str, seed: int = 0) -> np.ndarray:
    """none | threshold (x > 0.5) | fixed (one Bernoulli(x) draw with a fixed seed, kept for all epochs).

    `dynamic` is `fixed` here: the training split keeps its intensities and the training step
    draws a fresh binarisation of every batch (`aejax.models.make_loss`)."""
    if how == "threshold":
        return (x > 0.5).astype(np.float32)
    if how in ("fixed", "dynamic"):
        return (np.random.default_rng(seed).uniform(size=x.shape) < x).astype(np.float32)
    return x


def _where(spec: DataSpec, source) -> str:
    return f"data.name={spec.name}" + (f" in data.path={source}" if source else "")


def finish(spec: DataSpec, x_trval, y_trval, x_test, y_test, image_shape, label_names=None,
           source=None, factors=None, ground_truth=None) -> Dataset:
    """Training+validation and test arrays -> the Dataset: validation split from the end of the
    training split (`data.val_fraction`), `data.train_size`/`data.test_size` caps, binarisation.
    `factors` = (training+validation, test) factor arrays follow their examples."""
    f_trval, f_test = factors or (None, None)
    (x_train, y_train), (x_val, y_val) = split_off(x_trval, y_trval, spec.val_fraction)
    (_, f_train), (_, f_val) = split_off(x_trval, f_trval, spec.val_fraction)
    if len(x_train) == 0:
        raise ConfigError(f"data.val_fraction={spec.val_fraction} is not allowed here; it leaves none of the "
                          f"{len(x_trval)} training examples of data.name={spec.name} for training")
    # A cap above what the data holds would train on fewer examples than the config records: refused.
    for key, size, have, what in (("train_size", spec.train_size, len(x_train), "training"),
                                  ("test_size", spec.test_size, len(x_test), "test")):
        if size and size > have:
            raise ConfigError(f"data.{key}={size} is not allowed; expected at most the {have} {what} examples of "
                              f"{_where(spec, source)} (or null: all of them)")
    if spec.train_size:
        x_train, y_train, f_train = (None if a is None else a[: spec.train_size] for a in (x_train, y_train, f_train))
    if spec.test_size:
        x_test, y_test, f_test = (None if a is None else a[: spec.test_size] for a in (x_test, y_test, f_test))
    # Each split gets its own fixed draw, so test images never share noise with training images.
    # With `dynamic` the training images stay grey: every step draws its own binarisation.
    x_train, x_val, x_test = (x if spec.binarize == "dynamic" and i == 0 else binarize(x, spec.binarize, SPLIT_SEED + i)
                              for i, x in enumerate((x_train, x_val, x_test)))
    return Dataset(spec.name, x_train, x_val, x_test, y_train, y_val, y_test,
                   None if image_shape is None else tuple(image_shape),
                   None if label_names is None else tuple(label_names), source,
                   ground_truth=ground_truth, train_factors=f_train, val_factors=f_val, test_factors=f_test)
