"""Your own arrays: `data=array data.path=FILE`.

- `FILE.npy`: the inputs only.
- `FILE.npz` (`np.savez(FILE, x=..., y=..., x_test=..., y_test=...)`): the inputs under
  `data.inputs_key` (default `x`); labels under `data.labels_key` (default `y`, used if the file
  has them); a test split under `data.test_inputs_key`/`data.test_labels_key` (default
  `<inputs_key>_test`/`<labels_key>_test`, used if the file has them).

Inputs are `(N, D)` vectors, `(N, H, W)` grayscale or `(N, H, W, C)` channels-last images; a flat
`(N, D)` array is images when `data.image_shape` gives `[H, W]` or `[H, W, C]`. uint8 is scaled by
1/255, uint16 by 1/65535, bool to 0/1; float data is taken as it is (scale it yourself: MSE does
not mind, a Bernoulli likelihood or cross-entropy needs [0, 1]). Labels are integers or strings
(strings become 0..K-1 in sorted order; `Dataset.label_names` keeps them).

Ground-truth factors (`data.factors_key`, and `<factors_key>_test` or `data.test_factors_key`
for a test split): an integer array `(N, F)` (or `(N,)`), one row per input, values 0, 1, 2, ...
Factor i's size is its largest value + 1 (over both splits), and every combination of values
must have at least one example (a complete grid, as the metrics sample factors independently).
`Dataset.ground_truth.observations(factors)` returns, for each factor row, the first example in
file order (the inputs, then the test inputs) with exactly those factors, scaled like the inputs
(and thresholded with `data.binarize=threshold`; grey otherwise). The factors follow their
examples through the splits (`Dataset.train_factors`, ...).

Splits are fixed, never moved by a seed: without a test split in the file, `data.test_fraction`
of the examples is held out for testing after one fixed permutation (`data.split_shuffle`,
SPLIT_SEED; false keeps file order and takes the end); validation is the last
`data.val_fraction` of the (permuted) training examples. A test split given in the file keeps
its order. Caps and binarisation are those of MNIST (`aejax.data.finish`).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from aejax.data.spec import DataSpec
from aejax.data.dataset import SPLIT_SEED, Dataset, binarize, finish, split_off
from aejax.data.ground_truth import GroundTruthData, grid_strides
from aejax.errors import ConfigError

DTYPES = "uint8 (scaled by 1/255), uint16 (by 1/65535), bool, or float (taken as is)"
SHAPES = "(N, D) vectors, (N, H, W) or (N, H, W, C) images"


def _where(spec: DataSpec, source: str | None) -> str:
    return f"data.path={source!r}" if source else f"data.name={spec.name!r}"


def _to_float(x, what: str, where: str) -> np.ndarray:
    """Inputs as float32 `(N, ...)`, scaled by their dtype; one-line errors for what cannot be used."""
    x = np.asarray(x)
    kind = x.dtype.kind
    if x.dtype == np.uint8:
        out = x.astype(np.float32) / np.float32(255)
    elif x.dtype == np.uint16:
        out = x.astype(np.float32) / np.float32(65535)
    elif kind == "b":
        out = x.astype(np.float32)
    elif kind == "f":
        with np.errstate(over="ignore"):  # beyond float32: infinite, refused below
            out = x.astype(np.float32)
    else:
        raise ConfigError(f"{where}: {what} has dtype {x.dtype}, which is not allowed; expected {DTYPES}")
    if not 2 <= x.ndim <= 4:
        raise ConfigError(f"{where}: {what} has shape {x.shape}, which is not allowed; expected {SHAPES}")
    if len(x) == 0 or out[0].size == 0:
        raise ConfigError(f"{where}: {what} has shape {x.shape}, which holds no data; expected {SHAPES} with N, D > 0")
    if x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[3] not in (1, 3, 4):
        raise ConfigError(f"{where}: {what} has shape {x.shape}, which looks channels-first and is not allowed; expected "
                          f"channels-last (N, H, W, C): np.moveaxis(x, 1, -1)")
    finite = np.isfinite(out.reshape(len(out), -1)).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ConfigError(f"{where}: {what} holds NaN or infinite values (in {len(bad)} of {len(out)} examples, the "
                          f"first is example {bad[0]}), which is not allowed; expected finite numbers")
    return out


def _image_shape(per_example: tuple, given, where: str) -> tuple | None:
    """(H, W, C) from the array's trailing dims, or `data.image_shape` for flat inputs."""
    if given is not None:
        want = tuple(int(v) for v in given)
        want = want + (1,) if len(want) == 2 else want
    if len(per_example) == 1:
        if given is None:
            return None  # plain vectors
        if int(np.prod(want)) != per_example[0]:
            raise ConfigError(f"data.image_shape={list(given)} is not allowed; expected H*W*C = {per_example[0]}, the "
                              f"values per example in {where} (or null for plain vectors)")
        return want
    own = per_example if len(per_example) == 3 else (*per_example, 1)
    if given is not None and want != own:
        raise ConfigError(f"data.image_shape={list(given)} is not allowed; expected null or {list(own)}, the shape of "
                          f"the images in {where}")
    return own


