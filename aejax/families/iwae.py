"""Importance weighted autoencoders (`model=iwae`; Burda, Grosse & Salakhutdinov 2016, ICLR, arXiv 1509.00519).

The VAE's network (`aejax.families.vae.VAE`: a diagonal Gaussian q(z|x), a Bernoulli or Gaussian p(x|z), the
prior N(0, I)) trained on the k-sample importance weighted bound (Burda et al., eq. 8):

    L_k(x) = log (1/k) sum_{j=1..k} w_j,   log w_j = log p(x|z_j) + log p(z_j) - log q(z_j|x),   z_j ~ q(z|x)

The loss is -L_k itself, averaged over the batch and logged as train/neg_iwae_bound. Its gradient through the
reparameterised z_j is the IWAE gradient (eq. 13: sum_j w~_j grad log w_j, w~ the normalised weights). pythae
minimises the surrogate -sum_j sg(w~_j) log w_j instead, which has that gradient but not that value, so its
logged loss is not the bound. k = 1 is the VAE's one-sample ELBO with the KL estimated by the sample (Burda et
al.'s VAE: Table 1's k=1 column is the same number for both). Also logged, from the first sample and as the VAE
logs them, so the curves compare: nll, kl (analytic) and neg_elbo = nll + kl.

k is a per-member hyperparameter (`population.grid.model.k=[1,5,50]`): every member draws the population's
largest k samples (a static number, `from_grid`), and a member's own k masks the others out of the
log-mean-exp. Sample j is drawn with its own key (fold_in(key, j)), so a member's first k samples do not depend
on how many the population draws: a member trains exactly as a run of its k alone. The price of one program:
every member pays for the largest k's decoder passes.

Test metrics (`eval_sums`, nats per image): neg_iwae_bound at the member's k; neg_iwae_bound_max with all the
population's samples (the same K for every member: an estimate of -log p(x), comparable across members);
neg_elbo. The importance-sampled NLL with K = 5000 is task mnist_vae's `iwae_nll` (`aejax.studies.mnist_vae`),
which reads this model as it reads the VAE.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
from flax import nnx

from aejax.families.registry import Family, register
from aejax.families.vae import LIKELIHOODS, VAE, elbo_terms, nll_of
from aejax.nets import backbone
from aejax.objectives import gaussian_kl
from aejax.settings import POSITIVE_INT, is_number, setting

LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class IWAESettings:
    likelihood: str = setting("bernoulli", "the decoder's distribution p(x|z)", choices=LIKELIHOODS)
    k: int = setting(10, "importance samples in the bound (1: the VAE's one-sample ELBO; pythae's default 10)",
                     rule=POSITIVE_INT, member=True, label="k")
    # The samples every member draws: the largest k of the population (`from_grid`); 0: k.
    draws: int = field(default=0, metadata={"derived": True})


class IWAE(VAE):
    """The VAE's network drawing `draws` posterior samples per example; `k` (the config's) is a member's
    default, replaced by its own (`k=` from `member_call`, or set by `aejax.models.member_model`)."""

    def __init__(self, encoder, decoder, latent: int, likelihood: str, k: int, draws: int):
        super().__init__(encoder, decoder, latent, likelihood)
        self.draws = draws or k
        self.k = min(k, self.draws)  # with a grid over k, model.k is no member's: any k up to the draws will do

    def encode(self, x, k=None):
        return self.posterior(x)[0]

    def samples(self, x, key):
        """`draws` samples z_j = mean + std * eps_j of q(z|x), eps_j from fold_in(key, j):
        (mean, logvar) `(B, K)`, eps and z `(S, B, K)`, the decoder's outputs `(S, B, D)`."""
        mean, logvar = self.posterior(x)
        eps = jax.vmap(lambda j: jax.random.normal(jax.random.fold_in(key, j), mean.shape))(jnp.arange(self.draws))
        z = mean + jnp.exp(0.5 * logvar) * eps
        out = self.decoder(z.reshape(-1, mean.shape[-1]))
        return mean, logvar, eps, z, out.reshape(self.draws, *mean.shape[:-1], *out.shape[1:])

    def __call__(self, x, key, k=None):
        mean, logvar, eps, z, out = self.samples(x, key)
        recon = jax.nn.sigmoid(out[0]) if self.likelihood == "bernoulli" else out[0]
        return recon, {"code": mean, "mean": mean, "logvar": logvar, "z": z[0], "decoder_out": out[0],
                       "eps": eps, "zs": z, "decoder_outs": out}


