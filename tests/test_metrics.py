"""Disentanglement metrics (aejax.metrics): known answers on a toy ground truth, the reference tests'
bounds (disentanglement_lib's `*_test.py`), and equality with independent NumPy/scikit-learn code.

Every metric is checked on a good representation (the factors themselves) and on broken ones (a
rotation, a constant, noise, codes permuted within each point), so a broken metric fails a test.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from sklearn.metrics import mutual_info_score as sk_mutual_info

from aejax.metrics import FAMILIES, METRICS, SKLEARN_VERSION, draw_for, evaluate_all, family_rng, provenance
from aejax.metrics import beta_vae, dci, factor_vae, gbt, mig, modularity, sap, unsupervised
from aejax.metrics.common import histogram_discretize, mutual_info

SIZES = {"num_train": 250, "num_test": 250, "num_eval": 250, "num_variance_estimate": 1000,
         "dci.num_train": 200, "dci.num_test": 200}  # exact DCI: 100 x 12 trees per representation


class ToyFactors:
    """Three factors with 3, 4 and 5 values, observed directly (disentanglement_lib's
    IdentityObservationsData, smaller): the ground-truth interface of aejax.data.ground_truth."""

    factor_sizes = (3, 4, 5)

    def sample_factors(self, n, rng):
        return np.stack([rng.integers(0, s, n) for s in self.factor_sizes], axis=1).astype(np.int64)

    def observations(self, factors):
        return np.asarray(factors, np.float32)


F = len(ToyFactors.factor_sizes)
# A rotation that mixes every factor into every code (no code close to one factor).
ROTATION = np.array([[1, 1, 1], [1, -1, 0], [1, 1, -2]], np.float32) / np.sqrt([3, 2, 6]).astype(np.float32)
STANDARDISE = np.array([1.5, 2.0, 2.5], np.float32)  # every factor on the same scale before rotating


def _noise(x):
    seed = int(np.asarray(x, np.int64) @ [1, 10, 100] @ np.arange(len(x)) % 2**31)
    return np.random.default_rng(seed).normal(size=x.shape).astype(np.float32)


def _row_permuted(x):
    """disentanglement_lib's 'bad' DCI/modularity code: each point's codes are its factors in a
    random order, so every code carries every factor equally."""
    rng = np.random.default_rng(int(np.asarray(x, np.int64).sum()))
    return np.take_along_axis(x, rng.permuted(np.tile(np.arange(F), (len(x), 1)), axis=1), axis=1)


REPRESENTATIONS = {
    "identity": lambda x: x,
    "rotation": lambda x: ((x - STANDARDISE) / STANDARDISE) @ ROTATION,
    "constant": np.zeros_like,
    "noise": _noise,
    "row_permuted": _row_permuted,
    "duplicated": lambda x: np.hstack([x, x]),
}
SUPERVISED = [n for n in METRICS if n in {"beta_vae_score", "factor_vae_score", "mig", "dci_disentanglement",
                                          "dci_completeness", "dci_informativeness", "sap", "modularity",
                                          "explicitness"}]


@pytest.fixture(scope="module")
def scores():
    return {name: evaluate_all(rep, ToyFactors(), seed=0, names=SUPERVISED, sizes=SIZES)
            for name, rep in REPRESENTATIONS.items()}


# --- plumbing: binning and mutual information equal disentanglement_lib's numpy/sklearn calls


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_histogram_discretize_equals_numpy_histogram(dtype):
    x = (np.random.default_rng(0).normal(size=(2, 300, 4)) * 4).astype(dtype)
    x[1, :, 2] = x[1, 0, 2]  # a constant code: np.histogram widens its range by 0.5
    ref = [[np.digitize(x[m, :, k], np.histogram(x[m, :, k], 20)[1][:-1]) for k in range(4)] for m in range(2)]
    np.testing.assert_array_equal(histogram_discretize(x), np.transpose(ref, (0, 2, 1)))


def test_mutual_info_equals_sklearn():
    rng = np.random.default_rng(1)
    a = rng.integers(1, 21, size=(2, 400, 3))
    b = np.stack([rng.integers(0, 3, 400), rng.integers(0, 40, 400) * 7 - 5, np.zeros(400, int)], axis=1)
    b[:, 0] = np.where(rng.random(400) < 0.7, a[0, :, 0] % 3, b[:, 0])  # real dependence
    ref = [[[sk_mutual_info(b[:, j], a[m, :, i]) for j in range(3)] for i in range(3)] for m in range(2)]
    np.testing.assert_allclose(mutual_info(a, b), ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(mutual_info(a[1], b), ref[1], rtol=1e-12, atol=1e-15)


def test_mig_equals_reference_formula():
    rng = np.random.default_rng(2)
    y = ToyFactors().sample_factors(600, rng)
    codes = np.tanh(y @ rng.normal(size=(3, 4))) + 0.1 * rng.normal(size=(600, 4))
    binned = [np.digitize(c, np.histogram(c, 20)[1][:-1]) for c in codes.T]
    m = np.array([[sk_mutual_info(y[:, j], c) for j in range(3)] for c in binned])
    h = np.array([sk_mutual_info(y[:, j], y[:, j]) for j in range(3)])
    top = np.sort(m, axis=0)[::-1]
    assert mig.mig(codes, y) == pytest.approx(np.mean((top[0] - top[1]) / h), rel=1e-12)


# --- analytic cases from disentanglement_lib's dci_test.py / modularity_explicitness_test.py


def test_dci_importance_matrix_cases():
    diag = np.diag(5.0 * np.ones(5))
    empty = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    for r in (diag, empty, diag[:2]):
        assert dci.disentanglement(r) == pytest.approx(1.0)
        assert dci.completeness(r) == pytest.approx(1.0)
    assert dci.disentanglement(np.zeros((10, 10))) == pytest.approx(0.0)
    assert dci.completeness(np.zeros((10, 10))) == pytest.approx(0.0, abs=1e-7)
    assert dci.disentanglement(np.vstack([diag, diag])) == pytest.approx(1.0)
    assert dci.completeness(np.vstack([diag, diag])) == pytest.approx(1 - np.log(2) / np.log(10))
    assert dci.disentanglement(np.hstack([diag, diag])) == pytest.approx(1 - np.log(2) / np.log(10))
    assert dci.completeness(np.hstack([diag, diag])) == pytest.approx(1.0)


def test_modularity_cases():
    diag = np.diag(5.0 * np.ones(5))
    assert modularity.modularity_from_mi(diag) == pytest.approx(1.0)
    assert modularity.modularity_from_mi(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])) == pytest.approx(2 / 3)
    assert modularity.modularity_from_mi(np.zeros((10, 10))) == pytest.approx(0.0)
    assert modularity.modularity_from_mi(np.vstack([diag, diag])) == pytest.approx(1.0)
    assert modularity.modularity_from_mi(diag[:2]) == pytest.approx(1.0)
    assert modularity.modularity_from_mi(np.hstack([diag, diag])) == pytest.approx(1 - 1 / 9)


def test_gaussian_scores_reference_cases():
    eye, cov = np.eye(5), np.array([[1.0, 0.9], [0.9, 1.0]])
    assert unsupervised.gaussian_total_correlation(eye) == pytest.approx(0.0, abs=1e-12)
    assert unsupervised.gaussian_wasserstein_correlation(eye) == pytest.approx(0.0, abs=1e-12)
    d = np.diag(np.diag(cov))  # KL(N(0, C) || N(0, diag C)), the formula of the reference test
    kl = 0.5 * (np.trace(np.linalg.inv(d) @ cov) - 2 + np.log(np.linalg.det(d) / np.linalg.det(cov)))
    assert unsupervised.gaussian_total_correlation(cov) == pytest.approx(kl)
    w = np.trace(cov + d - 2 * scipy.linalg.sqrtm(cov @ d)).real
    assert unsupervised.gaussian_wasserstein_correlation(cov) == pytest.approx(w)
    x = np.random.default_rng(3).normal(size=(200, 4)).astype(np.float32)
    np.testing.assert_allclose(unsupervised.covariance(x), np.cov(x.T), rtol=1e-10)


# --- known answers: the factors score near 1; rotation lower; constant at chance; broken codes low


def test_mig_known_answers(scores):
    assert scores["identity"]["mig"] >= 0.9
    assert scores["rotation"]["mig"] <= scores["identity"]["mig"] - 0.3
    assert scores["constant"]["mig"] == pytest.approx(0.0, abs=1e-12)
    assert scores["noise"]["mig"] <= 0.05
    assert scores["duplicated"]["mig"] <= 0.1  # reference bound: two equally good codes per factor


def test_dci_known_answers(scores):
    good = scores["identity"]
    assert good["dci_disentanglement"] >= 0.9 and good["dci_completeness"] >= 0.9
    assert good["dci_informativeness"] >= 0.9
    for key in ("dci_disentanglement", "dci_completeness"):
        assert scores["rotation"][key] <= good[key] - 0.3
        assert scores["row_permuted"][key] <= 0.2  # reference bound
        assert scores["constant"][key] <= 0.05
        assert scores["noise"][key] <= 0.4
    chance = np.mean([1 / s for s in ToyFactors.factor_sizes])  # about the majority-class accuracy
    assert scores["constant"]["dci_informativeness"] <= chance + 0.1
    assert scores["noise"]["dci_informativeness"] <= chance + 0.1
    dup = scores["duplicated"]
    assert dup["dci_disentanglement"] >= 0.9
    # each factor split evenly over 2 of 2F codes: completeness 1 - log 2 / log 2F
    assert dup["dci_completeness"] == pytest.approx(1 - np.log(2) / np.log(2 * F), abs=0.1)


def test_dci_fast_mode_agrees_on_known_answers(scores):
    for name in ("identity", "rotation", "row_permuted", "duplicated", "constant"):
        fast = evaluate_all(REPRESENTATIONS[name], ToyFactors(), seed=0, names=dci.NAMES, mode="fast", sizes=SIZES)
        for key, value in fast.items():
            assert value == pytest.approx(scores[name][key], abs=0.03), (name, key)


def test_histogram_trees_equal_sklearn_up_to_ties():
    """One boosting stage on continuous codes (all thresholds kept): scikit-learn's trees, for one of
    its random feature orders (stage-1 residuals take few values, so equally good splits do occur)."""
    from sklearn.ensemble import GradientBoostingClassifier

    rng = np.random.default_rng(7)
    y = np.stack([rng.integers(0, 2, 400), rng.integers(0, 4, 400)], axis=1)  # binary and multiclass
    x = np.tanh(y @ rng.normal(size=(2, 3))) + 0.3 * rng.normal(size=(400, 3))
    r, train_acc, _ = gbt.fit_importances(x, y, x, y, num_stages=1, max_bins=10**6)
    for j in range(2):
        refs = [GradientBoostingClassifier(n_estimators=1, random_state=s).fit(x, y[:, j]) for s in range(4)]
        assert min(np.abs(r[:, j] - ref.feature_importances_).max() for ref in refs) <= 1e-12
    ref_acc = np.mean([GradientBoostingClassifier(n_estimators=1).fit(x, y[:, j]).score(x, y[:, j]) for j in range(2)])
    assert train_acc == pytest.approx(ref_acc)


def test_dci_agreement_report():
    gt = ToyFactors()
    draw = draw_for("dci", gt, sizes={"num_train": 120, "num_test": 120})
    reps = ("identity", "rotation", "row_permuted")
    codes = np.stack([REPRESENTATIONS[r](gt.observations(draw.factors)) for r in reps])
    report = dci.agreement(codes, draw)
    for name in ("dci_disentanglement", "dci_completeness"):
        assert report[name]["spearman"] == pytest.approx(1.0)
        assert report[name]["max_abs_diff"] <= 0.05
        assert report[name]["exact"][0] >= 0.9 and len(report[name]["fast"]) == 3


def test_scores_from_sampler_and_representation():
    gt, rng = ToyFactors(), np.random.default_rng(8)
    assert beta_vae.beta_vae_score(gt, lambda x: x, rng, batch_size=16, num_train=150, num_eval=100) >= 0.9
    assert factor_vae.factor_vae_score(gt, lambda x: x, rng, batch_size=16, num_train=150, num_eval=100,
                                       num_variance_estimate=300) >= 0.9
    assert factor_vae.factor_vae_score(gt, np.zeros_like, rng, num_train=50, num_eval=50) == 0.0


def test_factor_vae_known_answers(scores):
    assert scores["identity"]["factor_vae_score"] >= 0.9
    assert scores["duplicated"]["factor_vae_score"] >= 0.9
    assert scores["rotation"]["factor_vae_score"] <= scores["identity"]["factor_vae_score"] - 0.1
    assert scores["constant"]["factor_vae_score"] == 0.0  # no active code (std < 0.05)
    assert scores["noise"]["factor_vae_score"] <= 1 / F + 0.15


def test_beta_vae_known_answers(scores):
    assert scores["identity"]["beta_vae_score"] >= 0.9
    assert scores["rotation"]["beta_vae_score"] <= scores["identity"]["beta_vae_score"] - 0.05
    assert scores["constant"]["beta_vae_score"] <= 1 / F + 0.1
    assert scores["noise"]["beta_vae_score"] <= 1 / F + 0.15


def test_sap_known_answers(scores):
    assert scores["identity"]["sap"] >= 0.2  # one linear SVM on one code: far from 1 for many-valued factors
    assert scores["rotation"]["sap"] <= scores["identity"]["sap"] - 0.1
    assert scores["constant"]["sap"] == pytest.approx(0.0, abs=1e-12)
    assert scores["noise"]["sap"] <= 0.05
    assert scores["duplicated"]["sap"] <= 0.2  # reference bound


def test_sap_continuous_reference_bounds():
    rng = np.random.default_rng(4)
    y = ToyFactors().sample_factors(1000, rng)
    x = y.astype(np.float64)
    assert sap.sap(x, y, x, y, continuous_factors=True) >= 0.9
    assert sap.sap(np.zeros_like(x), y, np.zeros_like(x), y, continuous_factors=True) <= 0.2
    dup = np.hstack([x, x])
    assert sap.sap(dup, y, dup, y, continuous_factors=True) <= 0.2


def test_modularity_explicitness_known_answers(scores):
    assert scores["identity"]["modularity"] >= 0.9
    assert scores["duplicated"]["modularity"] >= 0.9  # reference bound
    assert scores["rotation"]["modularity"] <= scores["identity"]["modularity"] - 0.2
    # reference bound, with the reference's equal-sized factors (else the MI differs between factors)
    y = np.random.default_rng(6).integers(0, 4, size=(20_000, 3))
    assert modularity.modularity(_row_permuted(y.astype(np.float32)), y) <= 0.2
    assert scores["constant"]["modularity"] == 0.0
    assert scores["identity"]["explicitness"] >= 0.9
    # a linear classifier on all codes: a rotation loses nothing; no information is chance (AUC 0.5)
    assert scores["rotation"]["explicitness"] == pytest.approx(scores["identity"]["explicitness"], abs=0.03)
    assert scores["constant"]["explicitness"] == pytest.approx(0.5)
    assert scores["noise"]["explicitness"] == pytest.approx(0.5, abs=0.06)


def test_unsupervised_known_answers():
    gt, mix = ToyFactors(), np.array([[1.0, 0.8, 0.0], [0.0, 1.0, 0.8], [0.0, 0.0, 1.0]], np.float32)

    def posterior(logvar):
        return lambda x: (x @ mix, np.full(x.shape, logvar, np.float32))

    def run(rep, logvar=-30.0):
        return evaluate_all(rep, gt, seed=0, names=unsupervised.NAMES, represent_posterior=posterior(logvar),
                            sizes={"num_train": 2000})

    ind = evaluate_all(lambda x: x, gt, names=["gaussian_tc_mean", "gaussian_wasserstein_corr", "mutual_info_score"],
                       sizes={"num_train": 2000})
    assert ind["gaussian_tc_mean"] <= 0.01 and ind["gaussian_wasserstein_corr"] <= 0.05
    assert ind["mutual_info_score"] <= 0.02
    tight, noisy = run(lambda x: x @ mix), run(lambda x: x @ mix, logvar=2.0)
    assert tight["gaussian_tc_mean"] >= 0.2 and tight["gaussian_wasserstein_corr"] >= 0.2
    assert tight["mutual_info_score"] >= 0.1
    # sampled codes: a tiny posterior variance changes nothing, a large one hides the correlation
    assert tight["gaussian_tc_sampled"] == pytest.approx(tight["gaussian_tc_mean"], rel=1e-4)
    assert noisy["gaussian_tc_mean"] == tight["gaussian_tc_mean"]
    assert noisy["gaussian_tc_sampled"] <= 0.5 * noisy["gaussian_tc_mean"]
    dup = evaluate_all(lambda x: np.hstack([x, x]), gt, names=["mutual_info_score"], sizes={"num_train": 2000})
    assert dup["mutual_info_score"] >= 0.2


def test_sampled_codes_have_the_posterior_variance():
    mean = np.zeros((2, 20_000, 2))
    logvar = np.stack([np.full((20_000, 2), np.log(4.0)), np.full((20_000, 2), -np.inf)])
    z = unsupervised.sampled_codes(mean + [1.0, -1.0], logvar, noise_seed=3)
    np.testing.assert_allclose(z[0].std(axis=0), 2.0, rtol=0.02)  # exp(logvar / 2) = 2
    np.testing.assert_allclose(z[0].mean(axis=0), [1.0, -1.0], atol=0.05)
    np.testing.assert_array_equal(z[1], mean[1] + [1.0, -1.0])  # zero variance: the mean itself


# --- batch structure, batching over members, reproducibility, interface


def test_batch_samplers_fix_the_chosen_factor():
    gt, rng = ToyFactors(), np.random.default_rng(5)
    labels, pairs = beta_vae.sample_pairs(gt, rng, 50, 8)  # (N, 2, B, F)
    for i, k in enumerate(labels):
        np.testing.assert_array_equal(pairs[i, 0, :, k], pairs[i, 1, :, k])
        assert all(np.any(pairs[i, 0, :, j] != pairs[i, 1, :, j]) for j in range(F) if j != k)
    labels, votes = factor_vae.sample_votes(gt, rng, 50, 8)  # (N, B, F)
    for i, k in enumerate(labels):
        assert np.all(votes[i, :, k] == votes[i, 0, k])


def test_factor_vae_votes_by_hand():
    g = np.array([1.0, 1.0, 1e-4])  # code 2 is pruned (std 0.01 < 0.05) though its ratios are smallest
    train = np.array([[0.1, 0.9, 0.0], [0.9, 0.1, 0.0], [0.1, 0.9, 0.0]])  # votes (0,0), (1,1), (0,0)
    evals = np.array([[0.2, 0.8, 0.0], [0.2, 0.8, 0.0], [0.8, 0.2, 0.0]])  # (0,0) right, (1,0) wrong, (1,1) right
    acc = factor_vae.score_variances(g, train, np.array([0, 1, 0]), evals, np.array([0, 1, 1]), num_factors=2)
    assert acc == pytest.approx(2 / 3)
    assert factor_vae.score_variances(np.full(3, 1e-4), train, np.array([0, 1, 0]), evals,
                                      np.array([0, 1, 1]), num_factors=2) == 0.0


def test_members_scored_together_equal_one_by_one():
    gt = ToyFactors()
    reps = [REPRESENTATIONS["identity"], REPRESENTATIONS["rotation"]]
    sizes = {"num_train": 80, "num_test": 80, "num_eval": 80, "num_variance_estimate": 300, "batch_size": 16}
    for fam, mod in FAMILIES.items():
        draw = mod.sample(gt, family_rng(0, mod.SALT), **{k: v for k, v in sizes.items() if k in mod.SIZES})
        codes = np.stack([r(gt.observations(draw.factors)) for r in reps])
        names = tuple(n for n in mod.NAMES if n != "gaussian_tc_sampled")
        together = mod.score(codes, draw, names=names, mode="fast")  # batching is the same in both modes
        for m in range(2):
            alone = mod.score(codes[m], draw, names=names, mode="fast")
            for name in names:
                assert together[name][m] == pytest.approx(alone[name], rel=1e-12), (fam, name)


def test_evaluation_is_reproducible_and_streams_are_independent(scores):
    gt = ToyFactors()
    again = evaluate_all(REPRESENTATIONS["identity"], gt, seed=0, names=["mig", "factor_vae_score"], sizes=SIZES)
    assert again == {k: scores["identity"][k] for k in again}  # same numbers, and alone = among all
    for mod in FAMILIES.values():
        a, b = (mod.sample(gt, family_rng(s, mod.SALT), num_train=50) for s in (0, 0))
        np.testing.assert_array_equal(a.factors, b.factors)
        assert not np.array_equal(a.factors, mod.sample(gt, family_rng(1, mod.SALT), num_train=50).factors)


def test_interface_errors_and_provenance():
    gt = ToyFactors()
    with pytest.raises(ValueError, match="unknown metrics"):
        evaluate_all(lambda x: x, gt, names=["beta_vae"])
    with pytest.raises(ValueError, match="unknown sizes"):
        evaluate_all(lambda x: x, gt, names=["mig"], sizes={"num_points": 10})
    assert len(draw_for("dci", gt, sizes={"num_test": 7, "dci.num_train": 5}).factors) == 12  # one family
    assert len(draw_for("sap", gt, sizes={"num_test": 7, "dci.num_train": 5}).factors) == 10_007
    with pytest.raises(ValueError, match="represent_posterior"):
        evaluate_all(lambda x: x, gt, names=["gaussian_tc_sampled"])
    with pytest.raises(ValueError, match="mode"):
        evaluate_all(lambda x: x, gt, names=["mig"], mode="fastest")
    with pytest.raises(ValueError, match="codes must be"):
        mig.mig(np.zeros(10), np.zeros((10, 3), int))
    with pytest.raises(ValueError, match="factors must be"):
        mig.mig(np.zeros((10, 2)), np.zeros((9, 3), int))
    with pytest.raises(ValueError, match="integers"):
        mig.mig(np.zeros((10, 2)), np.zeros((10, 3)))
    tiny = {"num_train": 100, "num_test": 100, "num_eval": 100, "num_variance_estimate": 100, "batch_size": 8}
    everything = evaluate_all(lambda x: x, gt, sizes=tiny, mode="fast")  # names=None: all the inputs allow
    assert list(everything) == [n for n in METRICS if n != "gaussian_tc_sampled"]
    assert all(np.isfinite(v) for v in everything.values())
    assert len(METRICS) == 13 and "gaussian_tc_sampled" in METRICS
    info = provenance(seed=0, mode="exact")
    assert info["metrics_sklearn_version"] == SKLEARN_VERSION == __import__("sklearn").__version__
