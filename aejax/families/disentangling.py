"""The disentangling VAE objectives of Locatello et al.'s study (disentanglement_lib), each registered
under the VAE family (`model.objective`, see `aejax.families.vae` for the objective interface):
beta_tc_vae, factor_vae, dip_vae_i, dip_vae_ii, annealed_vae (beta_vae lives with the family).

FactorVAE trains a second network, a discriminator, inside the same member step: its `extra` is a
`Critic`, and the engine then passes the critic's parameters into the loss (`critic_params`, whose
gradient the loss stops) and makes the critic's own update from the sampled codes of the same batch.
Both updates read the same batch and the parameters from before the step, as disentanglement_lib's
`tf.group` of its two `minimize` calls.

Where aejax follows disentanglement_lib (methods/unsupervised/vae.py @ 86a644d) and where not:
- Followed exactly: every formula below; KL weight 1 besides the regulariser (beta only in beta-VAE
  and beta-TCVAE); the biased (divide by B) covariance of DIP; C(t) = min(c_max, c_max t / threshold)
  with t counted from 0; FactorVAE's TC = mean(logit_0 - logit_1) on the sampled codes, the
  discriminator's probabilities clipped to [1e-6, 1 - 1e-6], its Adam (1e-4, b1 0.5, b2 0.9), and the
  permuted codes taken from the same batch (Kim & Mnih use a second batch: pass `z_other`).
- Fixed: disentanglement_lib's FactorVAE passes `global_step` to both `minimize` calls, so (read from
  the code, not confirmed by a run) the counter advances twice per iteration and a "300k step" run makes
  ~150k updates. Here a step is one VAE update and one discriminator update, counted once: to match
  the study's FactorVAE budget, train half the steps.
- Fixed: its TC estimate drops the constant (K - 1) log(B N) (N the dataset size), so its logged "TC"
  sits ~159 nats below zero on dSprites. With `dataset_size` (`make_loss(..., dataset_size=N)`), `tc`
  and the loss include it; the gradients are the same either way. Without it, tc is disentanglement_lib's.
- disc_loss is the cross-entropy the discriminator minimises, the negative of what
  disentanglement_lib logs as "discriminator_loss" (its issue #16).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

from aejax.families.registry import Critic, Objective, register_objective
from aejax.settings import NON_NEGATIVE, Rule, setting
from aejax.families.vae import BetaSettings, elbo_terms

DISCRIMINATOR_LAYERS = (1000,) * 6   # fc_discriminator: six Dense 1000, leaky ReLU (slope 0.2), then 2 logits
LEAKY_SLOPE = 0.2                    # tf.nn.leaky_relu's default
PROB_CLIP = 1e-6                     # make_discriminator clips the softmax to [1e-6, 1 - 1e-6]


# ----------------------------------------------------------------------------- building blocks
def gaussian_log_density(x: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """log N(x; mean, exp(logvar)) element-wise (broadcasting)."""
    return -0.5 * ((x - mean) ** 2 * jnp.exp(-logvar) + logvar + jnp.log(2 * jnp.pi))


def total_correlation(z: jax.Array, mean: jax.Array, logvar: jax.Array, dataset_size: int | None = None):
    """Minibatch-weighted-sampling estimate of TC(q(z)) (Chen et al. 2018, disentanglement_lib).

    With log_q[j, i, l] = log q(z_jl | x_i), `(B, B, K)`:
    mean_j [ logsumexp_i sum_l log_q[j, i, l] - sum_l logsumexp_i log_q[j, i, l] ] + (K - 1) log(B N).
    Without `dataset_size` the constant is dropped, as disentanglement_lib does.
    """
    log_q = gaussian_log_density(z[:, None, :], mean[None], logvar[None])
    log_qz = jax.nn.logsumexp(jnp.sum(log_q, axis=2), axis=1)
    log_qz_product = jnp.sum(jax.nn.logsumexp(log_q, axis=1), axis=1)
    tc = jnp.mean(log_qz - log_qz_product)
    if dataset_size is not None:
        batch, latents = z.shape
        tc = tc + (latents - 1) * math.log(batch * dataset_size)
    return tc


def covariance(x: jax.Array) -> jax.Array:
    """Biased batch covariance `(K, K)` of `(B, K)`: mean(x x^T) - mean(x) mean(x)^T."""
    centre = jnp.mean(x, axis=0)
    return jnp.mean(x[:, :, None] * x[:, None, :], axis=0) - centre[:, None] * centre[None, :]


def dip_penalties(cov: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(sum_{i != j} cov_ij^2, sum_i (cov_ii - 1)^2): the distance of `cov` from the identity."""
    diag = jnp.diagonal(cov)
    return jnp.sum((cov - jnp.diag(diag)) ** 2), jnp.sum((diag - 1.0) ** 2)


