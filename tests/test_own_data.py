"""Bring your own data: data=array (.npy/.npz), data=images (a folder), a registered loader,
and one line for every kind of bad data."""

import json

import numpy as np
import pytest
from PIL import Image

from aejax.config import DataSpec, parse_run
from aejax.data import LOADERS, Dataset, check_spec, check_unit_interval, from_arrays, load_dataset, register_loader
from aejax.errors import ConfigError
from conftest import assert_each_is_one_config_line, compose


def _rows(a):
    return sorted(r.tobytes() for r in a)


def test_npz_with_labels_and_test_split_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (50, 4, 5), dtype=np.uint8)
    y = np.arange(50) % 3
    x_test = rng.integers(0, 256, (12, 4, 5), dtype=np.uint8)
    y_test = np.arange(12) % 3
    path = tmp_path / "own.npz"
    np.savez(path, x=x, y=y, x_test=x_test, y_test=y_test, unused=np.zeros(3))
    d = load_dataset(DataSpec(name="array", path=str(path)))
    assert d.image_shape == (4, 5, 1) and d.dim == 20 and d.source == str(path)
    assert d.train.dtype == np.float32 and (len(d.train), len(d.val), len(d.test)) == (45, 5, 12)
    # The test split is the file's, in its order; uint8 is scaled by 1/255.
    np.testing.assert_array_equal(d.test, x_test.reshape(12, -1).astype(np.float32) / 255)
    np.testing.assert_array_equal(d.test_labels, y_test)
    # Training + validation are the file's x, permuted once, with each label still on its example.
    both = np.concatenate([d.train, d.val])
    assert _rows(both) == _rows(x.reshape(50, -1).astype(np.float32) / 255)
    lookup = {r.tobytes(): label for r, label in zip(x.reshape(50, -1).astype(np.float32) / 255, y)}
    assert all(lookup[r.tobytes()] == label for r, label in
               zip(both, np.concatenate([d.train_labels, d.val_labels])))
    # Fixed: the same split every time, whatever the seed; split_shuffle=false keeps file order.
    again = load_dataset(DataSpec(name="array", path=str(path), seed=7))
    np.testing.assert_array_equal(again.val, d.val)
    ordered = load_dataset(DataSpec(name="array", path=str(path), split_shuffle=False))
    np.testing.assert_array_equal(ordered.val, x[45:].reshape(5, -1).astype(np.float32) / 255)
    # Caps as for MNIST, and keys set by name.
    np.savez(path, images=x, classes=np.array(["b", "a"] * 25), held=x_test, held_classes=np.array(["a"] * 12))
    d = load_dataset(DataSpec(name="array", path=str(path), inputs_key="images", labels_key="classes",
                              test_inputs_key="held", test_labels_key="held_classes", train_size=10, test_size=4))
    assert (len(d.train), len(d.test)) == (10, 4) and d.label_names == ("a", "b")
    assert d.test_labels.tolist() == [0, 0, 0, 0]


def test_flat_npy_with_image_shape_or_as_vectors_and_a_carved_test_split(tmp_path):
    x = np.random.default_rng(1).normal(size=(40, 12)).astype(np.float64) * 3
    path = tmp_path / "flat.npy"
    np.save(path, x)
    d = load_dataset(DataSpec(name="array", path=str(path), image_shape=(2, 3, 2)))
    assert d.image_shape == (2, 3, 2) and d.train_labels is None
    assert (len(d.train), len(d.val), len(d.test)) == (29, 3, 8)  # test 20% of 40, val 10% of 32
    # Float data are taken as they are (not rescaled); every example lands in exactly one split.
    assert _rows(np.concatenate([d.train, d.val, d.test])) == _rows(x.astype(np.float32))
    assert load_dataset(DataSpec(name="array", path=str(path))).image_shape is None  # plain vectors
    assert load_dataset(DataSpec(name="array", path=str(path), image_shape=(3, 4))).image_shape == (3, 4, 1)
    carved = load_dataset(DataSpec(name="array", path=str(path), test_fraction=0.5, split_shuffle=False))
    np.testing.assert_array_equal(carved.test, x[20:].astype(np.float32))