def log_weights(likelihood: str, aux: dict, x, params) -> jax.Array:
    """log w_j = log p(x|z_j) + log p(z_j) - log q(z_j|x) of every sample, `(S, B)` (log q from the
    standardised eps_j: z_j - mean = std * eps_j)."""
    log_px = -nll_of(likelihood, aux["decoder_outs"], x, params)
    log_pz = -0.5 * jnp.sum(aux["zs"] ** 2 + LOG_2PI, axis=-1)
    log_qz = -0.5 * jnp.sum(aux["eps"] ** 2 + LOG_2PI + aux["logvar"], axis=-1)
    return log_px + log_pz - log_qz


def neg_bound(log_w: jax.Array, k) -> jax.Array:
    """-log (1/k) sum_{j<k} w_j per example, `(B,)`, from log_w `(S, B)`; k (traced or not) <= S: the
    samples past a member's own k are masked out."""
    keep = jnp.arange(log_w.shape[0])[:, None] < k
    return -(jax.nn.logsumexp(jnp.where(keep, log_w, -jnp.inf), axis=0) - jnp.log(jnp.asarray(k, log_w.dtype)))


def build(spec, s: IWAESettings, input_dim: int, image_shape, rngs: nnx.Rngs) -> IWAE:
    encoder, decoder = backbone(spec, input_dim, image_shape, 2 * spec.code_size, rngs)
    return IWAE(encoder, decoder, spec.code_size, s.likelihood, s.k, s.draws)


def loss(spec, s: IWAESettings, dataset_size: int | None = None):
    def terms(params, x, recon, aux, hp, extra=None):
        out = elbo_terms(nll_of(s.likelihood, aux["decoder_out"], x, params), aux["mean"], aux["logvar"])
        out["neg_iwae_bound"] = jnp.mean(neg_bound(log_weights(s.likelihood, aux, x, params), hp["k"]))
        return out["neg_iwae_bound"], out

    return terms


def eval_sums(model, params, x, key, s: IWAESettings, k=None) -> dict:
    """Per image: the negative bound at the member's k and with all the samples drawn, and the negative
    ELBO (first sample, analytic KL, as the VAE's)."""
    _, aux = model(x, key)
    log_w = log_weights(s.likelihood, aux, x, params)
    return {"neg_iwae_bound": neg_bound(log_w, model.k if k is None else k),
            "neg_iwae_bound_max": neg_bound(log_w, log_w.shape[0]),
            "neg_elbo": nll_of(s.likelihood, aux["decoder_out"], x, params) + gaussian_kl(aux["mean"], aux["logvar"])}


def from_grid(s: IWAESettings, grid: dict) -> IWAESettings:
    """Every member draws the largest k of the grid (model.k when the grid does not vary it; values the
    checks will refuse, a string or a fraction, are left to them)."""
    ks = [v for v in grid.get("model.k", (s.k,)) if is_number(v)]
    return dataclasses.replace(s, draws=int(max(ks, default=1)))


IWAE_FAMILY = register(Family(
    name="iwae", settings=IWAESettings, build=build, loss=loss, label="IWAE", eval_sums=eval_sums,
    member_call=lambda s, hp: {"k": hp["k"]}, from_grid=from_grid, gaussian_latent=True,
    needs_unit_interval=lambda s: "model.likelihood=bernoulli" if s.likelihood == "bernoulli" else None))
