"""What a VAE's latents hold, for any model with `posterior(x)` and `decode(z)`: q(z|x) in batches, each
latent's KL, and latent traversals. Used by a run's figures and by `load_run`."""

from __future__ import annotations

import jax
import numpy as np

from aejax.errors import ConfigError

BATCH = 1000  # rows per jitted call: bounded memory on any split size
TRAVERSAL_VALUES = np.linspace(-2.0, 2.0, 9)  # disentanglement_lib's fixed [-2, 2] interval


def batched(fn, x):
    """`fn` on `(N, D)` inputs, BATCH rows per jitted call; an array (or tuple of arrays) of N rows."""
    f = jax.jit(fn)
    x = np.asarray(x, np.float32)
    parts = [f(x[i:i + BATCH]) for i in range(0, len(x), BATCH)]
    return jax.tree.map(lambda *p: np.concatenate([np.asarray(a) for a in p]), *parts)


def posterior(model, x) -> tuple[np.ndarray, np.ndarray]:
    """A VAE's q(z|x) for `(N, D)` inputs: (mean, log-variance), each `(N, K)`."""
    return batched(model.posterior, x)


def kl_per_latent(model, x) -> np.ndarray:
    """`(K,)`: KL(q(z_k|x) || p(z_k)) per latent, averaged over the rows of `x` (`model.latent_kl`:
    for the N(0, I) prior (mean^2 + var - 1 - log var) / 2; for a mixture prior, the KL to its
    marginal p(z_k), by quadrature). Near 0: a collapsed latent the decoder ignores."""
    return np.mean(batched(lambda xb: model.latent_kl(*model.posterior(xb)), x), axis=0)


def latent_order(kl: np.ndarray) -> np.ndarray:
    """Latent indices by KL, largest first (ties keep index order)."""
    return np.argsort(-np.asarray(kl), kind="stable")


def traverse(model, x, values=TRAVERSAL_VALUES, dims=None) -> np.ndarray:
    """Latent traversals of a VAE: `(N, R, V, D)` decoded means for `(N, D)` inputs `x`, R = len(dims)
    latents (None: all, in index order) and V = len(values).

    Entry `[i, r, j]` decodes the posterior mean of `x[i]` with latent `dims[r]` *set to* `values[j]`
    (the other latents stay at the mean): the convention of disentanglement_lib
    (`latent_traversal_1d_multi_dim`, its `fixed_interval_cycle` over [-2, 2]) and disent, so a
    column shows the same prior value for every image. Values are absolute, not offsets, in units of
    each latent's prior standard deviation about its prior mean (`model.prior_marginals()`): for the
    N(0, I) prior the values themselves; for a learned prior (the VampPrior) z_d = loc_d + value * scale_d,
    so the interval covers the same share of the prior as it does for N(0, 1)."""
    values = np.asarray(values, np.float32)
    dims = np.arange(model.latent) if dims is None else np.asarray(dims)
    if values.ndim != 1 or not len(values):
        raise ConfigError(f"values of shape {values.shape} is not allowed; expected a 1-D array of latent values")
    if dims.ndim != 1 or not np.issubdtype(dims.dtype, np.integer) or ((dims < 0) | (dims >= model.latent)).any():
        raise ConfigError(f"dims={dims.tolist()} is not allowed; expected latent indices 0 to {model.latent - 1}")
    mean = posterior(model, x)[0]
    z = np.repeat(np.repeat(mean[:, None, None, :], len(dims), axis=1), len(values), axis=2)  # (N, R, V, K)
    loc, scale = (np.asarray(a, np.float32) for a in jax.jit(model.prior_marginals)())
    for r, d in enumerate(dims):
        z[:, r, :, d] = loc[d] + scale[d] * values
    return batched(model.decode, z.reshape(-1, model.latent)).reshape(*z.shape[:3], -1)
