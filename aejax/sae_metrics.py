"""Metrics of sparse autoencoders (SAEs), as pure NumPy functions of arrays: no model code.

Reconstruction (`ReconstructionStats`, fed chunk by chunk, float64 sums, one pass) and ground-truth
recovery on synthetic data (`mcc`, `mmcs`, `uniqueness`, `best_match`, `firing_f1` / `FiringF1`).

Shapes: x and x_hat `(n, d)`, codes `(n, W)` (W latents), decoder rows `(W, d)`, true directions
`(F, d)`, firing masks `(n, W)` and `(n, F)`.

Reference: SAELens `sae_lens/synthetic/evals.py` @ae20a2d08f9638eb5490614715cdbc29c6879cf6
(decoderesearch/SAELens); each function says where it matches that code and where it differs.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

DENSE_FRACTION = 0.1  # a latent firing on more than this fraction of rows is "dense"
_NORM_FLOOR = 1e-8  # SAELens `cosine_similarities` clamps norms at 1e-8


def _as_2d(a, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, dims), got shape {a.shape}")
    return a


class ReconstructionStats:
    """Reconstruction statistics over an eval set fed in chunks; `result()` at any point.

    One pass. Sums are float64. The variance about the eval-set mean is merged chunk by chunk with
    Chan et al.'s pairwise formula (each chunk's own mean and sum of squares about it), so a large
    common offset in x does not cancel catastrophically as E||x||^2 - ||E x||^2 would.

    `result()` keys:
      rows, l0 (mean count of f != 0 per row), fvu = sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 with
      the mean over the WHOLE eval set, explained_variance = 1 - fvu, mse (mean over rows and dims),
      cosine (mean over rows of cos(x, x_hat); 0 for a row where either is zero), norm_ratio (mean over
      rows with ||x|| > 0 of ||x_hat|| / ||x||: shrinkage), relative_reconstruction_bias
      (E||x_hat||^2 / E<x, x_hat>, arXiv 2404.16014 eq. 10), dead_latents (never nonzero on the set),
      dense_latents (nonzero on more than `dense_fraction` of rows), firing_frequency ((W,) array).

    Against SAELens `ExplainedVarianceCalculator` (evals.py lines 185-238): the same definition
    (1 - E||x - x_hat||^2 / (E||x||^2 - ||E x||^2)), which they sum in float32 in one pass; for data of
    zero variance they return 1.0 if the residual is below 1e-10 else 0.0, and so do we (fvu 0 or 1).
    Their L0 and dead latents count `f > 0` (lines 114-145); here `f != 0` (AbsTopK-style codes).
    Their shrinkage skips rows with ||x|| <= 1e-6 (lines 148-182); ours skips rows with ||x|| == 0.
    """

    def __init__(self, dense_fraction: float = DENSE_FRACTION):
        self.dense_fraction = dense_fraction
        self.n = 0
        self.mean = None  # (d,) float64, mean of the rows so far
        self.m2 = 0.0  # sum over rows so far of ||x - mean||^2
        self.resid_sq = 0.0
        self.xhat_sq = 0.0
        self.x_dot_xhat = 0.0
        self.cosine_sum = 0.0
        self.ratio_sum = 0.0
        self.ratio_rows = 0
        self.nonzero = 0
        self.fires = None  # (W,) int64, rows on which each latent was nonzero

    def add(self, x, x_hat, f) -> "ReconstructionStats":
        x, x_hat, f = _as_2d(x, "x").astype(np.float64), _as_2d(x_hat, "x_hat").astype(np.float64), _as_2d(f, "f")
        if x.shape != x_hat.shape or f.shape[0] != x.shape[0]:
            raise ValueError(f"shapes disagree: x {x.shape}, x_hat {x_hat.shape}, f {f.shape}")
        if self.fires is not None and (f.shape[1] != self.fires.shape[0] or x.shape[1] != self.mean.shape[0]):
            raise ValueError(f"chunk widths {x.shape[1]}, {f.shape[1]} differ from the first chunk's")
        n_b = x.shape[0]
        if n_b == 0:
            return self
        mean_b = x.mean(axis=0)
        m2_b = float(((x - mean_b) ** 2).sum())
        if self.n == 0:
            self.mean, self.m2 = mean_b, m2_b
            self.fires = np.zeros(f.shape[1], np.int64)
        else:
            total = self.n + n_b
            delta = mean_b - self.mean
            self.m2 += m2_b + float(delta @ delta) * self.n * n_b / total
            self.mean = self.mean + delta * (n_b / total)
        self.n += n_b
        self.resid_sq += float(((x - x_hat) ** 2).sum())
        norm_x, norm_xhat = np.linalg.norm(x, axis=1), np.linalg.norm(x_hat, axis=1)
        dots = np.einsum("nd,nd->n", x, x_hat)
        self.xhat_sq += float((norm_xhat ** 2).sum())
        self.x_dot_xhat += float(dots.sum())
        both = (norm_x > 0) & (norm_xhat > 0)
        self.cosine_sum += float((dots[both] / (norm_x[both] * norm_xhat[both])).sum())
        has_x = norm_x > 0
        self.ratio_sum += float((norm_xhat[has_x] / norm_x[has_x]).sum())
        self.ratio_rows += int(has_x.sum())
        fired = f != 0
        self.nonzero += int(fired.sum())
        self.fires += fired.sum(axis=0)
        return self

    def result(self) -> dict:
        if self.n == 0:
            raise ValueError("ReconstructionStats.result() before any rows were added")
        n, d = self.n, self.mean.shape[0]
        if self.m2 < 1e-10:  # constant data: SAELens's convention
            fvu = 0.0 if self.resid_sq < 1e-10 else 1.0
        else:
            fvu = self.resid_sq / self.m2
        frequency = self.fires / n
        return {
            "rows": n,
            "l0": self.nonzero / n,
            "fvu": fvu,
            "explained_variance": 1.0 - fvu,
            "mse": self.resid_sq / (n * d),
            "cosine": self.cosine_sum / n,
            "norm_ratio": self.ratio_sum / self.ratio_rows if self.ratio_rows else float("nan"),
            "relative_reconstruction_bias": (self.xhat_sq / self.x_dot_xhat if self.x_dot_xhat != 0
                                             else float("nan")),
            "dead_latents": int((self.fires == 0).sum()),
            "dense_latents": int((frequency > self.dense_fraction).sum()),
            "firing_frequency": frequency,
        }


def reconstruction_stats(x, x_hat, f, dense_fraction: float = DENSE_FRACTION) -> dict:
    """`ReconstructionStats` of one chunk holding the whole eval set."""
    return ReconstructionStats(dense_fraction).add(x, x_hat, f).result()


def cosine_matrix(a, b) -> np.ndarray:
    """`(A, B)` cosines between the rows of `a` `(A, d)` and `b` `(B, d)`, norms clamped at 1e-8 as
    SAELens `sae_lens/util.py` `cosine_similarities` does (a zero row has cosine 0 with everything)."""
    a, b = _as_2d(a, "a").astype(np.float64), _as_2d(b, "b").astype(np.float64)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"row widths differ: {a.shape} and {b.shape}")
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), _NORM_FLOOR)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), _NORM_FLOOR)
    return a @ b.T


def mcc(decoder_rows, true_directions) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean correlation coefficient: Hungarian one-to-one matching of latents to true features on
    |cos(decoder row, true direction)| (maximised), value = mean matched |cos| over the min(W, F)
    pairs. Returns `(value, latent_index, feature_index)`, the pairs sorted by latent.

    Matches SAELens `mean_correlation_coefficient` (evals.py@ae20a2d0 lines 25-55): |cosine| with
    norms clamped at 1e-8, `linear_sum_assignment` (they minimise 1 - |cos|, the same assignment),
    mean over the matched pairs. Like SAELens (`eval_sae_on_synthetic_data` passes the whole `W_dec`),
    every latent takes part, dead ones included: filter `decoder_rows` first to match alive ones only.
    """
    cos = np.abs(cosine_matrix(decoder_rows, true_directions))
    latent_index, feature_index = linear_sum_assignment(cos, maximize=True)
    return float(cos[latent_index, feature_index].mean()), latent_index, feature_index


