"""Synthetic activations with known features: ground truth for sparse autoencoders (SynthSAEBench).

The data process follows SAELens `sae_lens/synthetic/` (SynthSAEBench, arXiv 2602.14687):

- directions `(F, d)`: Gaussian rows normalised to unit norm (`FeatureDictionary`); optionally pushed
  apart by Adam on `sum_{i!=j} (v_i.v_j)^2 + F sum_i (|v_i|^2 - 1)^2`, then renormalised
  (`orthogonalize_embeddings`; SynthSAEBench-16k: 100 steps, lr 3e-4);
- firing probabilities: Zipf, `p_r = p_min + (p_max - p_min) (r^-a - F^-a) / (1 - F^-a)`, r = 1..F
  (`zipfian_firing_probabilities`), feature 0 the most frequent;
- hierarchy (`generate_hierarchy`): `roots` trees, each node with `branching` children down to `depth`
  edges below the root, features numbered breadth first from 0 (roots first), every parent's children
  mutually exclusive (`mutually_exclusive_portion=1`). A child is zeroed when its parent's activation
  is 0; among the active children of an active parent one, chosen uniformly, is kept. Optional
  compensation (`compensate_probabilities`): a child's base probability is divided by its parent's
  target probability and by its chance of winning the exclusion, solved by fixed-point iteration;
- correlated firing (`generate_random_low_rank_correlation_matrix`): a Gaussian copula with
  correlation `A A^T + diag(1 - |A_i|^2)`, `A ~ N(0, s^2)` of shape `(F, r)` (rows rescaled if some
  diagonal term fell below 0.01); feature i fires when `z_i > Phi^-1(1 - p_i)`;
- magnitudes (`ActivationGenerator.sample`, `firing_magnitudes.py`): a firing feature's value is
  `relu(m_i + s_i eps)`; `m` is linear from `magnitude_mean[0]` (feature 0) to `magnitude_mean[1]`
  (feature F-1), `s_i = |N(magnitude_std[0], magnitude_std[1]^2)|` drawn once per feature (folded
  normal); the hierarchy is applied after the magnitudes, as SAELens does;
- x = acts @ directions + bias, with `bias` a random direction of norm `bias` (SAELens draws its bias
  the same way: a vector scaled to the given norm).

Where this differs, and why:
- NumPy streams instead of torch's: the same distributions, not the same numbers as SAELens.
- The exclusion winner is drawn per row from a uniform key (SAELens: the same rule, other code).
- `scale_children_by_parent` (the 16k model's v2) is not implemented: its definition was not at
  hand; children's magnitudes do not depend on their parent's.
- Orthogonalisation forms the full `F x F` Gram matrix each step (jitted JAX): fine for thousands of
  features, minutes on a CPU for 16,384 (SAELens chunks it on a GPU).
- Rows are made in chunks of `chunk_rows(F)`, each from its own child stream of the seed (threads
  give the same rows as one): the same seed and `n` give the same rows.
- Compensation is on by default (`compensate=True`): with it the 16k settings give a mean true L0 of
  about 35 (25 within the first 4096 features), the paper's ~34 and ~25; without it about 13.5. Where
  the children's Zipf rates add up to more than their parent's, base rates are capped at 1 (as
  SAELens clamps them; with the 16k settings 9,944 features), so those children fire whenever their
  parent does, one of them chosen by the exclusion.

`FeatureModel` holds everything; `make_feature_model(...)` builds it from the settings and a seed;
`sample(model, n, seed)` gives `(x (n, d) float32, acts)` with `acts` a scipy.sparse CSR `(n, F)`
float32 (nothing dense of size n x F is kept); `expected_l0`/`effective_probs` give the exact mean
true L0 without correlation (the copula keeps each feature's own firing rate, so only the exclusion
term moves with correlation); `mean_l0(acts)` measures it. `save_truth`/`load_truth`: an .npz.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.special import ndtr, ndtri

from aejax.settings import require

_MIN_DIAG = 0.01  # SAELens: the copula's own-noise variance stays >= this


@dataclass(frozen=True)
class FeatureModel:
    """The known features. F features in d dimensions; all arrays NumPy."""
    directions: np.ndarray         # (F, d) float32, unit rows
    firing_probs: np.ndarray       # (F,) float64: the target rate of each feature (Zipf)
    base_probs: np.ndarray         # (F,) float64: the copula's rate (= firing_probs unless compensated)
    parent: np.ndarray             # (F,) int64, -1 for roots and features outside the hierarchy
    mag_mean: np.ndarray           # (F,) float32
    mag_std: np.ndarray            # (F,) float32
    bias: np.ndarray               # (d,) float32
    corr_factor: np.ndarray        # (F, r) float64; r = 0: independent firing
    levels: tuple = field(default=())   # per hierarchy level below the roots: (G, b) sibling groups, -1 padded

    @property
    def num_features(self) -> int:
        return self.directions.shape[0]

    @property
    def dim(self) -> int:
        return self.directions.shape[1]


def zipf_probs(num_features: int, exponent: float, p_max: float, p_min: float) -> np.ndarray:
    """SAELens `zipfian_firing_probabilities`: 1/r^a rescaled to [p_min, p_max], descending."""
    if num_features == 1:
        return np.array([p_max])
    raw = np.arange(1, num_features + 1, dtype=np.float64) ** -exponent
    return p_min + (p_max - p_min) * (raw - raw.min()) / (raw.max() - raw.min())


def tree_parents(num_features: int, hierarchy) -> np.ndarray:
    """(F,) parent index (-1: none) of the breadth-first forest [roots, branching, depth]."""
    parent = np.full(num_features, -1, np.int64)
    if not hierarchy:
        return parent
    roots, branching, depth = hierarchy
    level, nxt = np.arange(roots), roots
    for _ in range(depth):
        kids = np.arange(nxt, nxt + len(level) * branching)
        parent[kids] = np.repeat(level, branching)
        level, nxt = kids, nxt + len(kids)
    return parent


def tree_size(hierarchy) -> int:
    if not hierarchy:
        return 0
    roots, branching, depth = hierarchy
    return roots * sum(branching**k for k in range(depth + 1))


def _sibling_levels(parent: np.ndarray) -> tuple:
    """Per level below the roots, the sibling groups (G, b) (-1 padded), in breadth-first order."""
    depth = np.zeros(len(parent), np.int64)
    for i in np.flatnonzero(parent >= 0):   # breadth first: a parent precedes its children
        depth[i] = depth[parent[i]] + 1
    levels = []
    for lv in range(1, int(depth.max(initial=0)) + 1):
        kids = np.flatnonzero(depth == lv)
        owners, counts = np.unique(parent[kids], return_counts=True)
        groups = np.full((len(owners), counts.max()), -1, np.int64)
        order = np.argsort(parent[kids], kind="stable")
        for g, (s, c) in enumerate(zip(np.cumsum(np.r_[0, counts[:-1]]), counts)):
            groups[g, :c] = kids[order[s:s + c]]
        levels.append(groups)
    return tuple(levels)


def _win_probs(q: np.ndarray) -> np.ndarray:
    """q (G, b) chances that each sibling is active (0 for padding): E[1/(1+K)] per sibling, K the
    number of its active siblings (independent), i.e. its chance to win the exclusion."""
    g, b = q.shape
    dist = np.zeros((g, b, b + 1))   # [group, sibling i, k others active]
    dist[:, :, 0] = 1.0
    for j in range(b):
        qj = q[:, j][:, None, None]
        shifted = np.concatenate([np.zeros((g, b, 1)), dist[:, :, :-1]], axis=2)
        new = dist * (1 - qj) + shifted * qj
        mask = (np.arange(b) != j)[None, :, None]
        dist = np.where(mask, new, dist)
    return (dist / np.arange(1, b + 2)).sum(axis=2)


def effective_probs(model: FeatureModel) -> np.ndarray:
    """(F,) the chance that each feature's true activation is > 0, exact without correlation."""
    positive = model.base_probs * ndtr(np.divide(model.mag_mean, model.mag_std, out=np.full(
        model.num_features, np.inf), where=model.mag_std > 0))
    eff = positive.copy()
    for groups in model.levels:
        valid = groups >= 0
        q = np.where(valid, positive[np.maximum(groups, 0)], 0.0)
        win = _win_probs(q)
        owner = model.parent[groups[:, 0]][:, None]
        vals = eff[owner] * q * win
        eff[groups[valid]] = vals[valid]
    return eff


