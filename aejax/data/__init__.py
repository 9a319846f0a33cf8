"""Datasets by name (`data.name`): synthetic, synthetic_features, digits, mnist, array, images, activations, and any name
given to `register_loader` (or loaded through `data.loader=package.module:function`).

`load_dataset(spec)` returns a `Dataset` of float32 arrays `(N, D)` with fixed
train/validation/test splits (the split never depends on a run's seed) and labels
for probes. Image data is scaled to [0, 1].

Your own data:

- `data=array data.path=FILE.npz` (or `.npy`): `aejax.data.arrays`;
- `data=activations data.path=DIR` (a folder of `.npy` shards (rows, D), a model's activations, read
  memory-mapped in a shuffled order: `Dataset.stream`): `aejax.data.activations`;
- `data=images data.path=DIR` (PNG/JPEG files, optionally one sub-folder per label): `aejax.data.images`;
- known sparse features (ground truth for sparse autoencoders, SynthSAEBench): `data=synthetic_features`
  and `data=synth_sae_bench_16k` (`aejax.data.features`; `Dataset.features`);
- ground-truth factors: `data=array data.factors_key=KEY` (`aejax.data.arrays`), `data=dsprites` and the
  small `data=shapes_toy` (`aejax.data.dsprites`); `Dataset.ground_truth` samples factors and their
  observations for the disentanglement metrics (`aejax.data.ground_truth`);
- in Python, `register_loader("mydata", fn)` with `fn(spec) -> Dataset`; `from_arrays(spec, x, y, ...)`
  builds that Dataset with the same checks, scaling, splits, caps and binarisation as `data=array`.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from typing import Callable

import numpy as np

from aejax.data.activations import load_activations
from aejax.data.arrays import from_arrays, load_array
from aejax.data.cache import cache_dir, locate  # data.root/data.path, $AEJAX_DATA_ROOT, the user cache
from aejax.data.dataset import SPLIT_SEED, Dataset, binarize, finish, split_off
from aejax.data.dsprites import check_sprites_spec, load_sprites
from aejax.data.features import FeatureModel, SyntheticFeatures, load_synthetic_features
from aejax.data.ground_truth import GroundTruthData
from aejax.data.images import load_images
from aejax.data.mnist import load_mnist
from aejax.data.spec import DataSpec
from aejax.data.synthetic import cosine_pairs, manifold_points
from aejax.errors import ConfigError
from aejax.settings import require

def _digits(spec: DataSpec) -> Dataset:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    bunch = load_digits()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(bunch.data))
    x = (bunch.data[order] / 16.0).astype(np.float32)
    y = bunch.target[order].astype(np.int32)
    (x_trval, y_trval), (x_test, y_test) = split_off(x, y, 0.2)
    return finish(spec, x_trval, y_trval, x_test, y_test, (8, 8, 1))


def _mnist(spec: DataSpec) -> Dataset:
    d = load_mnist(spec.root, spec.download)
    return finish(spec, d["train_images"], d["train_labels"], d["test_images"], d["test_labels"], (28, 28, 1))


def _synthetic(spec: DataSpec) -> Dataset:
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
    return finish(spec, x[n_test:], None if y is None else y[n_test:], x[:n_test],
                  None if y is None else y[:n_test], None)


BUILTIN = ("synthetic", "synthetic_features", "digits", "mnist", "array", "images", "dsprites", "shapes_toy",
           "activations")
# name -> fn(spec: DataSpec) -> Dataset. `register_loader` adds to it; `check_spec` reads it.
LOADERS: dict[str, Callable[[DataSpec], Dataset]] = {
    "synthetic": _synthetic, "synthetic_features": load_synthetic_features, "digits": _digits, "mnist": _mnist,
    "array": load_array, "images": load_images, "dsprites": load_sprites, "shapes_toy": load_sprites,
    "activations": load_activations}


def register_loader(name: str, fn: Callable[[DataSpec], Dataset]) -> None:
    """Make `data.name=<name>` load `fn(spec)`, a `Dataset` (build it with `from_arrays(spec, x, y, ...)`
    to get the same checks, scaling, splits, caps and binarisation as `data=array`; a Dataset
    built by hand is used as it is). Registering a name again replaces its loader; the built-in
    names cannot be replaced. The registry lives in this process: a run, a study or `load_run`
    in another process needs the registration again (or `data.loader=package.module:function`)."""
    if not isinstance(name, str) or not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"register_loader: name={name!r} is not allowed; expected letters, digits, '_' or '-'")
    if name in BUILTIN:
        raise ValueError(f"register_loader: name={name!r} is a built-in dataset; choose another name")
    if not callable(fn):
        raise ValueError(f"register_loader: fn={fn!r} is not callable; expected fn(spec) -> Dataset")
    LOADERS[name] = fn


def loader_names() -> tuple[str, ...]:
    """The names `data.name` accepts now: the built-ins and the registered ones."""
    return tuple(LOADERS)


def _import_loader(path: str) -> Callable[[DataSpec], Dataset]:
    module, _, attr = path.partition(":")
    try:
        fn = importlib.import_module(module)
        for part in attr.split("."):
            fn = getattr(fn, part)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"data.loader={path!r} cannot be imported ({type(err).__name__}: {err}); "
                          f"expected 'package.module:function' importable from this Python") from None
    if not callable(fn):
        raise ConfigError(f"data.loader={path!r} is not callable; expected a function fn(spec) -> Dataset")
    return fn


def _check_returned(data, where: str) -> Dataset:
    """A registered loader's Dataset: float32 (N, D) splits of one width, finite, labels to match."""
    if not isinstance(data, Dataset):
        raise ConfigError(f"{where}: its loader returned a {type(data).__name__}, which is not allowed; expected an "
                          f"aejax.data.Dataset (build one with aejax.data.from_arrays(spec, x, y))")
    splits = {}
    for split in ("train", "val", "test"):
        x = np.asarray(getattr(data, split))
        if split == "train" and data.train_decode is not None:  # stored rows: check a decoded batch
            x = np.asarray(data.train_decode(x[:1024]))
        if x.ndim != 2 or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise ConfigError(f"{where}: Dataset.{split} has shape {x.shape} and dtype {x.dtype}, which is not allowed; "
                              f"expected a float array (N, D)")
        x = x.astype(np.float32, copy=False)
        if x.shape[1] != data.dim:
            raise ConfigError(f"{where}: Dataset.{split} has {x.shape[1]} values per example and Dataset.train "
                              f"{data.dim}, which is not allowed; expected one width D for every split")
        if not np.isfinite(x).all():
            raise ConfigError(f"{where}: Dataset.{split} holds NaN or infinite values, which is not allowed; "
                              f"expected finite numbers")
        labels = getattr(data, f"{split}_labels")
        count = len(data.train) if split == "train" else len(x)
        if labels is not None and len(labels) != count:
            raise ConfigError(f"{where}: Dataset.{split}_labels has {len(labels)} entries for {count} examples, which "
                              f"is not allowed; expected one label per example")
        splits[split] = x
    if data.train_decode is not None:
        splits["train"] = data.train  # kept as stored
    if len(splits["train"]) == 0 or len(splits["test"]) == 0:
        raise ConfigError(f"{where}: the Dataset has {len(splits['train'])} training and {len(splits['test'])} test "
                          f"examples, which is not allowed; expected at least one of each")
    if data.image_shape is not None and int(np.prod(data.image_shape)) != splits["test"].shape[1]:
        raise ConfigError(f"{where}: Dataset.image_shape={tuple(data.image_shape)} is not allowed; expected H*W*C = "
                          f"{splits['test'].shape[1]} (the values per example) or None")
    return replace(data, **splits)