def mmcs(decoder_rows, true_directions, absolute: bool = False) -> float:
    """Mean max cosine similarity: for each TRUE feature the largest cosine over latents, averaged over
    true features. Many-to-one (one latent may be the best for several features), unlike `mcc`.

    Signed cosine by default, as HoagyC/sparse_coding `mean_max_cosine_similarity` (`cos_sim.max(axis=1)
    .mean()`, the Sharkey et al. 2022 toy-model metric) computes it; `absolute=True` takes |cos|
    (sign-invariant, like `mcc`). SAELens's synthetic evals have no MMCS."""
    cos = cosine_matrix(true_directions, decoder_rows)
    return float((np.abs(cos) if absolute else cos).max(axis=1).mean())


def best_match(decoder_rows, true_directions) -> tuple[np.ndarray, np.ndarray]:
    """`(latent_index, feature_index)`: every latent paired with the true feature of largest |cos|
    (several latents may share one). These are the pairs SAELens's classification metrics use
    (`ClassificationMetricsCalculator`, evals.py lines 241-335: `cos_sim.argmax(dim=1)`)."""
    cos = np.abs(cosine_matrix(decoder_rows, true_directions))
    return np.arange(cos.shape[0]), cos.argmax(axis=1)


def uniqueness(decoder_rows, true_directions) -> float:
    """Distinct true features among the latents' best matches, over W (SAELens `feature_uniqueness`,
    evals.py lines 58-89)."""
    _, feature_index = best_match(decoder_rows, true_directions)
    return len(np.unique(feature_index)) / len(feature_index) if len(feature_index) else 0.0