def _labels(y, n: int, what: str, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.shape != (n,):
        raise ConfigError(f"{where}: {what} has shape {y.shape}, which is not allowed; expected ({n},), one label per example")
    if y.dtype.kind in "USO":
        if y.dtype.kind == "O" and not all(isinstance(v, str) for v in y):
            raise ConfigError(f"{where}: {what} has dtype object, which is not allowed; expected integers or strings")
        return y.astype(str)
    if y.dtype.kind == "f":
        if not (np.isfinite(y).all() and np.all(y == np.round(y))):
            raise ConfigError(f"{where}: {what} holds non-integer numbers, which is not allowed; expected integer "
                              f"class labels or strings")
    elif y.dtype.kind not in "biu":
        raise ConfigError(f"{where}: {what} has dtype {y.dtype}, which is not allowed; expected integers or strings")
    if len(y) and np.abs(y.astype(np.float64)).max() >= 2**31:
        raise ConfigError(f"{where}: {what} holds labels beyond int32, which is not allowed; expected class indices")
    return y.astype(np.int32)


def _factors(f, n: int, what: str, where: str) -> np.ndarray:
    """Factor rows as int64 `(n, F)`: integers >= 0, one row per example."""
    f = np.asarray(f)
    f = f[:, None] if f.ndim == 1 else f
    if f.ndim != 2 or len(f) != n or f.shape[1] == 0:
        raise ConfigError(f"{where}: {what} has shape {f.shape}, which is not allowed; expected ({n}, F): one row "
                          f"of integer factors per input")
    if f.dtype.kind == "f":
        if not (np.isfinite(f).all() and np.all(f == np.round(f))):
            raise ConfigError(f"{where}: {what} holds non-integer numbers, which is not allowed; expected integer "
                              f"factor values 0, 1, 2, ...")
    elif f.dtype.kind not in "biu":
        raise ConfigError(f"{where}: {what} has dtype {f.dtype}, which is not allowed; expected integer factor values")
    if f.size and (f.min() < 0 or f.max() >= 2**31):
        raise ConfigError(f"{where}: {what} holds values from {f.min()} to {f.max()}, which is not allowed; expected "
                          f"integers in [0, 2^31) (factor i takes the values 0..size_i - 1)")
    return f.astype(np.int64)


def ground_truth_of(x_all: np.ndarray, f_all: np.ndarray, image_shape, what: str, where: str) -> GroundTruthData:
    """GroundTruthData over every example: sizes = largest value + 1 per column, a complete grid,
    and the observation of a factor row = the first example (in this order) with those factors."""
    sizes = f_all.max(axis=0) + 1
    combinations = int(np.prod([int(s) for s in sizes]))  # exact: a Python int never overflows
    strides = grid_strides(sizes) if combinations <= len(f_all) else None
    present, first = np.unique(f_all @ strides, return_index=True) if strides is not None else ((), None)
    if len(present) < combinations:
        first_missing = None if strides is None else np.setdiff1d(np.arange(combinations), present)[0]
        missing = "" if strides is None else \
            f" (the first missing is {[int(v) for v in np.unravel_index(first_missing, sizes)]})"
        raise ConfigError(f"{where}: {what} covers {len(np.unique(f_all, axis=0))} of the {combinations} combinations "
                          f"of its values (sizes {[int(s) for s in sizes]}: the largest value + 1 per column)"
                          f"{missing}, which is not allowed; expected an example for every combination (a complete grid)")
    rows = x_all[first]
    return GroundTruthData(sizes, [f"factor_{i}" for i in range(len(sizes))], lambda f: rows[f @ strides], image_shape)


def from_arrays(spec: DataSpec, x, y=None, x_test=None, y_test=None, *, image_shape=None, label_names=None,
                source: str | None = None, names: dict | None = None, factors=None, factors_test=None) -> Dataset:
    """The Dataset `data=array` builds from these arrays: checked (dtype, shape, finite values,
    labels), scaled (uint8 /255, uint16 /65535, float as is), split (a fixed test split unless
    `x_test` is given, validation from the end of training), capped and binarised by `spec`.

    `image_shape` (else `spec.image_shape`) is only needed for flat `(N, D)` images. `source`
    names the data in error messages and `Dataset.source`; `names` maps x, y, x_test, y_test,
    factors, factors_test to the names the user knows them by (the .npz keys). `factors`
    (and `factors_test` with a test split): integer ground-truth factors (module doc)."""
    names = {"x": "x", "y": "y", "x_test": "x_test", "y_test": "y_test", "factors": "factors",
             "factors_test": "factors_test", **(names or {})}
    where = _where(spec, source)
    what = {k: f"array {names[k]!r} (the {role})" for k, role in
            (("x", "inputs"), ("y", "labels"), ("x_test", "test inputs"), ("y_test", "test labels"),
             ("factors", "factors"), ("factors_test", "test factors"))}
    x = _to_float(x, what["x"], where)
    shape = _image_shape(x.shape[1:], image_shape if image_shape is not None else spec.image_shape, where)
    if x_test is not None:
        x_test = _to_float(x_test, what["x_test"], where)
        if x_test.shape[1:] != x.shape[1:]:
            raise ConfigError(f"{where}: {what['x_test']} has shape {x_test.shape[1:]} per example and "
                              f"{what['x']} {x.shape[1:]}, which is not allowed; expected the same shape")
    if (y is None) != (y_test is None) and x_test is not None:
        have, missing = ("y", "y_test") if y is not None else ("y_test", "y")
        raise ConfigError(f"{where}: holds {what[have]} and {what['x_test']} but not {what[missing]}, which is not "
                          f"allowed; expected labels for both splits or neither (data.labels_key, data.test_labels_key)")
    y = None if y is None else _labels(y, len(x), what["y"], where)
    y_test = None if y_test is None or x_test is None else _labels(y_test, len(x_test), what["y_test"], where)
    kinds = {a.dtype.kind for a in (y, y_test) if a is not None}
    if kinds == {"U"}:  # strings -> 0..K-1 in sorted order
        label_names = np.unique(np.concatenate([a for a in (y, y_test) if a is not None]))
        y, y_test = (None if a is None else np.searchsorted(label_names, a).astype(np.int32) for a in (y, y_test))
        label_names = tuple(str(v) for v in label_names)
    elif len(kinds) > 1:
        raise ConfigError(f"{where}: {what['y']} and {what['y_test']} mix strings and numbers, which is not allowed; "
                          f"expected one kind of label")
    x, x_test = x.reshape(len(x), -1), None if x_test is None else x_test.reshape(len(x_test), -1)
    truth = None
    if factors is not None:
        if x_test is not None and factors_test is None:
            raise ConfigError(f"{where}: holds {what['factors']} and {what['x_test']} but no test factors, which is "
                              f"not allowed; expected factors for both splits (data.test_factors_key)")
        factors = _factors(factors, len(x), what["factors"], where)
        if x_test is not None:
            factors_test = _factors(factors_test, len(x_test), what["factors_test"], where)
            if factors_test.shape[1] != factors.shape[1]:
                raise ConfigError(f"{where}: {what['factors_test']} has {factors_test.shape[1]} columns and "
                                  f"{what['factors']} {factors.shape[1]}, which is not allowed; expected the same "
                                  f"factors")
        both = [a for a in (x, x_test) if a is not None]
        x_all = np.concatenate(both) if len(both) > 1 else x
        x_all = binarize(x_all, "threshold") if spec.binarize == "threshold" else x_all
        f_all = np.concatenate([factors, factors_test]) if x_test is not None else factors
        truth = ground_truth_of(x_all, f_all, shape, what["factors"], where)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x)) if spec.split_shuffle else None
    if order is not None:
        x, y = x[order], None if y is None else y[order]
        factors = None if factors is None else factors[order]
    if x_test is None:
        n_test = int(round(len(x) * spec.test_fraction))
        if not 1 <= n_test < len(x):
            raise ConfigError(f"data.test_fraction={spec.test_fraction} is not allowed for the {len(x)} examples in "
                              f"{where}; expected a fraction that leaves at least one test and one training example")
        (x, y), (x_test, y_test) = split_off(x, y, spec.test_fraction)
        if factors is not None:
            (_, factors), (_, factors_test) = split_off(factors, factors, spec.test_fraction)
    return finish(spec, x, y, x_test, y_test, shape, label_names, source,
                  factors=None if factors is None else (factors, factors_test), ground_truth=truth)


