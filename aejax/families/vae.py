"""The variational autoencoder family (`model.family=vae`; Kingma & Welling 2014), with its objectives.

The encoder network outputs `2 * latent` numbers: the posterior mean and log-variance of a diagonal
Gaussian q(z|x). The decoder outputs Bernoulli logits or, for the Gaussian likelihood, the mean (with one
learned log standard deviation shared by all pixels). The prior is N(0, I): `log_prior(z)`, `sample`,
`prior_marginals()` (each latent's prior mean and standard deviation, for traversals) and `latent_kl`
(each latent's KL, for the KL-per-latent figure) say so, and a family with another prior (the VampPrior,
`aejax.families.vamp`) overrides them; everything that reads a prior (the importance-sampled NLL of
`aejax.studies.mnist_vae`, the samples, traversals and KL figures) goes through them.

Which loss trains it is `model.objective`, one `Objective` each: `beta_vae` here (beta = 1 is the VAE),
the disentangling ones of Locatello et al.'s study in `aejax.families.disentangling`. An objective is

    fn(nll, mean, logvar, z, hp, **settings) -> (loss, terms)

nll `(B,)` the reconstruction's negative log-likelihood per example; mean, logvar and z `(B, K)` the
posterior's mean and log-variance and the code sampled from it. `hp` holds the member's scalars (its
weights, arrays of shape `(E,)` across a population, and `hp["step"]`, the int32 index of the current
step counted from 0). `settings` are the objective's static settings, `dataset_size`, `prior_z` (`(B, K)`
draws from the prior N(0, I), for InfoVAE's MMD) and, for an objective with extra state, its parameters as
`critic_params`; each function names those it reads and ignores the rest. Every term is a batch mean, logged as `train/<name>`: nll, kl, neg_elbo = nll + kl,
and the objective's own.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from aejax.families.registry import Family, Objective, register, register_objective
from aejax.settings import NON_NEGATIVE, setting
from aejax.nets import backbone
from aejax.objectives import bernoulli_nll, gaussian_kl, gaussian_nll

LIKELIHOODS = ("bernoulli", "gaussian")
LOG_2PI = math.log(2 * math.pi)


class VAE(nnx.Module):
    def __init__(self, encoder: nnx.Module, decoder: nnx.Module, latent: int, likelihood: str):
        self.encoder = encoder
        self.decoder = decoder
        self.latent = latent
        self.likelihood = likelihood
        if likelihood == "gaussian":
            self.log_scale = nnx.Param(jnp.zeros(()))

    def posterior(self, x):
        """Mean and log-variance of q(z|x), each `(..., latent)`."""
        mean, logvar = jnp.split(self.encoder(x), 2, axis=-1)
        return mean, logvar

    def encode(self, x):
        """The code of a VAE is the posterior mean: deterministic, as for the other families."""
        return self.posterior(x)[0]

    def decode(self, z):
        """Mean of p(x|z) in data space."""
        out = self.decoder(z)
        return jax.nn.sigmoid(out) if self.likelihood == "bernoulli" else out

    generate = decode

    def prior_sample(self, key, n: int):
        """`n` codes z ~ p(z) = N(0, I), `(n, latent)`."""
        return jax.random.normal(key, (n, self.latent))

    def sample(self, key, n: int):
        """`n` samples of the mean image from the prior: decoded `prior_sample`s."""
        return self.generate(self.prior_sample(key, n))

    def log_prior(self, z):
        """log p(z) = log N(z; 0, I) for codes `(..., latent)`, summed over the latents: `(...)`."""
        return -0.5 * jnp.sum(z**2 + LOG_2PI, axis=-1)

    def prior_marginals(self):
        """Each latent's prior mean and standard deviation, `(latent,)` each: 0 and 1."""
        return jnp.zeros(self.latent), jnp.ones(self.latent)

    def latent_kl(self, mean, logvar):
        """KL(q(z_k|x) || p(z_k)) per row and latent, `(..., latent)`: (mean^2 + var - 1 - log var) / 2."""
        return 0.5 * (mean**2 + jnp.exp(logvar) - 1.0 - logvar)

    def __call__(self, x, key):
        mean, logvar = self.posterior(x)
        z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape)
        out = self.decoder(z)
        recon = jax.nn.sigmoid(out) if self.likelihood == "bernoulli" else out
        # Draws from the prior for an objective that compares q(z) with it (InfoVAE's MMD); a separate key
        # leaves z's draws as they were, and XLA drops them when the objective does not read them.
        prior_z = jax.random.normal(jax.random.fold_in(key, 1), mean.shape)
        return recon, {"code": mean, "mean": mean, "logvar": logvar, "z": z, "decoder_out": out, "prior_z": prior_z}


