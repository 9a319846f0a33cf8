"""SAE metrics against straightforward NumPy (or brute force) on random data, and the SAE figures."""

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from aejax import sae_figures
from aejax.sae_metrics import (FiringF1, ReconstructionStats, best_match, firing_f1, mcc, mmcs,
                               reconstruction_stats, uniqueness)


def data(seed=0, n=300, d=8, w=24, offset=3.0):
    rng = np.random.default_rng(seed)
    x = offset + rng.normal(size=(n, d)) * rng.uniform(0.2, 2.0, size=(n, 1))
    x_hat = 0.8 * x + 0.3 * rng.normal(size=(n, d))
    f = np.maximum(rng.normal(size=(n, w)) - 1.0, 0) * (rng.uniform(size=w) < 0.8)  # ~20% dead latents
    f[:, 0] = 1.0  # one latent fires on every row: dense
    return x, x_hat, f


def reference(x, x_hat, f):
    """Each metric the plain way, over the whole set at once."""
    cos = [a @ b / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(x, x_hat)]
    fvu = ((x - x_hat) ** 2).sum() / ((x - x.mean(axis=0)) ** 2).sum()
    freq = (f != 0).mean(axis=0)
    return {"rows": len(x), "l0": (f != 0).sum(axis=1).mean(), "fvu": fvu, "explained_variance": 1 - fvu,
            "mse": ((x - x_hat) ** 2).mean(), "cosine": np.mean(cos),
            "norm_ratio": np.mean(np.linalg.norm(x_hat, axis=1) / np.linalg.norm(x, axis=1)),
            "relative_reconstruction_bias": (x_hat ** 2).sum(axis=1).mean() / (x * x_hat).sum(axis=1).mean(),
            "dead_latents": int((freq == 0).sum()), "dense_latents": int((freq > 0.1).sum()),
            "firing_frequency": freq}


def assert_stats_equal(got, want, rtol=1e-10):
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=rtol, atol=1e-12, err_msg=key)


def test_every_reconstruction_metric_matches_plain_numpy():
    x, x_hat, f = data()
    got, want = reconstruction_stats(x, x_hat, f), reference(x, x_hat, f)
    assert_stats_equal(got, want)
    assert 0 < want["dead_latents"] < f.shape[1] and want["dense_latents"] >= 1  # both counts exercised


def test_chunked_accumulation_equals_one_shot():
    x, x_hat, f = data(seed=1, n=257)
    stats = ReconstructionStats()
    for lo, hi in [(0, 1), (1, 50), (50, 50), (50, 200), (200, 257)]:  # a single row and an empty chunk too
        stats.add(x[lo:hi], x_hat[lo:hi], f[lo:hi])
    assert_stats_equal(stats.result(), reconstruction_stats(x, x_hat, f))


def test_predicting_the_eval_set_mean_explains_nothing_and_perfect_explains_all():
    x, _, f = data(seed=2)
    stats = ReconstructionStats()
    for chunk in np.array_split(np.arange(len(x)), 7):  # the mean of the WHOLE set, not of each chunk
        stats.add(x[chunk], np.broadcast_to(x.mean(axis=0), x[chunk].shape), f[chunk])
    assert abs(stats.result()["explained_variance"]) < 1e-6
    perfect = reconstruction_stats(x, x, f)
    assert perfect["explained_variance"] == 1.0 and perfect["fvu"] == 0.0 and perfect["cosine"] == pytest.approx(1)


def test_explained_variance_is_neither_the_legacy_per_row_nor_the_about_zero_one():
    x, x_hat, f = data(seed=3)
    correct = 1 - ((x - x_hat) ** 2).sum() / ((x - x.mean(axis=0)) ** 2).sum()
    legacy = np.mean(1 - ((x - x_hat) ** 2).sum(axis=1) / ((x - x.mean(axis=0)) ** 2).sum(axis=1))
    about_zero = 1 - ((x - x_hat) ** 2).sum() / (x ** 2).sum()
    assert abs(legacy - correct) > 0.1 and abs(about_zero - correct) > 0.1  # the test can tell them apart
    assert reconstruction_stats(x, x_hat, f)["explained_variance"] == pytest.approx(correct, abs=1e-9)