def check_spec(spec: DataSpec) -> None:
    """The data settings only the datasets can judge (aejax.config knows none): data.name among
    the loaders, settings that only some datasets read, the grid datasets' sizes. `load_dataset`
    and aejax-train's pre-check call it; one-line ConfigError."""
    if spec.loader is None and spec.name not in LOADERS:
        raise ConfigError(f"data.name={spec.name!r} is not allowed; expected one of {', '.join(LOADERS)} "
                          f"(register your own with aejax.data.register_loader, or set data.loader)")
    if spec.loader is None and spec.name != "array":
        for key in ("factors_key", "test_factors_key"):
            require(getattr(spec, key) is None, f"data.{key}", getattr(spec, key),
                    f"null for data.name={spec.name} (ground-truth factors of your own .npz need data=array)")
    if spec.loader is None and spec.name in ("dsprites", "shapes_toy"):
        check_sprites_spec(spec)


def load_dataset(spec: DataSpec) -> Dataset:
    check_spec(spec)
    if spec.loader:
        return _check_returned(_import_loader(spec.loader)(spec), f"data.loader={spec.loader!r}")
    data = LOADERS[spec.name](spec)
    return data if spec.name in BUILTIN else _check_returned(data, f"data.name={spec.name!r}")


def check_unit_interval(data: Dataset, why: str) -> None:
    """ConfigError (one line) unless every split's values lie in [0, 1]. `why` names the setting
    that needs them, e.g. "model.likelihood=bernoulli"."""
    train = data.train if data.train_decode is None else np.asarray(data.train_decode(data.train[:1024]))
    splits = [x for x in (train, data.val, data.test) if x.size]
    lo, hi = min(float(x.min()) for x in splits), max(float(x.max()) for x in splits)
    if lo < 0 or hi > 1:
        where = f"data.path={data.source!r}" if data.source else f"data.name={data.name!r}"
        raise ConfigError(f"{where}: values from {lo:.4g} to {hi:.4g} are not allowed with {why}; expected data in "
                          f"[0, 1] (uint8 is scaled by 1/255 but float data is taken as is: rescale it)")

__all__ = ["Dataset", "GroundTruthData", "FeatureModel", "SyntheticFeatures", "load_dataset", "check_spec",
           "cosine_pairs", "manifold_points", "binarize", "register_loader",
           "loader_names", "from_arrays", "locate", "cache_dir", "check_unit_interval", "finish", "SPLIT_SEED"]
