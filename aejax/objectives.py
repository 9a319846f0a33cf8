"""Losses, regularisers and input corruption: small pure functions that every family shares.

Conventions: a batch is `(B, D)`; codes are `(B, K)`. Every term is a per-example
*sum* (over pixels, over code units) averaged over the batch, so the reconstruction
term is the squared error summed over the image (the figure Hinton & Salakhutdinov 2006
report) and regulariser weights do not depend on the batch size.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

EPS = 1e-6


# ----------------------------------------------------------------------------- corruption
def corrupt(x: jax.Array, key: jax.Array, kind: str, level) -> jax.Array:
    """Denoising corruption of the *input* only (the target stays clean).

    gaussian: x + level * N(0, 1); mask: each entry set to 0 with probability `level`;
    salt_pepper: each entry, with probability `level`, set to 0 or 1 with equal odds.
    `level = 0` returns x unchanged for every kind.
    """
    if kind == "gaussian":
        return x + level * jax.random.normal(key, x.shape, x.dtype)
    hit = jax.random.uniform(key, x.shape) < level
    if kind == "mask":
        return jnp.where(hit, 0.0, x)
    if kind == "salt_pepper":
        salt = jax.random.bernoulli(jax.random.fold_in(key, 1), 0.5, x.shape).astype(x.dtype)
        return jnp.where(hit, salt, x)
    raise ValueError(f"unknown corruption {kind!r}")


# ----------------------------------------------------------------------------- reconstruction
def squared_error(recon: jax.Array, x: jax.Array) -> jax.Array:
    """Per-example sum of squared errors, `(B,)`."""
    return jnp.sum((recon - x) ** 2, axis=-1)


def bernoulli_nll(logits: jax.Array, x: jax.Array) -> jax.Array:
    """-log p(x | logits) summed over dimensions, `(B,)`; x in [0, 1] (binary for a true likelihood)."""
    return jnp.sum(jnp.logaddexp(0.0, logits) - x * logits, axis=-1)


def gaussian_nll(mean: jax.Array, log_scale: jax.Array, x: jax.Array) -> jax.Array:
    """-log N(x; mean, exp(log_scale)^2) summed over dimensions, `(B,)`."""
    z = (x - mean) * jnp.exp(-log_scale)
    return jnp.sum(0.5 * z**2 + log_scale + 0.5 * jnp.log(2 * jnp.pi), axis=-1)


# ----------------------------------------------------------------------------- regularisers
def l1_penalty(h: jax.Array) -> jax.Array:
    """Mean over the batch of sum_j |h_j|."""
    return jnp.mean(jnp.sum(jnp.abs(h), axis=-1))


def kl_sparsity(h: jax.Array, rho: float) -> jax.Array:
    """sum_j KL(Bernoulli(rho) || Bernoulli(rho_hat_j)), rho_hat_j the batch-mean activation of unit j.

    The sparse-autoencoder penalty of Ng's CS294A notes; `h` must lie in (0, 1) (sigmoid codes).
    """
    rho_hat = jnp.clip(jnp.mean(h, axis=0), EPS, 1 - EPS)
    return jnp.sum(rho * jnp.log(rho / rho_hat) + (1 - rho) * jnp.log((1 - rho) / (1 - rho_hat)))


def contractive_penalty(encode: Callable, x: jax.Array) -> jax.Array:
    """Mean over the batch of ||d encode(x) / dx||_F^2, the exact Jacobian (Rifai et al. 2011)."""
    code_size = jax.eval_shape(encode, x[0]).shape[-1]
    # Reverse mode costs one pass per code unit, forward mode one per input dimension.
    jac_fn = jax.jacrev(encode) if code_size <= x.shape[-1] else jax.jacfwd(encode)
    jacobians = jax.vmap(jac_fn)(x)
    return jnp.mean(jnp.sum(jacobians**2, axis=(-2, -1)))


def gaussian_kl(mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """KL(N(mean, exp(logvar)) || N(0, I)) summed over latent dimensions, `(B,)`."""
    return 0.5 * jnp.sum(jnp.exp(logvar) + mean**2 - 1.0 - logvar, axis=-1)


MEMBER_AXIS = "member_block"  # aejax.train.compile_population's vmap axis: the members of one block


def any_member(flag: jax.Array) -> jax.Array:
    """Whether `flag` holds in any member of the block being trained, as ONE unbatched bool.

    A `lax.cond` whose predicate is batched (differs per member) becomes a select under vmap that runs
    both branches for every member; on this value it stays a real branch, taken once for the block.
    Use it to skip work that every member would skip (SAE's AuxK while no latent is dead). Outside
    compile_population's vmap (one member, an evaluation's own vmap) it is `flag` itself."""
    try:
        return jax.lax.psum(flag.astype(jnp.int32), MEMBER_AXIS) > 0
    except NameError:  # the axis is not bound: no block of members around this call
        return flag