def expected_l0(model: FeatureModel) -> float:
    """The mean number of active features per row (exact without correlation)."""
    return float(effective_probs(model).sum())


def mean_l0(acts: sp.csr_matrix) -> float:
    """The measured mean number of active (nonzero) features per row."""
    return float(acts.getnnz() / acts.shape[0])


def _compensate(target: np.ndarray, parent: np.ndarray, levels: tuple, iterations: int = 100) -> np.ndarray:
    """SAELens `compute_probability_correction_factors`: base rates that give the target rates."""
    base = target.copy()
    for groups in levels:
        valid = groups >= 0
        t = np.where(valid, target[np.maximum(groups, 0)], 0.0)
        owner_p = target[parent[groups[:, 0]]][:, None]
        c = np.minimum(t / owner_p, 1.0)
        for _ in range(iterations):
            new = np.where(valid, np.minimum(t / (owner_p * np.maximum(_win_probs(c), 1e-12)), 1.0), 0.0)
            done = np.abs(new - c).max() < 1e-10
            c = new
            if done:
                break
        base[groups[valid]] = c[valid]
    return base


def orthogonalize(v: np.ndarray, steps: int, lr: float) -> np.ndarray:
    """SAELens `orthogonalize_embeddings` (Adam, default betas) in jitted JAX; unit rows back."""
    import jax
    import jax.numpy as jnp

    n = v.shape[0]

    def loss(e):
        g = e @ e.T
        off = g * (1 - jnp.eye(n, dtype=e.dtype))
        return jnp.sum(off**2) + n * jnp.sum((jnp.diag(g) - 1) ** 2)

    @jax.jit
    def run(e):
        def step(t, carry):
            e, m, s = carry
            grad = jax.grad(loss)(e)
            m = 0.9 * m + 0.1 * grad
            s = 0.999 * s + 0.001 * grad**2
            tt = t + 1.0
            e = e - lr * (m / (1 - 0.9**tt)) / (jnp.sqrt(s / (1 - 0.999**tt)) + 1e-8)
            return e, m, s
        e, _, _ = jax.lax.fori_loop(0, steps, step, (e, jnp.zeros_like(e), jnp.zeros_like(e)))
        return e / jnp.maximum(jnp.linalg.norm(e, axis=1, keepdims=True), 1e-8)

    return np.asarray(run(jnp.asarray(v, jnp.float32)))