@dataclass(frozen=True)
class VAESettings:
    likelihood: str = setting("bernoulli", "the decoder's distribution p(x|z)", choices=LIKELIHOODS)
    objective: str = setting("beta_vae", "the training objective (each declares its own settings)",
                             choices=lambda: tuple(VAE_FAMILY.objectives))


def nll_of(likelihood: str, decoder_out, x, params):
    """-log p(x|z) per example, `(B,)`, from the decoder's output."""
    if likelihood == "bernoulli":
        return bernoulli_nll(decoder_out, x)
    return gaussian_nll(decoder_out, params["log_scale"], x)


def elbo_terms(nll: jax.Array, mean: jax.Array, logvar: jax.Array) -> dict:
    """Batch means of the reconstruction nll and the KL to N(0, I), and neg_elbo = nll + kl."""
    terms = {"nll": jnp.mean(nll), "kl": jnp.mean(gaussian_kl(mean, logvar))}
    terms["neg_elbo"] = terms["nll"] + terms["kl"]
    return terms


def objective_for(spec, dataset_size: int | None = None):
    """The model's objective with its static settings bound:
    `f(nll, mean, logvar, z, hp, critic_params=None) -> (loss, terms)`. A setting left null takes the
    objective's own default (DIP's lambda_d_factor)."""
    settings = {f.name: getattr(spec.objective_settings, f.name)
                for f in dataclasses.fields(spec.objective_settings) if not f.metadata.get("member")}
    settings = {k: v for k, v in settings.items() if v is not None}
    objective = VAE_FAMILY.objectives[spec.family_settings.objective]
    return functools.partial(objective.fn, dataset_size=dataset_size, **settings)


def build(spec, s: VAESettings, input_dim: int, image_shape, rngs: nnx.Rngs) -> VAE:
    encoder, decoder = backbone(spec, input_dim, image_shape, 2 * spec.code_size, rngs)
    return VAE(encoder, decoder, spec.code_size, s.likelihood)


def loss(spec, s: VAESettings, dataset_size: int | None = None):
    objective = objective_for(spec, dataset_size)

    def terms(params, x, recon, aux, hp, extra=None):
        nll = nll_of(s.likelihood, aux["decoder_out"], x, params)
        return objective(nll, aux["mean"], aux["logvar"], aux["z"], hp, critic_params=extra, prior_z=aux["prior_z"])

    return terms


def extra(spec, s: VAESettings):
    make = VAE_FAMILY.objectives[s.objective].extra
    return make(spec, spec.objective_settings) if make else None


def eval_sums(model, params, x, key, s: VAESettings) -> dict:
    """The negative ELBO in nats, one posterior sample per image."""
    _, aux = model(x, key)
    return {"neg_elbo": nll_of(s.likelihood, aux["decoder_out"], x, params) + gaussian_kl(aux["mean"], aux["logvar"])}


VAE_FAMILY = register(Family(name="vae", settings=VAESettings, build=build, loss=loss, label="VAE", extra=extra,
                             eval_sums=eval_sums, variant_setting="objective", gaussian_latent=True,
                             needs_unit_interval=lambda s: "model.likelihood=bernoulli" if s.likelihood == "bernoulli"
                             else None))


# ----------------------------------------------------------------------------- beta-VAE
@dataclass(frozen=True)
class BetaSettings:
    beta: float = setting(1.0, "weight of the KL term (1: the VAE)", rule=NON_NEGATIVE, member=True, label="beta")


def beta_vae(nll, mean, logvar, z, hp, **_):
    """nll + beta KL (Higgins et al. 2017); beta = 1 is the VAE."""
    terms = elbo_terms(nll, mean, logvar)
    return terms["nll"] + hp["beta"] * terms["kl"], terms


register_objective("vae", Objective(name="beta_vae", settings=BetaSettings, fn=beta_vae, label="β-VAE",
                                    strength="beta", citation="Higgins et al. 2017, ICLR"))
