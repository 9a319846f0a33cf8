"""The sparse-codes study: per-member top-k, the copying tests, the task's outputs."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax.config import parse_run
from aejax.models import build_model
from aejax.families.autoencoder import at_least_kth_largest, keep_top_k
from aejax.studies.sparse_codes import copying_tests, jacobian_diagonal_share
from aejax.tasks import load_task
from conftest import TINY, compose


def test_top_k_with_a_traced_k_matches_the_static_one():
    h = jax.random.normal(jax.random.key(0), (7, 40))
    h = h.at[0, :3].set(-1e-30).at[1].set(jnp.where(h[1] > 0, h[1], 0.0))  # tiny negatives, exact zeros
    traced = jax.jit(keep_top_k)
    for k in (1, 5, 17, 40):
        np.testing.assert_array_equal(traced(h, jnp.float32(k)), keep_top_k(h, k))
        assert np.all(np.sum(np.asarray(traced(h, jnp.float32(k))) != 0, axis=-1)[2:] == k)


@pytest.mark.parametrize("width", [40, 128])  # the int16 count, and the int8 count per 64 entries
def test_kth_largest_mask_against_numpy_with_ties_infinities_and_a_k_per_member(width):
    """The bit search's mask equals NumPy's 'entries >= the k-th largest of the row' for rows of distinct
    values (where the search stops early), rows with ties at the k-th value (where it cannot), zeros,
    negatives and -inf (AuxK's masked latents), with each member's own k under vmap."""
    rng = np.random.default_rng(0)
    h = rng.normal(size=(3, 6, width)).astype(np.float32)
    h[0, 1, : width // 2] = 0.0                          # many ties at zero
    h[1, 2] = np.round(h[1, 2], 1)                       # ties everywhere
    h[2, 3, ::3] = -np.inf
    h[2, 4] = -np.abs(h[2, 4])                           # all negative
    ks = np.array([1, 7, width])
    got = np.asarray(jax.jit(jax.vmap(at_least_kth_largest))(jnp.asarray(h), jnp.asarray(ks)))
    kth = np.take_along_axis(-np.sort(-h, axis=-1), (ks - 1)[:, None, None].repeat(6, 1), axis=-1)
    np.testing.assert_array_equal(got, h >= kth)
    assert (got.sum(-1) >= ks[:, None]).all()


def linear_autoencoder(dim: int, weights: np.ndarray):
    """A 1-layer linear autoencoder x -> x @ W @ I, to give the copying tests known answers."""
    spec = parse_run(compose(["model=linear", "model.hidden=[]", f"model.code_size={dim}",
                              "model.output_activation=linear"])).model
    model = build_model(spec, dim, key=jax.random.key(0))
    model.encoder.layers[0].kernel[...] = jnp.asarray(weights, jnp.float32)
    model.encoder.layers[0].bias[...] = jnp.zeros(dim)
    model.decoder.layers[0].kernel[...] = jnp.eye(dim)
    model.decoder.layers[0].bias[...] = jnp.zeros(dim)
    return model


def test_copying_tests_tell_the_identity_from_a_smoothing_map():
    dim = 16
    x = jax.random.uniform(jax.random.key(1), (30, dim))
    identity = linear_autoencoder(dim, np.eye(dim))
    assert jacobian_diagonal_share(identity, x) == pytest.approx(1.0)
    averaging = linear_autoencoder(dim, np.full((dim, dim), 1.0 / dim))  # every output is the mean pixel
    assert jacobian_diagonal_share(averaging, x) == pytest.approx(1.0 / dim, rel=1e-5)
    # Images that are constant within each half: a map that averages each half reconstructs them
    # exactly, but not once their pixels are shuffled; the identity copies both.
    halves = np.repeat(np.random.default_rng(0).uniform(size=(40, 2)), dim // 2, axis=1).astype(np.float32)
    half_average = np.kron(np.eye(2), np.full((dim // 2, dim // 2), 2.0 / dim))
    tests = copying_tests(linear_autoencoder(dim, half_average), halves)
    assert tests["permuted_mse"] > 0.01
    assert tests["permuted_mse_ratio"] > 1e3
    assert copying_tests(identity, halves)["permuted_mse"] == pytest.approx(0.0, abs=1e-10)


def test_population_over_top_k_gives_each_member_its_own_k(tmp_path):
    overrides = ["experiment=sparse_codes", "regulariser=topk", *TINY, "model.code_size=48",
                 "population.grid.model.top_k=[3,12]"]
    summary = load_task("sparse_codes")(compose(overrides), tmp_path / "population")
    study = json.loads((tmp_path / "population" / "sparse_codes.json").read_text())
    assert [m["model.top_k"] for m in study["members"]] == [3.0, 12.0]
    for member, k in zip(study["members"], (3, 12)):
        assert member["mean_l0"] <= k
        assert member["mean_l0"] > k - 1          # ties at zero are the only way to have fewer
    assert [m["test"]["mse"] for m in summary["members"]] == [m["mse"] for m in study["members"]]
    # The member with k = 12 is the run a single model with top_k = 12 would give.
    single = load_task("train")(compose(overrides[:-1] + ["model.top_k=12", "~population.grid.model"]),
                                tmp_path / "single")
    np.testing.assert_allclose(single["members"][0]["test"]["mse"], summary["members"][1]["test"]["mse"], rtol=2e-4)
    for name in ("filters.png", "mse_vs_l0.png"):
        assert (tmp_path / "population" / "figures" / name).stat().st_size > 1000
    assert "jacobian_diagonal_share" in summary["members"][0]["test"]


def test_study_labels_the_regulariser(tmp_path):
    config = compose(["experiment=sparse_codes", "regulariser=denoising", *TINY, "model.code_size=20",
                      "population.grid.model.noise_level=[0.5]"])
    load_task("sparse_codes")(config, tmp_path)
    study = json.loads((tmp_path / "sparse_codes.json").read_text())
    assert study["regulariser"] == "denoising (mask)"
    assert 0 <= study["members"][0]["dead_fraction"] <= 1


def test_effective_l0_counts_equal_units_and_ignores_scale():
    from aejax.studies.sparse_codes import effective_l0

    codes = np.zeros((3, 10))
    codes[0, :4] = 0.2       # four equal units: 4
    codes[1, :1] = 5.0       # one unit: 1
    assert effective_l0(codes[:2]) == pytest.approx(2.5)
    assert effective_l0(codes) == pytest.approx(5 / 3)   # an all-zero code counts 0


def test_pca_reference_diagonal_share_matches_the_projector():
    from aejax.studies.sparse_codes import pca_reference

    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(300, 12)), rng.normal(size=(50, 12))
    full = pca_reference(train, test, 12)          # all components: the identity
    assert full["jacobian_diagonal_share"] == pytest.approx(1.0, rel=1e-6)
    assert full["mse"] == pytest.approx(0.0, abs=1e-10)
    half = pca_reference(train, test, 6)
    assert 0 < half["jacobian_diagonal_share"] < 1
