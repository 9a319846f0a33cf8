"""Datasets: real MNIST bytes, fixed splits, synthetic generators with known structure."""

import numpy as np
import pytest

from aejax.config import DataSpec
from aejax.data import cosine_pairs, load_dataset, manifold_points
from aejax.data.mnist import read_idx, verified_path
from aejax.errors import ConfigError


def test_mnist_loads_real_files_with_fixed_split(mnist_root):
    d = load_dataset(DataSpec(name="mnist", root=str(mnist_root), download=False))
    assert d.train.shape == (54000, 784) and d.val.shape == (6000, 784) and d.test.shape == (10000, 784)
    assert d.train.dtype == np.float32 and d.train.min() == 0.0 and d.train.max() == 1.0
    assert d.image_shape == (28, 28, 1)
    # The published label counts of the test set (digit 1 is the most frequent, 1135).
    assert np.bincount(d.test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_idx_header_is_parsed(mnist_root):
    images = read_idx(mnist_root / "t10k-images-idx3-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8


def test_missing_file_error_names_file_and_checksum(tmp_path):
    with pytest.raises(ConfigError) as err:
        verified_path(tmp_path, "train_labels", download=False)
    msg = str(err.value)
    assert "train-labels-idx1-ubyte.gz is missing" in msg and "3552534a0a55" in msg and "\n" not in msg


def test_digits_split_is_fixed_and_disjoint():
    a, b = load_dataset(DataSpec()), load_dataset(DataSpec(seed=5))
    np.testing.assert_array_equal(a.test, b.test)  # the data seed does not move the split
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    rows = {r.tobytes() for r in a.train}
    assert not any(r.tobytes() in rows for r in a.test if r.any())


def test_binarize_fixed_is_a_fixed_bernoulli_draw():
    a = load_dataset(DataSpec(binarize="fixed"))
    b = load_dataset(DataSpec(binarize="fixed"))
    raw = load_dataset(DataSpec())
    np.testing.assert_array_equal(a.train, b.train)
    assert set(np.unique(a.train)) == {0.0, 1.0}
    assert abs(a.train.mean() - raw.train.mean()) < 0.01


@pytest.mark.parametrize("similarity", [-0.5, 0.0, 0.25, 0.9, 0.99, 1.0])
def test_cosine_pairs_hit_requested_similarity(similarity):
    v1, v2 = cosine_pairs(np.random.default_rng(0), 300, 64, similarity)
    cos = (v1 * v2).sum(1) / np.linalg.norm(v1, axis=1) / np.linalg.norm(v2, axis=1)
    np.testing.assert_allclose(cos, similarity, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(v2, axis=1), 1.0, atol=1e-5)


def test_manifold_points_have_low_intrinsic_dimension():
    x = manifold_points(np.random.default_rng(0), 3000, 32, 2, noise=0.0)
    # Locally the data span only ~2 directions: PCA of a small neighbourhood.
    centre = x[0]
    near = x[np.argsort(((x - centre) ** 2).sum(1))[:50]]
    s = np.linalg.svd(near - near.mean(0), compute_uv=False)
    assert s[2] / s[0] < 0.1


def test_dynamic_binarization_keeps_training_images_grey_and_fixes_the_test_draw():
    dynamic = load_dataset(DataSpec(name="digits", binarize="dynamic"))
    fixed = load_dataset(DataSpec(name="digits", binarize="fixed"))
    grey = load_dataset(DataSpec(name="digits"))
    np.testing.assert_array_equal(dynamic.train, grey.train)     # the step draws per batch
    np.testing.assert_array_equal(dynamic.test, fixed.test)      # the same test set as `fixed`
    np.testing.assert_array_equal(dynamic.val, fixed.val)


def test_missing_mnist_without_network_is_one_line_naming_aejax_data_root(tmp_path):
    """A fresh clone without ../shared: the fixture tries aejax's own downloader (this machine
    reaches no MNIST mirror), then fails in one line that says what to set."""
    from aejax.errors import ConfigError
    from conftest import ensure_mnist

    with pytest.raises(ConfigError) as info:
        ensure_mnist(tmp_path / "empty")
    message = str(info.value)
    assert "\n" not in message and "AEJAX_DATA_ROOT" in message and "train-images-idx3-ubyte.gz is missing" in message
    assert not list((tmp_path / "empty").glob("*.gz"))  # nothing half-downloaded under the real name


def test_the_fixture_checks_the_shared_files(mnist_root):
    from conftest import ensure_mnist

    assert ensure_mnist(mnist_root) == mnist_root


@pytest.mark.parametrize("spec, says", [
    (dict(name="digits", train_size=100000), "data.train_size=100000 is not allowed; expected at most the 1294 "
                                             "training examples of data.name=digits (or null: all of them)"),
    (dict(name="digits", test_size=360), "data.test_size=360 is not allowed; expected at most the 359 test examples"),
    (dict(name="synthetic", num_samples=50, train_size=46),
     "data.train_size=46 is not allowed; expected at most the 45 training examples of data.name=synthetic"),
    (dict(name="synthetic_features", num_features=16, dim=8, num_samples=100, train_size=101),
     "data.train_size=101 is not allowed; expected at most data.num_samples=100"),
])
def test_a_size_above_what_the_data_holds_is_refused_not_capped(spec, says):
    with pytest.raises(ConfigError, match="^" + says.replace("(", r"\(").replace(")", r"\)")):
        load_dataset(DataSpec(**spec))
    exact = load_dataset(DataSpec(name="digits", train_size=1294, test_size=359))  # all of them: allowed
    assert (len(exact.train), len(exact.test)) == (1294, 359)