def make_feature_model(num_features: int, dim: int, *, zipf_exponent: float = 0.5, firing_max: float = 0.4,
                       firing_min: float = 5e-4, hierarchy=(), compensate: bool = True,
                       correlation_rank: int = 0, correlation_scale: float = 0.1,
                       magnitude_mean=(1.0, 1.0), magnitude_std=(0.0, 0.0), bias: float = 0.0,
                       orthogonalize_steps: int = 0, orthogonalize_lr: float = 3e-4,
                       seed: int = 0) -> FeatureModel:
    """The model, deterministic from `seed` (each part from its own stream, as SAELens offsets its seeds)."""
    if tree_size(hierarchy) > num_features:
        raise ValueError(f"hierarchy {list(hierarchy)} needs {tree_size(hierarchy)} features; only {num_features}")
    streams = [np.random.default_rng([seed, 0, k]) for k in range(4)]
    v = streams[0].standard_normal((num_features, dim))
    v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-8)
    if orthogonalize_steps:
        v = orthogonalize(v, orthogonalize_steps, orthogonalize_lr)
    target = zipf_probs(num_features, zipf_exponent, firing_max, firing_min)
    parent = tree_parents(num_features, tuple(hierarchy))
    levels = _sibling_levels(parent)
    base = _compensate(target, parent, levels) if compensate and levels else target.copy()
    factor = streams[1].standard_normal((num_features, correlation_rank)) * correlation_scale
    sq = (factor**2).sum(axis=1)
    if correlation_rank and (1 - sq).min() < _MIN_DIAG:
        factor *= np.sqrt((1 - _MIN_DIAG) / sq.max())
    stds = np.abs(magnitude_std[0] + magnitude_std[1] * streams[2].standard_normal(num_features))
    b = streams[3].standard_normal(dim)
    b *= bias / np.linalg.norm(b)
    return FeatureModel(v.astype(np.float32), target, base, parent,
                        np.linspace(magnitude_mean[0], magnitude_mean[1], num_features).astype(np.float32),
                        stds.astype(np.float32), b.astype(np.float32), factor, levels)