def capacity(c_max, step, iteration_threshold: int) -> jax.Array:
    """C(t) = min(c_max, c_max t / iteration_threshold): rises linearly, then stays at c_max."""
    return jnp.minimum(c_max, c_max * jnp.asarray(step, jnp.float32) / iteration_threshold)


# ----------------------------------------------------------------------------- objectives
def beta_tc_vae(nll, mean, logvar, z, hp, dataset_size=None, **_):
    """nll + KL + (beta - 1) TC (Chen et al. 2018, Eq. 4 with alpha = gamma = 1)."""
    terms = elbo_terms(nll, mean, logvar)
    terms["tc"] = total_correlation(z, mean, logvar, dataset_size)
    return terms["neg_elbo"] + (hp["beta"] - 1.0) * terms["tc"], terms


def factor_vae(nll, mean, logvar, z, hp, critic_params, **_):
    """nll + KL + gamma TC, TC = mean(logit_0 - logit_1) of the discriminator on z (Kim & Mnih 2018).

    The gradient reaches the encoder through z, never the discriminator (it has its own update)."""
    terms = elbo_terms(nll, mean, logvar)
    logits = discriminate(jax.lax.stop_gradient(critic_params), z)
    terms["tc"] = jnp.mean(logits[:, 0] - logits[:, 1])
    return terms["neg_elbo"] + hp["gamma"] * terms["tc"], terms


def _dip(cov, nll, mean, logvar, hp, lambda_d_factor):
    terms = elbo_terms(nll, mean, logvar)
    terms["dip_od"], terms["dip_d"] = dip_penalties(cov)
    lambda_d = lambda_d_factor * hp["lambda_od"]
    return terms["neg_elbo"] + hp["lambda_od"] * terms["dip_od"] + lambda_d * terms["dip_d"], terms


def dip_vae_i(nll, mean, logvar, z, hp, lambda_d_factor=10.0, **_):
    """nll + KL + lambda_od sum_{i!=j} Cov[mu]_ij^2 + lambda_d sum_i (Cov[mu]_ii - 1)^2,
    lambda_d = lambda_d_factor lambda_od (Kumar et al. 2018, Eq. 6)."""
    return _dip(covariance(mean), nll, mean, logvar, hp, lambda_d_factor)


def dip_vae_ii(nll, mean, logvar, z, hp, lambda_d_factor=1.0, **_):
    """The DIP-VAE-I penalty on Cov[z] = mean_b diag(exp(logvar)) + Cov[mu] (Kumar et al. 2018, Eq. 7)."""
    cov_z = jnp.diag(jnp.mean(jnp.exp(logvar), axis=0)) + covariance(mean)
    return _dip(cov_z, nll, mean, logvar, hp, lambda_d_factor)


def annealed_vae(nll, mean, logvar, z, hp, iteration_threshold=100_000, **_):
    """nll + gamma |KL - C(t)| (Burgess et al. 2018, Eq. 8); t = hp["step"]."""
    terms = elbo_terms(nll, mean, logvar)
    terms["capacity"] = capacity(hp["c_max"], hp["step"], iteration_threshold)
    return terms["nll"] + hp["gamma"] * jnp.abs(terms["kl"] - terms["capacity"]), terms


# ----------------------------------------------------------------------------- FactorVAE's critic
def init_discriminator(key: jax.Array, code_size: int, hidden=DISCRIMINATOR_LAYERS) -> dict:
    """Glorot-uniform kernels and zero biases (tf.layers' defaults): code_size -> hidden... -> 2."""
    sizes = (code_size, *hidden, 2)
    keys = jax.random.split(key, len(sizes) - 1)
    glorot = jax.nn.initializers.glorot_uniform()
    return {f"dense_{i}": {"kernel": glorot(k, (n_in, n_out)), "bias": jnp.zeros((n_out,))}
            for i, (k, n_in, n_out) in enumerate(zip(keys, sizes[:-1], sizes[1:]))}


