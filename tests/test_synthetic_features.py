"""data=synthetic_features (aejax/data/features.py): activations with known features, as SynthSAEBench.

Expected values are computed independently where they can be: firing rates from the model's
probabilities (`effective_probs` is checked against counts), x from the sparse truth in float64."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.special import ndtr

from aejax.config import DataSpec, parse_run
from aejax.data import load_dataset
from aejax.data.features import (effective_probs, expected_l0, load_truth, make_feature_model, mean_l0,
                                 model_from_spec, sample, save_truth, tree_size, zipf_probs)
from conftest import assert_each_is_one_config_line, compose

SMALL = dict(hierarchy=(4, 3, 2), magnitude_mean=(2.0, 1.0), magnitude_std=(0.5, 0.5), bias=0.5,
             firing_max=0.4, firing_min=0.02)


def _fired(acts) -> np.ndarray:
    return acts.toarray() > 0


def test_same_seed_same_rows_other_seed_other_rows():
    model = make_feature_model(200, 16, correlation_rank=4, seed=3, **SMALL)
    again = make_feature_model(200, 16, correlation_rank=4, seed=3, **SMALL)
    assert np.array_equal(model.directions, again.directions) and np.array_equal(model.bias, again.bias)
    x1, a1 = sample(model, 3000, 7)
    x2, a2 = sample(again, 3000, 7, workers=1)   # threads do not change the rows
    assert np.array_equal(x1, x2) and (a1 != a2).nnz == 0
    x3, _ = sample(model, 3000, 8)
    assert not np.allclose(x1, x3)
    other = make_feature_model(200, 16, correlation_rank=4, seed=4, **SMALL)
    assert not np.allclose(model.directions, other.directions)


def test_directions_are_unit_rows_and_orthogonalisation_pushes_them_apart():
    plain = make_feature_model(48, 16, seed=0)
    pushed = make_feature_model(48, 16, orthogonalize_steps=200, orthogonalize_lr=0.01, seed=0)
    for model in (plain, pushed):
        assert model.directions.dtype == np.float32 and model.directions.shape == (48, 16)
        np.testing.assert_allclose(np.linalg.norm(model.directions, axis=1), 1.0, atol=1e-5)

    def off_diagonal_sq(v):   # the loss SAELens minimises, at unit norms
        g = (v @ v.T) ** 2
        return g.sum() - np.trace(g)
    assert off_diagonal_sq(pushed.directions) < 0.9 * off_diagonal_sq(plain.directions)


def test_zipf_probabilities_match_saelens_definition():
    p = zipf_probs(5, 0.5, 0.4, 0.01)
    raw = 1 / np.sqrt(np.arange(1, 6))
    np.testing.assert_allclose(p, 0.01 + 0.39 * (raw - raw[-1]) / (1 - raw[-1]))
    assert p[0] == pytest.approx(0.4) and p[-1] == pytest.approx(0.01) and np.all(np.diff(p) < 0)


def test_firing_frequencies_match_the_model_within_sampling_error():
    n = 20000
    model = make_feature_model(120, 16, seed=1, **SMALL)   # independent firing: effective_probs is exact
    _, acts = sample(model, n, 2)
    freq = _fired(acts).mean(axis=0)
    p = effective_probs(model)
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-3)
    # compensation: a feature keeps its Zipf rate unless it or an ancestor was capped at 1 (a steep
    # Zipf, so that children's rates fit under their parent's)
    exact = make_feature_model(60, 16, hierarchy=(2, 2, 2), zipf_exponent=1.5, firing_max=0.5, firing_min=0.001,
                               seed=1)
    ok = exact.base_probs < 1
    for _ in range(2):
        ok &= np.where(exact.parent >= 0, ok[exact.parent], True)
    assert ok[exact.parent >= 0].sum() == 12
    np.testing.assert_allclose(effective_probs(exact)[ok], exact.firing_probs[ok], rtol=1e-6)
    _, acts = sample(exact, n, 4)
    f = _fired(acts).mean(axis=0)[ok]
    assert np.all(np.abs(f - exact.firing_probs[ok]) <= 5 * np.sqrt(exact.firing_probs[ok] / n) + 1e-3)
    # correlated firing keeps the roots' own rates (the copula keeps each marginal)
    corr = make_feature_model(120, 16, correlation_rank=6, correlation_scale=0.3, seed=1, **SMALL)
    _, acts = sample(corr, n, 2)
    roots = np.flatnonzero(corr.parent < 0)
    q = corr.base_probs[roots] * ndtr(corr.mag_mean[roots] / corr.mag_std[roots])
    assert np.all(np.abs(_fired(acts)[:, roots].mean(axis=0) - q) <= 5 * np.sqrt(q * (1 - q) / n) + 1e-3)


def test_children_are_exclusive_and_never_fire_without_their_parent():
    model = make_feature_model(120, 16, correlation_rank=6, correlation_scale=0.3, seed=5, **SMALL)
    assert tree_size(SMALL["hierarchy"]) == 4 * (1 + 3 + 9)
    fired = _fired(sample(model, 5000, 1)[1])
    kids = np.flatnonzero(model.parent >= 0)
    assert fired[:, kids].any()
    assert not np.any(fired[:, kids] & ~fired[:, model.parent[kids]])
    for p in np.unique(model.parent[kids]):
        assert fired[:, model.parent == p].sum(axis=1).max() <= 1
    assert fired[:, model.parent == 0].any(axis=0).all()   # each child does fire sometimes


def test_mean_l0_near_expected():
    model = make_feature_model(300, 16, seed=2, **SMALL)
    n = 20000
    _, acts = sample(model, n, 3)
    counts = np.diff(acts.indptr)
    assert mean_l0(acts) == pytest.approx(counts.mean())
    assert abs(mean_l0(acts) - expected_l0(model)) < 5 * counts.std() / np.sqrt(n)


def test_rows_are_true_activations_times_directions_plus_bias():
    model = make_feature_model(150, 24, correlation_rank=3, seed=0, **SMALL)
    x, acts = sample(model, 1000, 0)
    assert x.dtype == np.float32 and acts.dtype == np.float32 and acts.shape == (1000, 150)
    assert np.linalg.norm(model.bias) == pytest.approx(0.5, rel=1e-5)
    expected = acts.toarray().astype(np.float64) @ model.directions.astype(np.float64) + model.bias
    np.testing.assert_allclose(x, expected, atol=1e-4)
    assert (acts.data > 0).all()


def test_correlation_rank_makes_some_pairs_correlated_and_rank_0_none():
    common = dict(firing_max=0.4, firing_min=0.2, magnitude_mean=(1.0, 1.0), seed=0)
    n = 20000

    def max_pair_corr(model):
        fired = _fired(sample(model, n, 1)[1]).astype(np.float64)
        c = np.corrcoef(fired, rowvar=False)
        return np.abs(c[np.triu_indices_from(c, 1)]).max()
    assert max_pair_corr(make_feature_model(20, 8, correlation_rank=0, **common)) < 0.05
    assert max_pair_corr(make_feature_model(20, 8, correlation_rank=2, correlation_scale=0.5, **common)) > 0.15


def test_loader_splits_features_and_truth_file(tmp_path):
    spec = DataSpec(name="synthetic_features", num_features=128, dim=16, num_samples=3000, test_size=400,
                    val_fraction=0.1, hierarchy=(4, 2, 2), correlation_rank=4, bias=0.5, magnitude_std=(0.5, 0.5))
    spec.check()
    data = load_dataset(spec)
    assert data.train.shape == (3000, 16) and data.val.shape == (300, 16) and data.test.shape == (400, 16)
    assert all(a.dtype == np.float32 for a in (data.train, data.val, data.test))
    truth = data.features.test_activations
    assert truth.shape == (400, 128)
    model = data.features.model
    np.testing.assert_allclose(data.test, truth.toarray() @ model.directions + model.bias, atol=1e-4)
    # test rows come from another stream than training rows (rows with no active feature are the bias)
    busy = truth.getnnz(axis=1) > 0
    assert busy.sum() > 300 and not np.isin(data.test[busy, 0], data.train[:, 0]).any()
    save_truth(tmp_path / "truth.npz", model, truth)
    back, acts = load_truth(tmp_path / "truth.npz")
    for name in ("directions", "firing_probs", "parent", "bias"):
        assert np.array_equal(getattr(back, name), getattr(model, name))
    assert (acts != truth).nnz == 0
    assert np.array_equal(sample(back, 50, 9)[0], sample(model, 50, 9)[0])


def test_presets_parse_and_the_16k_model_samples_a_few_rows():
    cpu = parse_run(compose(["data=synthetic_features"])).data
    assert (cpu.num_features, cpu.dim, cpu.num_samples, cpu.test_size) == (1024, 64, 262144, 10000)
    assert 10 <= expected_l0(model_from_spec(cpu)) <= 30
    big = parse_run(compose(["data=synth_sae_bench_16k"])).data
    assert (big.num_features, big.dim, big.hierarchy, big.correlation_rank, big.correlation_scale) == (
        16384, 768, (128, 4, 3), 25, 0.1)
    assert (big.zipf_exponent, big.firing_max, big.firing_min, big.bias) == (0.5, 0.4, 5e-4, 0.5)
    assert big.orthogonalize == (100, 3e-4) and big.magnitude_mean == (5.0, 4.0) and big.magnitude_std == (0.5, 0.5)
    model = model_from_spec(dataclasses.replace(big, orthogonalize=()))   # orthogonalising 16k: a GPU job
    assert expected_l0(model) == pytest.approx(35, abs=2)   # the paper: ~34
    x, acts = sample(model, 200, 0)
    assert x.shape == (200, 768) and acts.shape == (200, 16384) and np.isfinite(x).all()


def test_bad_settings_are_one_line_config_errors():
    good = DataSpec(name="synthetic_features", num_features=64, dim=8, num_samples=100, test_size=10)
    cases = [
        ("min above max", dataclasses.replace(good, firing_min=0.5, firing_max=0.1), "data.firing_min"),
        ("max above 1", dataclasses.replace(good, firing_max=1.5), "data.firing_max"),
        ("min 0", dataclasses.replace(good, firing_min=0.0), "data.firing_min"),
        ("too many tree features", dataclasses.replace(good, hierarchy=(4, 4, 2)), "data.hierarchy"),
        ("hierarchy of two", dataclasses.replace(good, hierarchy=(4, 4)), "data.hierarchy"),
        ("no features", dataclasses.replace(good, num_features=0), "data.num_features"),
        ("zipf 0", dataclasses.replace(good, zipf_exponent=0.0), "data.zipf_exponent"),
        ("negative rank", dataclasses.replace(good, correlation_rank=-1), "data.correlation_rank"),
        ("one magnitude", dataclasses.replace(good, magnitude_mean=(1.0,)), "data.magnitude_mean"),
        ("negative std", dataclasses.replace(good, magnitude_std=(0.5, -1.0)), "data.magnitude_std"),
        ("negative bias", dataclasses.replace(good, bias=-1.0), "data.bias"),
        ("steps without lr", dataclasses.replace(good, orthogonalize=(10,)), "data.orthogonalize"),
    ]
    assert_each_is_one_config_line(cases)
    load_dataset(dataclasses.replace(good, hierarchy=(4, 3, 1)))   # 4 * (1 + 3) = 16 <= 64: allowed
