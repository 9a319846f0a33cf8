"""BetaVAE score (Higgins et al. 2017; disentanglement_lib `beta_vae.py`, study `beta_vae_sklearn.gin`:
batches of 64, 10,000 train and 5,000 eval points).

One point: pick a factor k; draw two batches of 64 factor vectors sharing factor k; the feature is
mean_b |r(x1_b) - r(x2_b)| (K values), the label is k. A `LogisticRegression()` (scikit-learn
defaults) is fit on the train points; the score is its accuracy on the eval points. Each point costs
2 x 64 encodings: 1.92 million for the study's sizes.
"""

from __future__ import annotations

import warnings

import numpy as np

from aejax.metrics.common import Draw, sub_seed

NAMES = ("beta_vae_score",)
SALT = 0
SIZES = {"batch_size": 64, "num_train": 10_000, "num_eval": 5_000}


def sample_pairs(ground_truth, rng, num_points: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """-> labels `(N,)`, factors `(N, 2, B, F)`: the two batches of each point share factor labels[i]."""
    f = len(ground_truth.factor_sizes)
    labels = rng.integers(f, size=num_points)
    factors = ground_truth.sample_factors(num_points * 2 * batch_size, rng).reshape(num_points, 2, batch_size, f)
    idx = np.arange(num_points)
    factors[idx, 1, :, labels] = factors[idx, 0, :, labels]
    return labels, factors


def features(codes) -> np.ndarray:
    """Codes `(..., N, 2, B, K)` of the paired batches -> features `(..., N, K)`, mean_b |r1 - r2|.

    A batched caller can compute this reduction wherever it encodes (it is all the score needs).
    """
    codes = np.asarray(codes)  # in the codes' dtype, as disentanglement_lib (float32 from TF)
    return np.mean(np.abs(codes[..., 0, :, :] - codes[..., 1, :, :]), axis=-2).astype(np.float64)


def score_features(train_x, train_y, eval_x, eval_y, seed: int = 0) -> float:
    """One member: features `(N, K)` and labels -> eval accuracy of the logistic regression."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # lbfgs max_iter=100, as the reference
        model = LogisticRegression(random_state=seed).fit(train_x, train_y)
    return float(model.score(eval_x, eval_y))


def beta_vae_score(ground_truth, represent, rng: np.random.Generator, batch_size: int = 64,
                   num_train: int = 10_000, num_eval: int = 5_000, encode_batch: int = 4096) -> float:
    """One member from the sampler and its representation `represent(x (n, D)) -> (n, K)`."""
    from aejax.metrics.common import encode

    draw = sample(ground_truth, rng, batch_size=batch_size, num_train=num_train, num_eval=num_eval)
    return score(encode(represent, ground_truth, draw.factors, encode_batch), draw)["beta_vae_score"]


def sample(ground_truth, rng, batch_size: int = 64, num_train: int = 10_000, num_eval: int = 5_000) -> Draw:
    train_y, train_f = sample_pairs(ground_truth, rng, num_train, batch_size)
    eval_y, eval_f = sample_pairs(ground_truth, rng, num_eval, batch_size)
    flat = np.concatenate([train_f, eval_f]).reshape(-1, train_f.shape[-1])
    return Draw(flat, {"labels": np.concatenate([train_y, eval_y]), "num_train": num_train,
                       "batch_size": batch_size, "seed": sub_seed(rng)})


def score(codes, draw: Draw, mode: str = "exact", posterior=None, names=NAMES) -> dict:
    """Codes `(n, K)` or `(M, n, K)` of `draw.factors` -> {"beta_vae_score": float or (M,)}."""
    del mode, posterior, names  # one definition in every mode
    codes = np.asarray(codes)
    y, n, b = draw.meta["labels"], draw.meta["num_train"], draw.meta["batch_size"]
    feats = features(codes.reshape(*codes.shape[:-2], len(y), 2, b, codes.shape[-1]))
    single = feats.ndim == 2
    feats = feats[None] if single else feats
    out = np.array([score_features(x[:n], y[:n], x[n:], y[n:], draw.meta["seed"]) for x in feats])
    return {"beta_vae_score": float(out[0]) if single else out}
