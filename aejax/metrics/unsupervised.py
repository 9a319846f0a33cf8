"""Unsupervised scores (disentanglement_lib `unsupervised_metrics.py`, study `unsupervised.gin`:
10,000 points), from the covariance of the codes (ddof=1) and their discrete mutual information.

- gaussian_tc_mean: total correlation of a Gaussian fit to the mean representation,
  0.5 (sum_i log C_ii - log det C);
- gaussian_tc_sampled: the same for the sampled representation mu + exp(logvar / 2) * eps, with eps
  drawn from the fixed evaluation stream (disentanglement_lib's TF noise is unseeded);
- gaussian_wasserstein_corr: 2 tr C - 2 tr sqrtm(C diag(C)), the squared 2-Wasserstein distance
  between the fit and the product of its marginals (disentanglement_lib's unnormalised
  `gaussian_wasserstein_correlation`);
- mutual_info_score: mean discrete MI (20 histogram bins) over ordered pairs of distinct codes.
"""

from __future__ import annotations

import numpy as np

from aejax.metrics.common import Draw, as_members, histogram_discretize, mutual_info, sub_seed, unbatch

NAMES = ("gaussian_tc_mean", "gaussian_tc_sampled", "gaussian_wasserstein_corr", "mutual_info_score")
SALT = 8
SIZES = {"num_train": 10_000}


def covariance(codes) -> np.ndarray:
    """`(..., n, K)` -> `(..., K, K)` sample covariance (ddof=1) in float64, as `np.cov(codes.T)`."""
    x = np.asarray(codes, np.float64)
    x = x - x.mean(axis=-2, keepdims=True)
    return np.swapaxes(x, -1, -2) @ x / (x.shape[-2] - 1)


def gaussian_total_correlation(cov) -> np.ndarray:
    """`(..., K, K)` -> KL(N(0, C) || N(0, diag C)) in nats."""
    cov = np.asarray(cov, np.float64)
    return 0.5 * (np.sum(np.log(np.diagonal(cov, axis1=-2, axis2=-1)), axis=-1) - np.linalg.slogdet(cov)[1])


def gaussian_wasserstein_correlation(cov) -> np.ndarray:
    """`(..., K, K)` -> 2 tr C - 2 tr sqrtm(C diag C).

    tr sqrtm(D C) with D = diag C is computed as sum sqrt(eig(D^1/2 C D^1/2)) (same eigenvalues,
    symmetric), so it stays real where scipy's `sqrtm` of a near-singular C turns complex.
    """
    cov = np.asarray(cov, np.float64)
    d = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    eig = np.linalg.eigvalsh(d[..., :, None] * cov * d[..., None, :])
    return 2 * np.trace(cov, axis1=-2, axis2=-1) - 2 * np.sum(np.sqrt(np.clip(eig, 0.0, None)), axis=-1)


def gaussian_tc(codes):
    """`codes (n, K)` or `(M, n, K)` -> Gaussian total correlation (float, or `(M,)`)."""
    codes, single = as_members(codes)
    return unbatch(gaussian_total_correlation(covariance(codes)), single)


def gaussian_wasserstein_corr(codes):
    """`codes (n, K)` or `(M, n, K)` -> Gaussian Wasserstein correlation (float, or `(M,)`)."""
    codes, single = as_members(codes)
    return unbatch(gaussian_wasserstein_correlation(covariance(codes)), single)


def mutual_info_score(codes, num_bins: int = 20):
    """`codes (n, K)` or `(M, n, K)` -> mean MI between distinct binned codes (float, or `(M,)`)."""
    codes, single = as_members(codes)
    binned = histogram_discretize(codes, num_bins)
    m = mutual_info(binned, binned)
    k = m.shape[-1]
    off = m.sum(axis=(-2, -1)) - np.trace(m, axis1=-2, axis2=-1)
    return unbatch(off / (k * k - k), single)


def sampled_codes(mean, logvar, noise_seed: int) -> np.ndarray:
    """mu + exp(logvar / 2) eps for `(n, K)` or `(M, n, K)`; eps `(n, K)` is shared by all members."""
    mean, logvar = np.asarray(mean, np.float64), np.asarray(logvar, np.float64)
    eps = np.random.default_rng(noise_seed).standard_normal(mean.shape[-2:])
    return mean + np.exp(logvar / 2) * eps


def sample(ground_truth, rng, num_train: int = SIZES["num_train"]) -> Draw:
    return Draw(ground_truth.sample_factors(num_train, rng), {"noise_seed": sub_seed(rng)})


def score(codes, draw: Draw, mode: str = "exact", posterior=None, names=NAMES) -> dict:
    """Codes of `draw.factors`; `posterior = (mean, logvar)` of the same shape for gaussian_tc_sampled."""
    del mode  # no classifier: one definition
    out = {}
    if "gaussian_tc_mean" in names:
        out["gaussian_tc_mean"] = gaussian_tc(codes)
    if "gaussian_tc_sampled" in names:
        if posterior is None:
            raise ValueError("gaussian_tc_sampled needs the posterior (mean, logvar)")
        out["gaussian_tc_sampled"] = gaussian_tc(sampled_codes(*posterior, draw.meta["noise_seed"]))
    if "gaussian_wasserstein_corr" in names:
        out["gaussian_wasserstein_corr"] = gaussian_wasserstein_corr(codes)
    if "mutual_info_score" in names:
        out["mutual_info_score"] = mutual_info_score(codes)
    return out