def chunk_rows(num_features: int) -> int:
    """Rows made at once: about 32M dense values per chunk."""
    return max(256, (1 << 25) // num_features)


def _chunk(model: FeatureModel, n: int, rng: np.random.Generator, thresholds: np.ndarray) -> sp.csr_matrix:
    f, r = model.corr_factor.shape
    z = rng.standard_normal((n, f), dtype=np.float32)
    if r:
        z *= np.sqrt(1 - (model.corr_factor**2).sum(axis=1)).astype(np.float32)
        z += rng.standard_normal((n, r), dtype=np.float32) @ model.corr_factor.T.astype(np.float32)
    # The hierarchy's features (0..h-1, breadth first) as one dense block: with compensation most of
    # them fire before their parent and the exclusion prune them.
    h = 1 + max(int(groups.max()) for groups in model.levels) if model.levels else 0
    rows, cols = np.nonzero(z[:, h:] > thresholds[h:])
    cols += h
    vals = model.mag_mean[cols] + model.mag_std[cols] * rng.standard_normal(len(cols), dtype=np.float32)
    keep = vals > 0
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    if h:
        mags = model.mag_mean[:h] + model.mag_std[:h] * rng.standard_normal((n, h), dtype=np.float32)
        act = np.where(z[:, :h] > thresholds[:h], np.maximum(mags, 0), np.float32(0))
        for groups in model.levels:
            valid = groups >= 0
            g = np.maximum(groups, 0)
            sib = act[:, g] * valid                                        # (n, G, b)
            sib *= (act[:, model.parent[groups[:, 0]]] > 0)[:, :, None]    # the parent is active
            on = sib > 0
            key = np.where(on, rng.random(on.shape, dtype=np.float32), -1.0)
            keepers = on & (np.arange(groups.shape[1]) == key.argmax(axis=2)[:, :, None])
            act[:, g[valid]] = np.where(keepers, sib, 0.0)[:, valid]
        hr, hc = np.nonzero(act)
        rows, cols, vals = np.r_[hr, rows], np.r_[hc, cols], np.r_[act[hr, hc], vals]
    acts = sp.csr_matrix((vals, (rows, cols)), shape=(n, f), dtype=np.float32)
    acts.sort_indices()
    return acts


def sample(model: FeatureModel, n: int, seed, workers: int = 2) -> tuple[np.ndarray, sp.csr_matrix]:
    """n rows: x (n, d) float32 = acts @ directions + bias, and acts, CSR (n, F) float32.
    `seed`: an int, a sequence of ints, or a numpy Generator. Each chunk of `chunk_rows(F)` rows has
    its own child stream, so `workers` threads give the same rows as one."""
    from concurrent.futures import ThreadPoolExecutor

    step = chunk_rows(model.num_features)
    starts = range(0, n, step)
    streams = (seed.spawn(len(starts)) if isinstance(seed, np.random.Generator)
               else [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(starts))])
    thresholds = ndtri(1 - model.base_probs).astype(np.float32)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        parts = list(pool.map(lambda k: _chunk(model, min(step, n - starts[k]), streams[k], thresholds),
                              range(len(starts))))
    acts = sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, model.num_features), dtype=np.float32)
    x = np.asarray(acts @ model.directions, dtype=np.float32) + model.bias
    return x, acts