@pytest.mark.parametrize("values, expected", [
    (np.array([[0, 51, 255]], np.uint8), [0.0, 0.2, 1.0]),
    (np.array([[0, 65535]], np.uint16), [0.0, 1.0]),
    (np.array([[True, False]]), [1.0, 0.0]),
    (np.array([[-2.5, 3.0]], np.float16), [-2.5, 3.0]),
])
def test_scaling_by_dtype(values, expected):
    d = from_arrays(DataSpec(val_fraction=0.0), np.repeat(values, 5, axis=0), x_test=values)
    np.testing.assert_allclose(d.test[0], expected, rtol=1e-6)


def _png(path, array, fmt="PNG"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, fmt)


def test_labelled_folder_of_images_in_rgb_resized(tmp_path):
    red = np.zeros((6, 9, 3), np.uint8)
    red[..., 0] = 255
    for i in range(6):
        _png(tmp_path / "imgs" / "zebra" / f"{i}.png", red)
        blue = np.zeros((8 + i, 10, 3), np.uint8)  # mixed sizes: image_size resizes them
        blue[..., 2] = 255
        _png(tmp_path / "imgs" / "ant" / f"{i}.jpg", blue, "JPEG")
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    (tmp_path / "imgs" / ".hidden").mkdir()
    spec = parse_run(compose(["data=images", f"data.path={tmp_path / 'imgs'}", "data.color=rgb",
                              "data.image_size=[4,6]", "data.val_fraction=0"])).data
    d = load_dataset(spec)
    assert d.label_names == ("ant", "zebra") and d.image_shape == (4, 6, 3)
    assert (len(d.train), len(d.test)) == (10, 2) and d.train.shape[1] == 72
    labels = np.concatenate([d.train_labels, d.test_labels])
    x = np.concatenate([d.train, d.test]).reshape(-1, 4, 6, 3)
    assert np.bincount(labels).tolist() == [6, 6]
    np.testing.assert_allclose(x[labels == 1], np.broadcast_to([1.0, 0, 0], (6, 4, 6, 3)))       # red zebras
    np.testing.assert_allclose(x[labels == 0].mean((0, 1, 2)), [0, 0, 1], atol=0.02)          # blue (JPEG) ants
    np.testing.assert_array_equal(load_dataset(spec).test, d.test)  # fixed order and split
    grey = load_dataset(DataSpec(name="images", path=str(tmp_path / "imgs"), image_size=5))
    assert grey.image_shape == (5, 5, 1)
    np.testing.assert_allclose(grey.train[grey.train_labels == 1], 76 / 255, atol=1e-6)  # pillow's luma of red


def test_unlabelled_folder(tmp_path):
    for i in range(5):
        _png(tmp_path / f"{i:02d}.png", np.full((3, 3), 50 * i, np.uint8))
    d = load_dataset(DataSpec(name="images", path=str(tmp_path), val_fraction=0, split_shuffle=False))
    assert d.train_labels is None and d.label_names is None and d.image_shape == (3, 3, 1)
    np.testing.assert_allclose(d.train[:, 0], np.arange(4) * 50 / 255)
    np.testing.assert_allclose(d.test[:, 0], [200 / 255])


def _tiny_loader(spec):
    x = np.linspace(0, 1, 60 * 6, dtype=np.float32).reshape(60, 6)
    return from_arrays(spec, x, np.arange(60) % 2)