def test_one_pass_variance_survives_a_large_mean():
    """E||x||^2 - ||E x||^2 in float64 loses every digit at an offset of 1e8; the merged chunks do not."""
    x, x_hat, f = data(seed=4, offset=1e8)
    exact = ((x - x.mean(axis=0)) ** 2).sum()  # two passes
    naive = (x ** 2).sum() - len(x) * (x.mean(axis=0) ** 2).sum()
    assert abs(naive - exact) / exact > 0.01  # the one-pass textbook formula is visibly wrong here
    stats = ReconstructionStats()
    for chunk in np.array_split(np.arange(len(x)), 5):
        stats.add(x[chunk], x_hat[chunk], f[chunk])
    assert stats.m2 == pytest.approx(exact, rel=1e-9)
    assert stats.result()["fvu"] == pytest.approx(((x - x_hat) ** 2).sum() / exact, rel=1e-9)


def test_a_dead_everything_sae_and_bad_shapes():
    x, _, f = data(seed=5)
    out = reconstruction_stats(x, np.zeros_like(x), np.zeros_like(f))
    assert out["l0"] == 0 and out["dead_latents"] == f.shape[1] and out["cosine"] == 0 and out["norm_ratio"] == 0
    with pytest.raises(ValueError):
        ReconstructionStats().add(x, x[:, :3], f)
    with pytest.raises(ValueError):
        ReconstructionStats().add(x[0], x[0], f[0])


def directions(rng, k, d):
    v = rng.normal(size=(k, d))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_mcc_is_the_best_permutation_on_a_small_case():
    rng = np.random.default_rng(6)
    for w, feats in [(4, 4), (5, 3), (3, 5)]:
        dec, true = rng.normal(size=(w, 6)), rng.normal(size=(feats, 6))
        cos = np.abs((dec / np.linalg.norm(dec, axis=1, keepdims=True))
                     @ (true / np.linalg.norm(true, axis=1, keepdims=True)).T)
        tall = cos if w >= feats else cos.T  # permute the longer side's rows onto the shorter side
        k = tall.shape[1]
        brute = max(tall[list(rows), range(k)].mean() for rows in itertools.permutations(range(len(tall)), k))
        value, li, fi = mcc(dec, true)
        assert value == pytest.approx(brute, abs=1e-12) and len(li) == len(fi) == k
        assert value == pytest.approx(cos[li, fi].mean())


def test_mcc_is_one_for_permuted_sign_flipped_scaled_true_directions():
    rng = np.random.default_rng(7)
    true = directions(rng, 10, 16)
    order = rng.permutation(10)
    dec = true[order] * rng.choice([-1.0, 1.0], size=(10, 1)) * rng.uniform(0.5, 3, size=(10, 1))
    value, li, fi = mcc(dec, true)
    assert value == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_array_equal(fi[np.argsort(li)], order)  # latent i found feature order[i]


def test_mmcs_is_many_to_one_and_signed():
    true = np.eye(3)[:2]  # e0, e1
    l1 = np.array([0.1, 0.1, 0.99])
    dec = np.stack([np.array([1.0, 1.0, 0]) / np.sqrt(2), l1 / np.linalg.norm(l1)])  # l0 between e0 and e1
    # MMCS: both features take l0 (cos 0.707 each). MCC: one of them must take the weak l1.
    brute_mmcs = np.mean([max(abs(t @ v) for v in dec) for t in true])
    assert mmcs(dec, true) == pytest.approx(brute_mmcs) == pytest.approx(np.sqrt(0.5))
    value, _, _ = mcc(dec, true)
    assert value == pytest.approx((np.sqrt(0.5) + 0.1 / np.linalg.norm(l1)) / 2)
    assert mmcs(dec, true) - value > 0.25
    assert best_match(dec, true)[1].tolist() == [0, 0] and uniqueness(dec, true) == 0.5
    flipped = -np.eye(2)  # signed (HoagyC) by default; MCC and absolute MMCS ignore the sign
    assert mmcs(flipped, np.eye(2)) == pytest.approx(0.0)
    assert mmcs(flipped, np.eye(2), absolute=True) == pytest.approx(1.0) == mcc(flipped, np.eye(2))[0]


