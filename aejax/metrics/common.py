"""Plumbing shared by the disentanglement metrics (disentanglement_lib's `evaluation/metrics/utils.py`).

Conventions: `codes` are `(n, K)` for one member or `(M, n, K)` for M members scored on the same
factors; `factors` are `(n, F)` integers. Vectorised statistics return a float for `(n, K)` codes and
an `(M,)` array for `(M, n, K)` codes. A `Draw` is what a metric family samples once (common random
numbers for every member): the flat `(n, F)` factors whose observations must be encoded, plus what
its score needs to read the codes back (labels, split point, the seed of its classifiers).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NUM_BINS = 20  # the study's `discretizer.num_bins`


@dataclass(frozen=True)
class Draw:
    factors: np.ndarray  # (n, F) int64: encode ground_truth.observations(factors) -> codes (n, K)
    meta: dict = field(default_factory=dict)


def family_rng(seed: int, salt: int) -> np.random.Generator:
    """The fixed evaluation stream of one metric family: independent of which other metrics run."""
    return np.random.default_rng(np.random.SeedSequence([seed, salt]))


def sub_seed(rng: np.random.Generator) -> int:
    """An int seed (for scikit-learn's `random_state`) drawn from a family's stream."""
    return int(rng.integers(2**31 - 1))


def as_members(codes) -> tuple[np.ndarray, bool]:
    """`(n, K)` -> `(1, n, K), True`; `(M, n, K)` -> itself, False. Anything else raises."""
    codes = np.asarray(codes)
    if codes.ndim == 2:
        return codes[None], True
    if codes.ndim == 3:
        return codes, False
    raise ValueError(f"codes must be (n, K) or (M, n, K), got shape {codes.shape}")


def unbatch(values, single: bool):
    """Per-member results `(M,)` back to the caller's shape: a float when one member came in as `(n, K)`."""
    values = np.asarray(values, np.float64)
    return float(values[0]) if single else values


def check_factors(factors, n: int) -> np.ndarray:
    factors = np.asarray(factors)
    if factors.ndim != 2 or factors.shape[0] != n:
        raise ValueError(f"factors must be (n={n}, F), got shape {factors.shape}")
    if not np.issubdtype(factors.dtype, np.integer):
        raise ValueError(f"factors must be integers, got {factors.dtype}")
    return factors


def sample_split(ground_truth, rng: np.random.Generator, num_train: int, num_test: int) -> Draw:
    """Train then test factors, as disentanglement_lib's two `generate_batch_factor_code` calls."""
    train, test = ground_truth.sample_factors(num_train, rng), ground_truth.sample_factors(num_test, rng)
    return Draw(np.concatenate([train, test]), {"num_train": num_train, "seed": sub_seed(rng)})


def split(codes, draw: Draw) -> tuple:
    """Codes of a `sample_split` draw -> `(codes_train, factors_train, codes_test, factors_test)`."""
    codes, n, f = np.asarray(codes), draw.meta["num_train"], draw.factors
    return codes[..., :n, :], f[:n], codes[..., n:, :], f[n:]


def histogram_discretize(codes: np.ndarray, num_bins: int = NUM_BINS) -> np.ndarray:
    """Per code, `np.digitize(x, np.histogram(x, num_bins)[1][:-1])`, values 1..num_bins.

    `codes (..., n, K)`, vectorised over members and codes; the edges are computed as np.histogram
    does (min/max of the code, widened by 0.5 when constant, linspace in the code's float type), so
    the bins equal disentanglement_lib's `_histogram_discretize` bit for bit.
    """
    codes = np.asarray(codes)
    lo, hi = codes.min(axis=-2), codes.max(axis=-2)  # (..., K)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ValueError("codes contain NaN or inf")
    if not np.issubdtype(codes.dtype, np.floating):
        lo, hi = lo.astype(np.float64), hi.astype(np.float64)
    same = lo == hi
    lo, hi = np.where(same, lo - 0.5, lo), np.where(same, hi + 0.5, hi)
    edges = np.linspace(lo, hi, num_bins + 1, axis=-1, dtype=np.result_type(lo.dtype, codes.dtype))
    # digitize: the number of left edges <= x.
    return np.sum(codes[..., None] >= edges[..., None, :, :-1], axis=-1, dtype=np.int64)


def _dense(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """`(n, C)` integer labels -> labels in 0..width-1 per column (unused values cost only width)."""
    if labels.size and labels.min() >= 0 and labels.max() < 4096:
        return labels.astype(np.int64, copy=False), int(labels.max()) + 1
    cols = [np.unique(col, return_inverse=True)[1].ravel() for col in labels.T]
    dense = np.stack(cols, axis=1).astype(np.int64)
    return dense, int(dense.max()) + 1


def _one_hot(labels: np.ndarray, width: int) -> np.ndarray:
    """`(n, C)` labels in 0..width-1 -> `(n, C * width)` float32 indicators (exact counts < 2**24)."""
    return (labels[..., None] == np.arange(width)).reshape(labels.shape[0], -1).astype(np.float32)


def _mutual_info_2d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    (a, wa), (b, wb) = _dense(a), _dense(b)
    n, p, q = a.shape[0], a.shape[1], b.shape[1]
    counts = (_one_hot(a, wa).T @ _one_hot(b, wb)).astype(np.float64).reshape(p, wa, q, wb)
    pa, pb = counts.sum(axis=3), counts.sum(axis=1)  # (P, wa, Q), (P, Q, wb)
    outer = pa[..., None] * pb[:, None]  # (P, wa, Q, wb)
    log_n = np.log(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        c_nm = counts / n
        terms = c_nm * (np.log(counts) - log_n) + c_nm * (-np.log(outer) + 2 * log_n)
    terms = np.where(counts > 0, terms, 0.0)
    terms = np.where(np.abs(terms) < np.finfo(np.float64).eps, 0.0, terms)
    mi = np.clip(terms.sum(axis=(1, 3)), 0.0, None)
    # sklearn returns exactly 0 when either variable takes a single value.
    single_a = np.sum(pa[:, :, 0] > 0, axis=1) == 1
    single_b = np.sum(pb[0] > 0, axis=1) == 1
    return np.where(single_a[:, None] | single_b[None, :], 0.0, mi)


def mutual_info(a, b) -> np.ndarray:
    """Discrete mutual information in nats between every column of `a` and every column of `b`.

    `a (n, P)` or `(M, n, P)`, `b (n, Q)` or `(M, n, Q)` integer labels -> `(P, Q)` or `(M, P, Q)`;
    entry [i, j] equals `sklearn.metrics.mutual_info_score(b[:, j], a[:, i])` up to float summation
    order. All pairs' joint counts come from one indicator matrix product per member.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 2 and b.ndim == 2:
        return _mutual_info_2d(a, b)
    m = a.shape[0] if a.ndim == 3 else b.shape[0]
    a3, b3 = np.broadcast_to(a, (m, *a.shape[-2:])), np.broadcast_to(b, (m, *b.shape[-2:]))
    return np.stack([_mutual_info_2d(a3[i], b3[i]) for i in range(m)])


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
    """`(n, F)` -> `(F,)` entropies in nats (`mutual_info_score(y, y)`, as disentanglement_lib)."""
    return np.diagonal(mutual_info(factors, factors)).copy()


def encode(represent, ground_truth, factors: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """`represent(ground_truth.observations(factors))` in chunks of `batch_size` -> `(n, K)` float."""
    out = [np.asarray(represent(ground_truth.observations(factors[i:i + batch_size])))
           for i in range(0, len(factors), batch_size)]
    return np.concatenate(out, axis=0)
