"""The VAE objectives of Locatello et al.'s study (disentanglement_lib), picked by `model.objective`.

Each objective is one function

    objective(nll, mean, logvar, z, hp, **settings) -> (loss, terms)

nll `(B,)` is the reconstruction's negative log-likelihood per example; mean, logvar and z
`(B, K)` the posterior's mean and log-variance and the code sampled from it. `hp` holds the
member's scalars: its weight (beta, gamma, lambda_od or c_max, arrays of shape `(E,)` across a
population, see `aejax.population`) and, for annealed_vae, `hp["step"]`, the int32 index of the
current step counted from 0, which the engine adds. `settings` are the static ones
(`objective_for` binds them from the ModelSpec); each function names those it reads and ignores
the rest. Every term is a batch mean, logged as `train/<name>`: nll, kl, neg_elbo = nll + kl,
and the objective's own (tc, dip_od, dip_d, capacity).

FactorVAE trains a second network, a discriminator, inside the same member step. `critic_for(spec)`
gives it (None for the other objectives), and `make_loss` then returns
`loss(params, x, key, hp, critic_params) -> (loss, (terms, z))`: the discriminator's parameters
come in (the loss stops their gradient) and the sampled codes go out, for the critic's own update:

    (_, (terms, z)), grads = jax.value_and_grad(loss, has_aux=True)(params, x, key, hp, critic_params)
    ...the VAE update, as for every objective...
    critic_params, critic_opt_state, critic_terms = critic.update(
        critic_params, critic_opt_state, z, jax.random.fold_in(key, 1))   # disc_loss, disc_acc

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
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from aejax.objectives import gaussian_kl

DISCRIMINATOR_LAYERS = (1000,) * 6   # fc_discriminator: six Dense 1000, leaky ReLU (slope 0.2), then 2 logits
LEAKY_SLOPE = 0.2                    # tf.nn.leaky_relu's default
PROB_CLIP = 1e-6                     # make_discriminator clips the softmax to [1e-6, 1 - 1e-6]


# ----------------------------------------------------------------------------- building blocks
def elbo_terms(nll: jax.Array, mean: jax.Array, logvar: jax.Array) -> dict:
    """Batch means of the reconstruction nll and the KL to N(0, I), and neg_elbo = nll + kl."""
    terms = {"nll": jnp.mean(nll), "kl": jnp.mean(gaussian_kl(mean, logvar))}
    terms["neg_elbo"] = terms["nll"] + terms["kl"]
    return terms


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
def beta_vae(nll, mean, logvar, z, hp, **_):
    """nll + beta KL (Higgins et al. 2017); beta = 1 is the VAE."""
    terms = elbo_terms(nll, mean, logvar)
    return terms["nll"] + hp["beta"] * terms["kl"], terms


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


OBJECTIVES = {f.__name__: f for f in (beta_vae, beta_tc_vae, factor_vae, dip_vae_i, dip_vae_ii, annealed_vae)}


def objective_for(spec, dataset_size: int | None = None) -> Callable:
    """`spec.objective`'s function with its static settings bound:
    `f(nll, mean, logvar, z, hp, critic_params=None) -> (loss, terms)`."""
    settings = {"iteration_threshold": spec.iteration_threshold, "dataset_size": dataset_size}
    if spec.lambda_d_factor is not None:  # null: the objective's own default (10 for I, 1 for II)
        settings["lambda_d_factor"] = spec.lambda_d_factor
    return functools.partial(OBJECTIVES[spec.objective], **settings)


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


@dataclass(frozen=True)
class Critic:
    """A network trained beside each member's VAE, with its own optimiser, in the same step.

    `init(key) -> params`; `update(params, opt_state, z, key, z_other=None) -> (params, opt_state,
    terms)` makes one optimiser step (terms: disc_loss, disc_acc, from before the step)."""
    init: Callable
    optimizer: optax.GradientTransformation

    def update(self, params, opt_state, z, key, z_other=None):
        z = jax.lax.stop_gradient(z)
        permuted = permute_dims(jax.lax.stop_gradient(z if z_other is None else z_other), key)
        grads, terms = jax.grad(discriminator_loss, has_aux=True)(params, z, permuted)
        updates, opt_state = self.optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, terms


def critic_for(spec) -> Critic | None:
    """FactorVAE's discriminator (6 x 1000, Adam 1e-4, b1 0.5, b2 0.9); None for other objectives."""
    if spec.family != "vae" or spec.objective != "factor_vae":
        return None
    return Critic(init=functools.partial(init_discriminator, code_size=spec.code_size),
                  optimizer=optax.adam(1e-4, b1=0.5, b2=0.9, eps=1e-8))