def test_firing_f1_on_a_hand_made_case():
    # 6 rows. Latent 0 <-> feature 1: TP 2, FP 1, FN 1 -> P 2/3, R 2/3, F1 2/3.
    # Latent 1 <-> feature 0: fires on nothing -> P 0 (undefined), R 0, F1 0.
    codes = np.array([[1, 0], [1, 0], [1, 0], [0, 0], [0, 0], [0, 0]], bool)
    true = np.array([[0, 1], [0, 1], [1, 0], [0, 1], [1, 0], [0, 0]], bool)
    out = firing_f1(codes, true, [0, 1], [1, 0])
    assert out["precision"] == pytest.approx(1 / 3) and out["recall"] == pytest.approx(1 / 3)
    assert out["f1"] == pytest.approx(1 / 3) and out["pairs"] == 2
    assert out["tp"].tolist() == [2, 0] and out["fp"].tolist() == [1, 0] and out["fn"].tolist() == [1, 2]
    assert out["accuracy"] == pytest.approx((4 / 6 + 4 / 6) / 2)


def test_firing_f1_chunked_and_sparse_equal_plain_numpy():
    rng = np.random.default_rng(8)
    codes, true = rng.uniform(size=(400, 12)) < 0.2, rng.uniform(size=(400, 9)) < 0.15
    li, fi = np.arange(12), rng.integers(0, 9, size=12)  # shared features, as best_match gives
    li[3], fi[3] = 3, 0
    codes[:, 5] = False  # a dead latent scores 0 and still counts
    p, r = [], []
    for l, g in zip(li, fi):
        tp, fp, fn = (codes[:, l] & true[:, g]).sum(), (codes[:, l] & ~true[:, g]).sum(), (~codes[:, l] & true[:, g]).sum()
        p.append(tp / (tp + fp) if tp + fp else 0.0)
        r.append(tp / (tp + fn) if tp + fn else 0.0)
    f1 = [2 * a * b / (a + b) if a + b else 0.0 for a, b in zip(p, r)]
    acc = FiringF1(li, fi)
    for chunk in np.array_split(np.arange(400), 3):
        acc.add(codes[chunk], sp.csr_array(true[chunk]))
    for out in (acc.result(), firing_f1(codes, true, li, fi)):
        assert out["precision"] == pytest.approx(np.mean(p)) and out["recall"] == pytest.approx(np.mean(r))
        assert out["f1"] == pytest.approx(np.mean(f1)) and out["f1_per_pair"][5] == 0


def members(n_arch=3, per=4, seed=9):
    rng = np.random.default_rng(seed)
    return [{"architecture": f"arch{a}", "l0": float(l0), "fvu": float(rng.uniform()), "mcc": float(rng.uniform()),
             "label": f"k{i}"} for a in range(n_arch) for i, l0 in enumerate(np.geomspace(2, 200, per))]


def test_figures_write_files_for_many_one_and_dead_members(tmp_path):
    many = members() + [{"architecture": "arch0", "l0": 0.0, "fvu": 1.0, "mcc": 0.1}]  # dead everything
    one = members(1, 1)
    for fig in (sae_figures.frontier, sae_figures.mcc_against_l0):
        for name, ms in (("many", many), ("one", one), ("dead", many[-1:])):
            out = fig(ms, tmp_path / f"{fig.__name__}_{name}")
            assert out.suffix == ".png" and out.stat().st_size > 1000
    rng = np.random.default_rng(10)
    freqs = {f"member {i}": np.where(rng.uniform(size=64) < 0.1, 0, 10 ** rng.uniform(-5, 0, 64)) for i in range(40)}
    freqs["all dead"] = np.zeros(64)
    for name, fs in (("many", freqs), ("one", {"all dead": np.zeros(64)}), ("single", {"m": freqs["member 0"]})):
        out = sae_figures.feature_density(fs, tmp_path / f"density_{name}")
        assert out.suffix == ".png" and out.stat().st_size > 1000
    with pytest.raises(ValueError):
        sae_figures.frontier([], tmp_path / "empty")


def test_figures_honour_figure_formats(tmp_path, monkeypatch):
    from aejax import figures

    monkeypatch.setattr(figures, "FORMATS", ["png", "svg"])
    sae_figures.frontier(members(), tmp_path / "frontier")
    svg = (tmp_path / "frontier.svg").read_text()
    assert (tmp_path / "frontier.png").exists() and "arch2" in svg and "k3" in svg