class FiringF1:
    """Each pair (latent l, feature g) as a detector: does latent l fire (nonzero) on the rows where
    feature g is active? Counts TP, FP, FN, TN per pair over chunks; `result()` averages precision,
    recall, F1 and accuracy over the pairs.

    Per-pair definitions as SAELens `ClassificationMetricsCalculator` (evals.py@ae20a2d0 lines
    241-335): precision = TP/(TP+FP), recall = TP/(TP+FN), F1 = 2PR/(P+R), each 0 where its denominator
    is 0 (so a dead latent scores 0, and counts in the mean); mean over pairs, unweighted. SAELens's
    pairs are every latent with its argmax-|cos| feature: pass `best_match(...)` to reproduce their
    numbers. Passing `mcc(...)`'s Hungarian pairs averages over the min(W, F) one-to-one pairs instead
    (a different number). SAELens fires on `> 0`; the caller chooses here (the masks are given).
    """

    def __init__(self, latent_index, feature_index):
        self.latent_index = np.asarray(latent_index, np.int64)
        self.feature_index = np.asarray(feature_index, np.int64)
        if self.latent_index.shape != self.feature_index.shape or self.latent_index.ndim != 1:
            raise ValueError("latent_index and feature_index must be 1-D and of one length")
        k = len(self.latent_index)
        self.tp, self.latent_fires, self.feature_fires = (np.zeros(k, np.int64) for _ in range(3))
        self.n = 0

    def add(self, codes_fire, true_fire) -> "FiringF1":
        codes_fire = _as_2d(codes_fire, "codes_fire").astype(bool)
        if true_fire.shape[0] != codes_fire.shape[0]:
            raise ValueError(f"row counts differ: {codes_fire.shape} and {true_fire.shape}")
        latent = codes_fire[:, self.latent_index]
        if sp.issparse(true_fire):
            feature = sp.csc_array(true_fire)[:, self.feature_index].astype(bool)
            self.tp += np.asarray(feature.multiply(latent).sum(axis=0)).ravel().astype(np.int64)
            self.feature_fires += np.asarray(feature.sum(axis=0)).ravel().astype(np.int64)
        else:
            feature = _as_2d(true_fire, "true_fire").astype(bool)[:, self.feature_index]
            self.tp += (latent & feature).sum(axis=0)
            self.feature_fires += feature.sum(axis=0)
        self.latent_fires += latent.sum(axis=0)
        self.n += codes_fire.shape[0]
        return self

    def result(self) -> dict:
        """precision, recall, f1, accuracy (means over pairs), pairs (their count), and per pair:
        tp, fp, fn, f1_per_pair."""
        tp = self.tp.astype(np.float64)
        fp, fn = self.latent_fires - tp, self.feature_fires - tp
        tn = self.n - tp - fp - fn

        def ratio(num, den):
            return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)

        precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
        f1 = ratio(2 * precision * recall, precision + recall)
        mean = (lambda a: float(a.mean())) if len(tp) else (lambda a: 0.0)
        return {"precision": mean(precision), "recall": mean(recall), "f1": mean(f1),
                "accuracy": mean((tp + tn) / max(self.n, 1)), "pairs": len(tp),
                "tp": tp.astype(np.int64), "fp": fp.astype(np.int64), "fn": fn.astype(np.int64),
                "f1_per_pair": f1}


def firing_f1(codes_fire, true_fire, latent_index, feature_index) -> dict:
    """`FiringF1` on one chunk: codes_fire `(n, W)` bool, true_fire `(n, F)` bool or scipy.sparse."""
    return FiringF1(latent_index, feature_index).add(codes_fire, true_fire).result()
