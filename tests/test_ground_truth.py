"""Your own ground-truth data: `data=array data.factors_key=...` gives the same GroundTruthData
as dSprites; factors follow their examples through the splits; bad factors get one line."""

import numpy as np
import pytest

from aejax.config import DataSpec, parse_run
from aejax.data import check_spec, from_arrays, load_dataset
from aejax.errors import ConfigError
from conftest import assert_each_is_one_config_line, compose

SIZES = (3, 4, 2)


def grid_file(tmp_path, copies=2, **extra):
    """Every combination of SIZES `copies` times, shuffled; each image encodes its row number."""
    f = np.indices(SIZES).reshape(3, -1).T
    f = np.concatenate([f] * copies)[np.random.default_rng(0).permutation(len(f) * copies)]
    x = np.zeros((len(f), 6, 6), np.uint8)
    x.reshape(len(f), -1)[:, :4] = np.stack([f[:, 0] * 60, f[:, 1] * 60, f[:, 2] * 60, np.arange(len(f))], 1)
    path = tmp_path / "own.npz"
    np.savez(path, x=x, f=f, **extra)
    return path, x.reshape(len(x), -1).astype(np.float32) / 255, f


def test_factors_follow_their_examples_and_observations_are_the_first_match(tmp_path):
    path, x, f = grid_file(tmp_path)
    data = load_dataset(parse_run(compose(["data=array", f"data.path={path}", "data.factors_key=f"])).data)
    truth = data.ground_truth
    assert truth.factor_sizes == SIZES and truth.num_factors == 3 and truth.image_shape == (6, 6, 1)
    assert truth.factor_names == ("factor_0", "factor_1", "factor_2")
    row_of = {r.tobytes(): i for i, r in enumerate(x)}
    for split in ("train", "val", "test"):
        images, factors = getattr(data, split), getattr(data, f"{split}_factors")
        assert factors.dtype == np.int64 and len(factors) == len(images) > 0
        np.testing.assert_array_equal(factors, f[[row_of[r.tobytes()] for r in images]])
    # The observation of a factor row: the first example in file order with those factors.
    asked = truth.sample_factors(50, np.random.default_rng(3))
    first = [int(np.flatnonzero((f == a).all(1))[0]) for a in asked]
    np.testing.assert_array_equal(truth.observations(asked), x[first])


def test_a_test_split_in_the_file_needs_its_factors(tmp_path):
    path, x, f = grid_file(tmp_path, x_test=np.zeros((3, 6, 6), np.uint8), f_test=np.array([[0, 0, 0]] * 3))
    data = load_dataset(DataSpec(name="array", path=str(path), factors_key="f"))
    np.testing.assert_array_equal(data.test_factors, [[0, 0, 0]] * 3)
    assert len(data.train_factors) + len(data.val_factors) == len(f)
    # Lookups run over both splits in file order: the inputs' first match comes before the test split's.
    np.testing.assert_array_equal(data.ground_truth.observations(np.array([[0, 0, 0]])),
                                  x[[int(np.flatnonzero((f == 0).all(1))[0])]])


def test_from_arrays_takes_factors_in_python():
    f = np.indices((2, 5)).reshape(2, -1).T
    data = from_arrays(DataSpec(), np.random.default_rng(0).uniform(size=(10, 4)), factors=f)
    assert data.ground_truth.factor_sizes == (2, 5)
    assert len(data.train_factors) + len(data.val_factors) + len(data.test_factors) == 10


def _bad_cases(tmp_path):
    path, x, f = grid_file(tmp_path)

    def npz(name, **arrays):
        np.savez(tmp_path / name, x=x.reshape(-1, 6, 6), **arrays)
        return str(tmp_path / name)

    np.save(tmp_path / "x.npy", x)
    spec = lambda p, **k: DataSpec(name="array", path=p, factors_key="f", **k)  # noqa: E731
    return [
        ("missing factors key", DataSpec(name="array", path=str(path), factors_key="g"), "data.factors_key"),
        ("factors of another length", spec(npz("a.npz", f=f[:-1])), "data.path"),
        ("negative factors", spec(npz("b.npz", f=f - 1)), "data.path"),
        ("non-integer factors", spec(npz("c.npz", f=f + 0.5)), "data.path"),
        ("string factors", spec(npz("d.npz", f=f.astype(str))), "data.path"),
        ("no factor columns", spec(npz("e.npz", f=np.zeros((len(f), 0), int))), "data.path"),
        ("an incomplete grid", spec(npz("g.npz", f=np.where((f == [2, 3, 1]).all(1, keepdims=True), 0, f))),
         "data.path"),
        ("a value that never occurs", spec(npz("h.npz", f=f * 2)), "data.path"),
        ("test split without factors", spec(npz("i.npz", f=f, x_test=x[:2].reshape(-1, 6, 6))), "data.path"),
        ("test factors of other columns",
         spec(npz("j.npz", f=f, x_test=x[:2].reshape(-1, 6, 6), f_test=f[:2, :2])), "data.path"),
        ("missing test factors key", spec(str(path), test_factors_key="nope"), "data.test_factors_key"),
        ("factors for a .npy file", spec(str(tmp_path / "x.npy")), "data.factors_key"),
        ("factors for another dataset", lambda: check_spec(DataSpec(factors_key="f")), "data.factors_key"),
        ("test factors for another dataset", lambda: check_spec(DataSpec(name="mnist", test_factors_key="f")),
         "data.test_factors_key"),
        ("empty factors key", lambda: DataSpec(name="array", path="a.npz", factors_key="").check(), "data.factors_key"),
    ]


def test_bad_factors_get_one_line_naming_the_setting(tmp_path):
    assert_each_is_one_config_line(_bad_cases(tmp_path))