def test_registered_loader_and_import_path():
    with pytest.raises(ConfigError, match=r"^data.name='tiny_own' is not allowed; expected one of .*register_loader"):
        check_spec(DataSpec(name="tiny_own"))  # aejax.data checks the name (the config knows no dataset)
    register_loader("tiny_own", _tiny_loader)
    try:
        check_spec(DataSpec(name="tiny_own"))
        d = load_dataset(DataSpec(name="tiny_own", test_size=5))
        assert isinstance(d, Dataset) and d.name == "tiny_own" and len(d.test) == 5 and d.dim == 6
        register_loader("tiny_own", lambda spec: "not a dataset")  # registering again replaces
        with pytest.raises(ConfigError, match=r"^data.name='tiny_own': its loader returned a str"):
            load_dataset(DataSpec(name="tiny_own"))
    finally:
        LOADERS.pop("tiny_own", None)
    with pytest.raises(ValueError, match="built-in"):
        register_loader("mnist", _tiny_loader)
    # Without registering: data.loader imports the function (works from the command line and load_run).
    d = load_dataset(DataSpec(name="anything", loader="test_own_data:_tiny_loader"))
    assert d.name == "anything" and d.train_labels is not None
    with pytest.raises(ConfigError, match=r"^data.loader='no_such_module:f' cannot be imported"):
        load_dataset(DataSpec(name="anything", loader="no_such_module:f"))