def _read(npz, key: str, setting: str, where: str) -> np.ndarray:
    try:
        return npz[key]
    except ValueError:  # object arrays need pickle, which is never allowed
        raise ConfigError(f"{where}: array {key!r} ({setting}) holds Python objects, which is not allowed; expected "
                          f"{DTYPES}") from None


def load_array(spec: DataSpec) -> Dataset:
    where = f"data.path={spec.path!r}"
    path = Path(spec.path).expanduser()
    if not path.is_file():
        state = "it is a folder; data=images reads folders" if path.is_dir() else "no such file"
        if not path.is_absolute():
            state += f"; relative paths start from {Path.cwd()}"
        raise ConfigError(f"{where} is not allowed; expected an existing .npy or .npz file ({state})")
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError:  # pickled data: object arrays, or not a NumPy file at all
        with open(path, "rb") as f:
            numpy_file = f.read(6) == b"\x93NUMPY"
        state = "holds Python objects" if numpy_file else "is not a .npy or .npz file"
        raise ConfigError(f"{where} {state}, which is not allowed; expected a .npy or .npz file of {DTYPES} "
                          f"(np.save / np.savez)") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise ConfigError(f"{where} cannot be read ({type(err).__name__}: {err}); expected a .npy or .npz file") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        for key in ("factors_key", "test_factors_key"):
            if getattr(spec, key) is not None:
                raise ConfigError(f"data.{key}={getattr(spec, key)!r} is not allowed; expected null for {where}, a "
                                  f".npy file (factors need an .npz holding them beside the inputs)")
        return from_arrays(spec, loaded, source=spec.path, names={"x": path.name})
    with loaded as npz:
        keys = list(npz.files)
        listing = ", ".join(keys) or "nothing"
        if spec.inputs_key not in keys:
            raise ConfigError(f"data.inputs_key={spec.inputs_key!r} is not allowed; expected the name of the inputs "
                              f"in {where}, which holds: {listing}")
        arrays = {"x": _read(npz, spec.inputs_key, "data.inputs_key", where)}
        names = {"x": spec.inputs_key}
        wanted = {"y": ("data.labels_key", spec.labels_key, spec.labels_key not in (None, "y")),
                  "x_test": ("data.test_inputs_key", spec.test_inputs_key or f"{spec.inputs_key}_test",
                             spec.test_inputs_key is not None),
                  "y_test": ("data.test_labels_key",
                             spec.test_labels_key or (f"{spec.labels_key}_test" if spec.labels_key else None),
                             spec.test_labels_key is not None),
                  "factors": ("data.factors_key", spec.factors_key, spec.factors_key is not None),
                  "factors_test": ("data.test_factors_key",
                                   spec.test_factors_key or (f"{spec.factors_key}_test" if spec.factors_key else None),
                                   spec.test_factors_key is not None)}
        for role, (setting, key, explicit) in wanted.items():
            if key is not None and key in keys:
                arrays[role], names[role] = _read(npz, key, setting, where), key
            elif explicit:
                raise ConfigError(f"{setting}={key!r} is not allowed; expected the name of an array in {where}, which "
                                  f"holds: {listing} (or null)")
    if "x_test" not in arrays:
        arrays.pop("y_test", None)
        arrays.pop("factors_test", None)
    return from_arrays(spec, **arrays, source=spec.path, names=names)
