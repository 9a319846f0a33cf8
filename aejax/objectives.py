"""Losses, regularisers and input corruption: small pure functions.

Conventions: a batch is `(B, D)`; codes are `(B, K)`. Every term is a per-example
*sum* (over pixels, over code units) averaged over the batch, so the reconstruction
term is the squared error summed over the image (the figure Hinton & Salakhutdinov 2006
report) and regulariser weights do not depend on the batch size.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from aejax.config import ModelSpec

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


# ----------------------------------------------------------------------------- objective
def member_top_k(spec: ModelSpec, hp: dict) -> dict:
    """Keyword arguments that hand a member its own k, for models with a top-k code."""
    return {"top_k": hp["top_k"]} if spec.family == "autoencoder" and spec.sparsity == "topk" else {}


def make_loss(spec: ModelSpec, graph, use_contractive: bool | None = None,
              use_corruption: bool | None = None, binarize_batches: bool = False,
              dataset_size: int | None = None) -> Callable:
    """The training objective `loss(params, x, key, hp) -> (scalar, terms)`.

    `hp` holds this member's scalar hyperparameters (noise_level, sparsity_weight,
    contractive_weight, and the VAE objective's weight); which terms exist is decided here,
    once, from `spec`. A VAE's objective is `aejax.vae_objectives`' `spec.objective`; one with a
    critic (FactorVAE) gives `loss(params, x, key, hp, critic_params) -> (scalar, (terms, z))`
    instead (see that module). `dataset_size` completes beta-TCVAE's TC estimate with its constant.
    The Jacobian is only computed when `use_contractive`, and noise only drawn when
    `use_corruption` (defaults: the weight, the level is > 0); a population that varies
    them passes True. `binarize_batches` (data.binarize=dynamic) replaces every batch of
    intensities by a fresh Bernoulli draw, input and target alike (Burda et al. 2016).
    """
    if use_contractive is None:
        use_contractive = spec.contractive_weight > 0
    if use_corruption is None:
        use_corruption = spec.noise_level > 0
    from aejax.vae_objectives import critic_for, objective_for  # it imports this module

    vae_objective = objective_for(spec, dataset_size) if spec.family == "vae" else None
    with_critic = critic_for(spec) is not None

    def loss(params, x, key, hp, critic_params=None):
        model = nnx.merge(graph, params)
        if binarize_batches:
            key, binarize_key = jax.random.split(key)
            x = jax.random.bernoulli(binarize_key, x).astype(x.dtype)
        noise_key, model_key = jax.random.split(key)
        x_in = corrupt(x, noise_key, spec.corruption, hp["noise_level"]) if use_corruption else x
        recon, aux = model(x_in, model_key, **member_top_k(spec, hp))
        terms = {"sse": jnp.mean(squared_error(recon, x))}
        terms["mse"] = terms["sse"] / x.shape[-1]
        if spec.family == "vae":
            if spec.likelihood == "bernoulli":
                nll = bernoulli_nll(aux["decoder_out"], x)
            else:
                nll = gaussian_nll(aux["decoder_out"], params["log_scale"], x)
            total, vae_terms = vae_objective(nll, aux["mean"], aux["logvar"], aux["z"], hp,
                                             critic_params=critic_params)
            terms.update(vae_terms)
        elif spec.reconstruction_loss == "cross_entropy":  # sigmoid outputs, x in [0, 1]
            terms["cross_entropy"] = jnp.mean(bernoulli_nll(aux["decoder_out"], x))
            total = terms["cross_entropy"]
        else:
            total = terms["sse"]
        h = aux["code"]
        if spec.sparsity == "l1":
            terms["l1"] = l1_penalty(h)
            total = total + hp["sparsity_weight"] * terms["l1"]
        elif spec.sparsity == "kl":
            terms["kl_sparsity"] = kl_sparsity(h, spec.sparsity_target)
            total = total + hp["sparsity_weight"] * terms["kl_sparsity"]
        if use_contractive:
            terms["contractive"] = contractive_penalty(model.encode, x_in)
            total = total + hp["contractive_weight"] * terms["contractive"]
        terms["loss"] = total
        return (total, (terms, aux["z"])) if with_critic else (total, terms)

    return loss