def _bad_cases(tmp):
    """(description, DataSpec or a callable raising, the setting the one line must start with)."""
    def npz(name, **arrays):
        np.savez(tmp / name, **arrays)
        return str(tmp / name)

    def npy(name, array):
        np.save(tmp / name, array, allow_pickle=True)
        return str(tmp / name)

    ok = np.zeros((20, 4), np.float32)
    (tmp / "empty").mkdir()
    (tmp / "dir.npz").mkdir()
    (tmp / "sub_empty" / "cats").mkdir(parents=True)
    for i, size in enumerate([(4, 4), (5, 4)]):
        _png(tmp / "mixed" / f"{i}.png", np.zeros(size, np.uint8))
    _png(tmp / "broken" / "a.png", np.zeros((4, 4), np.uint8))
    (tmp / "broken" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    _png(tmp / "both" / "a.png", np.zeros((4, 4), np.uint8))
    _png(tmp / "both" / "cats" / "b.png", np.zeros((4, 4), np.uint8))
    (tmp / "text.npy").write_text("hello")
    unit = from_arrays(DataSpec(), np.linspace(-1, 2, 40).reshape(20, 2), source="own.npz")
    return [
        ("missing file", DataSpec(name="array", path=str(tmp / "nope.npz")), "data.path"),
        ("a folder for data=array", DataSpec(name="array", path=str(tmp / "dir.npz")), "data.path"),
        ("not a NumPy file", DataSpec(name="array", path=str(tmp / "text.npy")), "data.path"),
        ("no path", DataSpec(name="array"), "data.path"),
        ("not .npy/.npz", DataSpec(name="array", path="data.csv"), "data.path"),
        ("strings", DataSpec(name="array", path=npz("s.npz", x=np.array([["a", "b"]] * 5))), "data.path"),
        ("objects", DataSpec(name="array", path=npy("o.npy", np.array([[1, "a"]] * 5, dtype=object))), "data.path"),
        ("int64", DataSpec(name="array", path=npy("i.npy", np.ones((5, 3), np.int64))), "data.path"),
        ("1-D", DataSpec(name="array", path=npy("one.npy", np.zeros(5, np.float32))), "data.path"),
        ("5-D", DataSpec(name="array", path=npy("five.npy", np.zeros((2, 2, 2, 2, 2), np.float32))), "data.path"),
        ("channels first", DataSpec(name="array", path=npy("cf.npy", np.zeros((4, 3, 8, 8), np.uint8))), "data.path"),
        ("NaN", DataSpec(name="array", path=npy("nan.npy", np.where(np.eye(20, 4) > 0, np.nan, ok))), "data.path"),
        ("infinite", DataSpec(name="array", path=npz("inf.npz", x=ok, x_test=np.full((2, 4), np.inf))), "data.path"),
        ("float64 beyond float32", DataSpec(name="array", path=npy("big.npy", ok.astype(np.float64) + 1e300)), "data.path"),
        ("missing inputs key", DataSpec(name="array", path=npz("k.npz", images=ok)), "data.inputs_key"),
        ("missing labels key", DataSpec(name="array", path=npz("l.npz", x=ok), labels_key="label"), "data.labels_key"),
        ("labels of wrong length", DataSpec(name="array", path=npz("w.npz", x=ok, y=np.zeros(3, int))), "data.path"),
        ("float labels", DataSpec(name="array", path=npz("fl.npz", x=ok, y=np.linspace(0, 1, 20))), "data.path"),
        ("test split without its labels",
         DataSpec(name="array", path=npz("t.npz", x=ok, y=np.zeros(20, int), x_test=ok)), "data.path"),
        ("test split of another shape", DataSpec(name="array", path=npz("ts.npz", x=ok, x_test=ok[:, :3])), "data.path"),
        ("image_shape not matching D", DataSpec(name="array", path=npy("f.npy", ok), image_shape=(3, 3)),
         "data.image_shape"),
        ("image_shape not matching the images",
         DataSpec(name="array", path=npy("img.npy", np.zeros((5, 4, 4), np.uint8)), image_shape=(2, 8)),
         "data.image_shape"),
        ("bad image_shape", lambda: DataSpec(name="array", path="a.npy", image_shape=(0, 3)).check(), "data.image_shape"),
        ("too few examples to split", DataSpec(name="array", path=npy("two.npy", ok[:2])), "data.test_fraction"),
        ("no folder", DataSpec(name="images", path=str(tmp / "nowhere")), "data.path"),
        ("an empty folder", DataSpec(name="images", path=str(tmp / "empty")), "data.path"),
        ("label folders without images", DataSpec(name="images", path=str(tmp / "sub_empty")), "data.path"),
        ("images and label folders", DataSpec(name="images", path=str(tmp / "both")), "data.path"),
        ("mixed sizes", DataSpec(name="images", path=str(tmp / "mixed")), "data.image_size"),
        ("unreadable image", DataSpec(name="images", path=str(tmp / "broken")), "data.path"),
        ("bad image_size", lambda: DataSpec(name="images", path="x", image_size=(4, 4, 3)).check(), "data.image_size"),
        ("bad color", lambda: DataSpec(name="images", path="x", color="cmyk").check(), "data.color"),
        ("unknown name", DataSpec(name="mine"), "data.name"),  # aejax.data.check_spec, not the config
        ("bad loader path", lambda: DataSpec(name="mine", loader="no_colon").check(), "data.loader"),
        ("outside [0, 1] for a Bernoulli likelihood",
         lambda: check_unit_interval(unit, "model.likelihood=bernoulli"), "data.path"),
    ]


def test_bad_data_gets_one_line_naming_the_setting(tmp_path):
    assert_each_is_one_config_line(_bad_cases(tmp_path))


def test_unit_interval_check_passes_scaled_data():
    check_unit_interval(from_arrays(DataSpec(), np.linspace(0, 1, 40).reshape(20, 2)), "model.likelihood=bernoulli")


def test_population_on_own_array_trains_and_reloads(tmp_path):
    from aejax.run import train_and_evaluate
    from aejax.trained import load_run

    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(200, 4, 4)) * rng.uniform(size=(200, 1, 1)) * 255).astype(np.uint8)
    path = tmp_path / "own.npz"
    np.savez(path, x=x, y=np.arange(200) % 4)
    config = compose(["data=array", f"data.path={path}", "trainer.epochs=2", "trainer.batch_size=32",
                      "logger=none", "trainer.progress=off", "population.seeds=2", "model.hidden=[16]",
                      "model.code_size=4"])
    summary = train_and_evaluate(config, tmp_path / "run")
    assert summary == json.loads((tmp_path / "run" / "summary.json").read_text())
    assert len(summary["members"]) == 2
    for row in summary["members"]:
        run = load_run(tmp_path / "run", member=row["member"])
        assert run.data.test.shape == (40, 16) and run.data.image_shape == (4, 4, 1)
        mse = np.mean((run.reconstruct(run.data.test) - run.data.test) ** 2)
        np.testing.assert_allclose(mse, row["test"]["mse"], rtol=1e-4)
