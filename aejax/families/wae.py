"""The Wasserstein autoencoder (`model.family=wae`; WAE-MMD, Tolstikhin et al. 2018, ICLR) and InfoVAE
(`model.objective=info_vae`, MMD variant; Zhao et al. 2019, AAAI), which share the MMD code here.

WAE-MMD (Tolstikhin et al., Algorithm 2): a deterministic encoder z = f(x) and decoder g(z), trained on

    loss = c(x, g(f(x))) + lambda * MMD_k(q_Z, p_Z),   p_Z = N(0, I),

c the summed squared error or the Bernoulli cross-entropy (the autoencoder family's two), the MMD
estimated on each batch between its codes and as many fresh draws from the prior. lambda is
`model.mmd_weight`, per member.

InfoVAE (Zhao et al., Eq. 7 with the divergence of the marginal replaced by the MMD, their "MMD-VAE"):
a VAE objective (`aejax.families.vae`), with z the code sampled from q(z|x),

    loss = nll + (1 - alpha) KL(q(z|x) || p(z)) + (alpha + lambda - 1) MMD(q(z), p(z)),

alpha (`model.alpha`) and lambda (`model.info_lambda`) per member; alpha = 0, lambda = 1 is the VAE.

The MMD (Gretton et al. 2012, Lemma 6; Tolstikhin et al., Algorithm 2) is the unbiased estimate between
n codes z and n prior draws z~:

    sum_{i != j} k(z_i, z_j) / (n(n-1)) + sum_{i != j} k(z~_i, z~_j) / (n(n-1)) - 2 sum_{i, j} k(z_i, z~_j) / n^2

(the cross term pairs independent samples, so all n^2 pairs enter it unbiased). Kernels, with d the code
size and sigma^2 = `model.kernel_bandwidth` (the prior's variance, 1 for N(0, I)):
- imq: sum over s in SCALES of C / (C + ||x - y||^2), C = 2 d sigma^2 s. The inverse multiquadratic kernel
  and its scales are Tolstikhin et al.'s (Sec. 4, "we used ... k(x, y) = C / (C + ||x - y||^2) with
  C = 2 d_z sigma_z^2 ... summed over several scales") and pythae's (`wae_mmd_model.py`, scales
  [.1, .2, .5, 1, 2, 5, 10]).
- rbf: exp(-||x - y||^2 / C), C = 2 d sigma^2, one scale, as pythae's `rbf_kernel`.
pythae's `kernel_bandwidth` is sigma and it squares it; aejax's is sigma^2 (the same C at 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from aejax.families.autoencoder import Autoencoder
from aejax.families.registry import Family, Objective, register, register_objective
from aejax.families.vae import elbo_terms
from aejax.nets import ACTIVATIONS, backbone
from aejax.objectives import bernoulli_nll, squared_error
from aejax.settings import NON_NEGATIVE, POSITIVE, Rule, require, setting

KERNELS = ("imq", "rbf")
SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)   # Tolstikhin et al.'s and pythae's imq scales


# ----------------------------------------------------------------------------- the MMD
def squared_distances(x: jax.Array, y: jax.Array) -> jax.Array:
    """||x_i - y_j||^2 `(N, M)` of `(N, d)` and `(M, d)`, clipped at 0 (the expansion can round below it)."""
    d2 = jnp.sum(x**2, -1)[:, None] + jnp.sum(y**2, -1)[None, :] - 2.0 * x @ y.T
    return jnp.maximum(d2, 0.0)


def kernel_matrix(x: jax.Array, y: jax.Array, kernel: str, bandwidth: float) -> jax.Array:
    """k(x_i, y_j) `(N, M)` for `kernel` in KERNELS, sigma^2 = `bandwidth` (see the module docstring)."""
    d2 = squared_distances(x, y)
    base = 2.0 * x.shape[-1] * bandwidth
    if kernel == "imq":
        return sum(base * s / (base * s + d2) for s in SCALES)
    if kernel == "rbf":
        return jnp.exp(-d2 / base)
    raise ValueError(f"unknown kernel {kernel!r}; expected one of {', '.join(KERNELS)}")


def mmd(z: jax.Array, z_prior: jax.Array, kernel: str = "imq", bandwidth: float = 1.0) -> jax.Array:
    """The unbiased MMD^2 estimate between codes `z` and prior draws `z_prior`, both `(n, d)`, n >= 2."""
    n = z.shape[0]
    if n < 2 or z_prior.shape[0] != n:
        raise ValueError(f"the MMD needs two batches of the same size >= 2; got {z.shape} and {z_prior.shape}")
    off_diagonal = 1.0 - jnp.eye(n)
    k_zz = jnp.sum(kernel_matrix(z, z, kernel, bandwidth) * off_diagonal) / (n * (n - 1))
    k_pp = jnp.sum(kernel_matrix(z_prior, z_prior, kernel, bandwidth) * off_diagonal) / (n * (n - 1))
    k_zp = jnp.sum(kernel_matrix(z, z_prior, kernel, bandwidth)) / n**2
    return k_zz + k_pp - 2.0 * k_zp


# ----------------------------------------------------------------------------- WAE-MMD
class WAE(Autoencoder):
    """The deterministic autoencoder with a prior to sample from: its forward pass also draws the prior
    samples the MMD compares the batch's codes with (the family's loss gets no key of its own)."""

    def __init__(self, encoder, decoder, output_activation, latent: int):
        super().__init__(encoder, decoder, ACTIVATIONS["linear"], output_activation)
        self.latent = latent

    def generate(self, z):
        return self.decode(z)

    def sample(self, key, n: int):
        """`n` images decoded from z ~ N(0, I), the prior the MMD matched the codes to."""
        return self.decode(jax.random.normal(key, (n, self.latent)))

    def __call__(self, x, key):
        recon, aux = super().__call__(x)
        return recon, {**aux, "z": aux["code"], "prior": jax.random.normal(key, aux["code"].shape)}


@dataclass(frozen=True)
class WAESettings:
    output_activation: str = setting("sigmoid", "activation of the reconstruction: sigmoid for data in [0, 1], "
                                     "linear otherwise", choices=tuple(ACTIVATIONS))
    reconstruction_loss: str = setting("squared_error", "the cost c(x, g(f(x))): squared_error (summed over the "
                                       "input), or cross_entropy (needs sigmoid outputs)",
                                       choices=("squared_error", "cross_entropy"))
    kernel: str = setting("imq", "the MMD's kernel: imq (7 scales) or rbf", choices=KERNELS)
    kernel_bandwidth: float = setting(1.0, "sigma^2 in the kernel's scale C = 2 d sigma^2 (the prior's variance)",
                                      rule=POSITIVE)
    mmd_weight: float = setting(10.0, "lambda, the weight of the MMD between codes and N(0, I)", rule=NON_NEGATIVE,
                                member=True, label="λ")


def check(spec, s: WAESettings, grid: dict) -> None:
    require(s.reconstruction_loss != "cross_entropy" or s.output_activation == "sigmoid", "model.output_activation",
            s.output_activation, "sigmoid when model.reconstruction_loss=cross_entropy")


def build(spec, s: WAESettings, input_dim: int, image_shape, rngs: nnx.Rngs) -> WAE:
    encoder, decoder = backbone(spec, input_dim, image_shape, spec.code_size, rngs)
    return WAE(encoder, decoder, ACTIVATIONS[s.output_activation], spec.code_size)


def loss(spec, s: WAESettings, dataset_size: int | None = None):
    """c(x, g(f(x))) + lambda MMD(codes, prior draws); the terms are logged as train/cost and train/mmd."""

    def terms(params, x, recon, aux, hp, extra=None):
        if s.reconstruction_loss == "cross_entropy":
            cost = jnp.mean(bernoulli_nll(aux["decoder_out"], x))
        else:
            cost = jnp.mean(squared_error(recon, x))
        out = {"cost": cost, "mmd": mmd(aux["z"], aux["prior"], s.kernel, s.kernel_bandwidth)}
        return cost + hp["mmd_weight"] * out["mmd"], out

    return terms


WAE_FAMILY = register(Family(
    name="wae", settings=WAESettings, build=build, loss=loss, label="WAE", check=check, min_batch=2,
    needs_unit_interval=lambda s: ("model.reconstruction_loss=cross_entropy"
                                   if s.reconstruction_loss == "cross_entropy" else None)))


# ----------------------------------------------------------------------------- InfoVAE (MMD)
@dataclass(frozen=True)
class InfoSettings:
    alpha: float = setting(0.0, "alpha: the KL's weight is 1 - alpha", member=True, label="α",
                           rule=Rule(lambda v: v <= 1, "a number <= 1 (the KL's weight 1 - alpha must be >= 0)"))
    info_lambda: float = setting(1000.0, "lambda: the MMD's weight is alpha + lambda - 1", rule=NON_NEGATIVE,
                                 member=True, label="λ")
    kernel: str = setting("imq", "the MMD's kernel: imq (7 scales) or rbf", choices=KERNELS)
    kernel_bandwidth: float = setting(1.0, "sigma^2 in the kernel's scale C = 2 d sigma^2 (the prior's variance)",
                                      rule=POSITIVE)

    def check(self):
        """A negative MMD weight would push q(z) away from the prior (pythae's code defaults, alpha 0 and
        lambda 1e-3, give -0.999): refused."""
        require(self.alpha + self.info_lambda - 1 >= 0, "model.info_lambda", self.info_lambda,
                f"a number >= 1 - model.alpha = {1 - self.alpha} (the MMD's weight alpha + lambda - 1 must be >= 0)")


def info_vae(nll, mean, logvar, z, hp, prior_z=None, kernel="imq", kernel_bandwidth=1.0, **_):
    """nll + (1 - alpha) KL + (alpha + lambda - 1) MMD(z, prior draws) (Zhao et al. 2019, Eq. 7, MMD)."""
    terms = elbo_terms(nll, mean, logvar)
    terms["mmd"] = mmd(z, prior_z, kernel, kernel_bandwidth)
    alpha, lam = hp["alpha"], hp["info_lambda"]
    return terms["nll"] + (1 - alpha) * terms["kl"] + (alpha + lam - 1) * terms["mmd"], terms


register_objective("vae", Objective(name="info_vae", settings=InfoSettings, fn=info_vae, label="InfoVAE",
                                    strength="info_lambda", citation="Zhao et al. 2019, AAAI", min_batch=2))
