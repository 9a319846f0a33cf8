"""FactorVAE score (Kim & Mnih 2018; disentanglement_lib `factor_vae.py`, study
`factor_vae_metric.gin`: batches of 64, 10,000 train and 5,000 eval votes, global variances from
10,000 points, `prune_dims.threshold = 0.05`).

Codes with global std < 0.05 are pruned (no active code: score 0). One vote: pick a factor k, draw
64 factor vectors sharing factor k, and vote (k, argmin_i var_i / global var_i) over active codes
(variances with ddof=1). Each code is classified as the factor with most train votes; the score is
the fraction of eval votes that classifier gets right. Encodings: 10,000 + 15,000 x 64 = 970,000.
"""

from __future__ import annotations

import numpy as np

from aejax.metrics.common import Draw, as_members, unbatch

NAMES = ("factor_vae_score",)
SALT = 4
SIZES = {"batch_size": 64, "num_train": 10_000, "num_eval": 5_000, "num_variance_estimate": 10_000}
PRUNE_THRESHOLD = 0.05  # the study's binding; disentanglement_lib's code default is 0.0


def sample_votes(ground_truth, rng, num_votes: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """-> labels `(N,)`, factors `(N, B, F)`: every row of batch i has factor labels[i] of its first row."""
    f = len(ground_truth.factor_sizes)
    labels = rng.integers(f, size=num_votes)
    factors = ground_truth.sample_factors(num_votes * batch_size, rng).reshape(num_votes, batch_size, f)
    idx = np.arange(num_votes)
    factors[idx, :, labels] = factors[idx, :1, labels]
    return labels, factors


def local_variances(codes) -> np.ndarray:
    """Codes `(..., N, B, K)` -> `(..., N, K)` within-batch variances (ddof=1), in the codes' dtype.

    A batched caller can compute this reduction wherever it encodes (it is all the votes need).
    """
    return np.var(np.asarray(codes), axis=-2, ddof=1)


def score_variances(global_var, local_train, labels_train, local_eval, labels_eval, num_factors: int,
                    threshold: float = PRUNE_THRESHOLD):
    """`global_var (K,)` or `(M, K)`, local variances `(N, K)` or `(M, N, K)` -> eval accuracy."""
    global_var, single = np.asarray(global_var), np.ndim(global_var) == 1
    g = global_var[None] if single else global_var  # (M, K)
    active = np.sqrt(g) >= threshold

    def votes(local, labels):
        local = np.asarray(local)
        local = local[None] if local.ndim == 2 else local
        with np.errstate(divide="ignore", invalid="ignore"):  # pruned codes may have zero variance
            ratio = np.where(active[:, None, :], local / g[:, None, :], np.inf)
        cell = labels[None, :] * g.shape[1] + np.argmin(ratio, axis=-1)  # (M, N)
        return np.stack([np.bincount(c, minlength=num_factors * g.shape[1]) for c in cell]
                        ).reshape(-1, num_factors, g.shape[1])

    train, evals = votes(local_train, labels_train), votes(local_eval, labels_eval)
    right = np.take_along_axis(evals, np.argmax(train, axis=1)[:, None, :], axis=1).sum(axis=(1, 2))
    acc = np.where(active.any(axis=1), right / np.maximum(evals.sum(axis=(1, 2)), 1), 0.0)
    return unbatch(acc, single)


def factor_vae_score(ground_truth, represent, rng: np.random.Generator, batch_size: int = 64,
                     num_train: int = 10_000, num_eval: int = 5_000, num_variance_estimate: int = 10_000,
                     encode_batch: int = 4096) -> float:
    """One member from the sampler and its representation `represent(x (n, D)) -> (n, K)`."""
    from aejax.metrics.common import encode

    draw = sample(ground_truth, rng, batch_size, num_train, num_eval, num_variance_estimate)
    return score(encode(represent, ground_truth, draw.factors, encode_batch), draw)["factor_vae_score"]


def sample(ground_truth, rng, batch_size: int = 64, num_train: int = 10_000, num_eval: int = 5_000,
           num_variance_estimate: int = 10_000) -> Draw:
    var_f = ground_truth.sample_factors(num_variance_estimate, rng)
    train_y, train_f = sample_votes(ground_truth, rng, num_train, batch_size)
    eval_y, eval_f = sample_votes(ground_truth, rng, num_eval, batch_size)
    flat = np.concatenate([var_f, train_f.reshape(-1, var_f.shape[1]), eval_f.reshape(-1, var_f.shape[1])])
    return Draw(flat, {"labels": np.concatenate([train_y, eval_y]), "num_train": num_train,
                       "num_variance_estimate": num_variance_estimate, "batch_size": batch_size})


def score(codes, draw: Draw, mode: str = "exact", posterior=None, names=NAMES) -> dict:
    """Codes `(n, K)` or `(M, n, K)` of `draw.factors` -> {"factor_vae_score": float or (M,)}."""
    del mode, posterior, names  # no classifier: one definition
    codes, single = as_members(codes)
    y, nv, nt, b = (draw.meta[k] for k in ("labels", "num_variance_estimate", "num_train", "batch_size"))
    global_var = np.var(codes[:, :nv], axis=1, ddof=1)
    local = local_variances(codes[:, nv:].reshape(codes.shape[0], len(y), b, codes.shape[-1]))
    acc = score_variances(global_var, local[:, :nt], y[:nt], local[:, nt:], y[nt:], draw.factors.shape[1])
    return {"factor_vae_score": float(acc[0]) if single else acc}