def discriminate(params: dict, z: jax.Array) -> jax.Array:
    """Logits `(B, 2)`: column 0 "a code of the data", column 1 "a dimension-permuted code"."""
    h = z
    for i in range(len(params)):
        layer = params[f"dense_{i}"]
        h = h @ layer["kernel"] + layer["bias"]
        if i < len(params) - 1:
            h = jax.nn.leaky_relu(h, LEAKY_SLOPE)
    return h


def permute_dims(z: jax.Array, key: jax.Array) -> jax.Array:
    """Each latent dimension (column) shuffled independently across the batch (shuffle_codes)."""
    order = jnp.argsort(jax.random.uniform(key, z.shape), axis=0)
    return jnp.take_along_axis(z, order, axis=0)


def discriminator_loss(params: dict, z: jax.Array, permuted: jax.Array):
    """-(0.5 mean log p(0 | z) + 0.5 mean log p(1 | permuted)) and its accuracy, as (loss, terms)."""
    logits = discriminate(params, jnp.concatenate([z, permuted]))  # one pass over both halves
    log_p = jnp.log(jnp.clip(jax.nn.softmax(logits), PROB_CLIP, 1 - PROB_CLIP))
    b = z.shape[0]
    loss = -0.5 * (jnp.mean(log_p[:b, 0]) + jnp.mean(log_p[b:, 1]))
    label = jnp.concatenate([jnp.zeros(b, jnp.int32), jnp.ones(permuted.shape[0], jnp.int32)])
    return loss, {"disc_loss": loss, "disc_acc": jnp.mean(jnp.argmax(logits, axis=-1) == label).astype(jnp.float32)}


def discriminator_step_loss(params: dict, z: jax.Array, key: jax.Array, z_other=None):
    """The critic's loss on the codes of the batch against the same (or `z_other`'s) codes with each
    dimension permuted (Kim & Mnih use a second batch: pass `z_other`)."""
    return discriminator_loss(params, z, permute_dims(z if z_other is None else z_other, key))


def factor_vae_critic(spec, settings) -> Critic:
    """FactorVAE's discriminator (6 x 1000, Adam 1e-4, b1 0.5, b2 0.9), one per member."""
    return Critic(init=functools.partial(init_discriminator, code_size=spec.code_size),
                  optimizer=optax.adam(1e-4, b1=0.5, b2=0.9, eps=1e-8), loss=discriminator_step_loss)


# ----------------------------------------------------------------------------- declarations
GAMMA = dict(rule=NON_NEGATIVE, member=True, label="gamma")


@dataclass(frozen=True)
class FactorSettings:
    gamma: float = setting(1.0, "weight of the TC, read from the discriminator", **GAMMA)


@dataclass(frozen=True)
class DipSettings:
    lambda_od: float = setting(1.0, "weight of the off-diagonal covariance penalty", rule=NON_NEGATIVE, member=True,
                               label="lambda_od")
    lambda_d_factor: float | None = setting(
        None, "lambda_d = lambda_d_factor * lambda_od; null: 10 for dip_vae_i, 1 for dip_vae_ii",
        rule=Rule(lambda v: v >= 0, "null (10 for dip_vae_i, 1 for dip_vae_ii) or a number >= 0"))


@dataclass(frozen=True)
class AnnealedSettings:
    gamma: float = setting(1.0, "weight of |KL - C(t)|", **GAMMA)
    c_max: float = setting(0.0, "the KL target C(t) rises linearly to c_max nats", rule=NON_NEGATIVE, member=True,
                           label="c_max")
    iteration_threshold: int = setting(100000, "steps for C(t) to reach c_max",
                                       rule=Rule(lambda v: v > 0, "an integer > 0 (steps)"))


for _objective in (
        Objective("beta_tc_vae", BetaSettings, beta_tc_vae, "β-TCVAE", "beta", citation="Chen et al. 2018, NeurIPS"),
        Objective("factor_vae", FactorSettings, factor_vae, "FactorVAE", "gamma", extra=factor_vae_critic,
                  citation="Kim & Mnih 2018, ICML"),
        Objective("dip_vae_i", DipSettings, dip_vae_i, "DIP-VAE-I", "lambda_od", citation="Kumar et al. 2018, ICLR"),
        Objective("dip_vae_ii", DipSettings, dip_vae_ii, "DIP-VAE-II", "lambda_od", citation="Kumar et al. 2018, ICLR"),
        Objective("annealed_vae", AnnealedSettings, annealed_vae, "AnnealedVAE", "c_max",
                  citation="Burgess et al. 2018, arXiv:1804.03599")):
    register_objective("vae", _objective)