@dataclass(frozen=True)
class SyntheticFeatures:
    """`Dataset.features` of data=synthetic_features."""
    model: FeatureModel
    test_activations: sp.csr_matrix   # (N_test, F) float32, the true activations of Dataset.test


def model_from_spec(spec) -> FeatureModel:
    """The FeatureModel of a DataSpec's synthetic_features settings (data.seed)."""
    steps, lr = spec.orthogonalize or (0, 3e-4)
    return make_feature_model(spec.num_features, spec.dim, zipf_exponent=spec.zipf_exponent,
                              firing_max=spec.firing_max, firing_min=spec.firing_min, hierarchy=spec.hierarchy,
                              compensate=spec.compensate, correlation_rank=spec.correlation_rank,
                              correlation_scale=spec.correlation_scale, magnitude_mean=spec.magnitude_mean,
                              magnitude_std=spec.magnitude_std, bias=spec.bias, orthogonalize_steps=steps,
                              orthogonalize_lr=lr, seed=spec.seed)


DEFAULT_TEST_ROWS = 10_000


def load_synthetic_features(spec):
    """data=synthetic_features: train (data.num_samples rows, capped by data.train_size), validation
    (data.val_fraction * num_samples rows) and test (data.test_size rows, null: 10,000), each from its
    own stream of data.seed, so no test row repeats a training row's draws. No binarisation."""
    from aejax.data.dataset import Dataset

    model = model_from_spec(spec)
    require(spec.train_size is None or spec.train_size <= spec.num_samples, "data.train_size", spec.train_size,
            f"at most data.num_samples={spec.num_samples} (the training rows of data.name={spec.name}) or null")
    n_train = spec.train_size or spec.num_samples
    x_train, _ = sample(model, n_train, [spec.seed, 1])
    x_val, _ = sample(model, int(round(spec.val_fraction * spec.num_samples)), [spec.seed, 3])
    x_test, a_test = sample(model, spec.test_size or DEFAULT_TEST_ROWS, [spec.seed, 2])
    return Dataset(spec.name, x_train, x_val.reshape(-1, model.dim), x_test,
                   features=SyntheticFeatures(model, a_test))


def save_truth(path, model: FeatureModel, test_activations: sp.csr_matrix) -> None:
    """An .npz a run dir can keep: the model's arrays and the test split's true activations (CSR parts)."""
    a = sp.csr_matrix(test_activations)
    np.savez_compressed(path, directions=model.directions, firing_probs=model.firing_probs,
                        base_probs=model.base_probs, parent=model.parent, bias=model.bias,
                        mag_mean=model.mag_mean, mag_std=model.mag_std, corr_factor=model.corr_factor,
                        test_data=a.data, test_indices=a.indices, test_indptr=a.indptr,
                        test_shape=np.asarray(a.shape))


def load_truth(path) -> tuple[FeatureModel, sp.csr_matrix]:
    """(model, test activations) from `save_truth`'s file."""
    with np.load(path) as z:
        model = FeatureModel(z["directions"], z["firing_probs"], z["base_probs"], z["parent"], z["mag_mean"],
                             z["mag_std"], z["bias"], z["corr_factor"], _sibling_levels(z["parent"]))
        acts = sp.csr_matrix((z["test_data"], z["test_indices"], z["test_indptr"]), shape=tuple(z["test_shape"]))
    return model, acts
