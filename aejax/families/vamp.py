"""The VAE with a VampPrior (`model.family=vamp`; Tomczak & Welling, "VAE with a VampPrior", AISTATS 2018).

The prior is a mixture of the variational posteriors of K learned pseudo-inputs u_k (the paper's VampPrior):

    p(z) = (1/K) sum_k q(z | u_k),   log p(z) = logsumexp_k log N(z; mu(u_k), sigma^2(u_k)) - log K

The pseudo-inputs go through the same encoder as the data at every step, so the prior moves with the
encoder. The KL term has no closed form; it is estimated with the code z ~ q(z|x) drawn for the
reconstruction (one sample, as the paper's code does in `models/VAE.py:calculate_loss`):

    loss = -log p(x|z) + beta * w(step) * (log q(z|x) - log p(z))

with w the linear KL warm-up (paper Sec. 5: "warm-up for 100 epochs"; its code's beta = epoch / warmup).
Logged: nll, kl (the single-sample estimate), neg_elbo = nll + kl, and kl_weight = beta * w.

How the paper's code (jmtomczak/vae_vampprior @bb6ff3e) parametrises the pseudo-inputs, followed here:
- u = hardtanh_{0,1}(W), W a (K, D) parameter (`models/Model.py:add_pseudoinputs`: a bias-free Linear
  on the identity, then Hardtanh(0, 1)): clipped to the data range, with no gradient where clipped.
  `model.pseudo_clip=false` leaves u unclipped (data outside [0, 1]).
- W ~ N(0.05, 0.01): `utils/load_data.py` sets pseudoinputs_mean = 0.05, std = 0.01 for both MNISTs,
  overriding `experiment.py`'s command-line default of -0.05 (which the hardtanh would clip to 0 with
  no gradient, so the pseudo-inputs would never move). The code's other option, initialising from
  training images, is not offered here (a family's parameters are built before the data is seen).
- `model.prior=standard` is the paper's baseline (`--prior standard`): N(0, I) with the same sampled
  KL and warm-up, no pseudo-inputs.

Where aejax differs: the warm-up ramps per step ((step + 1) / model.warmup_steps, then 1) where the
paper's ramps per epoch; pythae's VAMP anneals likewise per epoch (`linear_scheduling_steps`, default 0,
off) and sets beta = 1 at evaluation, as aejax's neg_elbo does (it never carries the weight). The prior
of the pseudo-inputs' encoder outputs is not clipped (the paper's encoder clips log sigma^2 to [-6, 2]
by its own network, not by the prior).

Sampling from the prior picks a component uniformly, then z ~ q(z|u_k) (the code's `generate_x`
draws the first N components instead). The per-latent KL of the figures is the KL of q(z_k|x) to the
mixture's marginal p(z_k) = (1/K) sum_k N(z_k; mu_k, sigma_k^2), by Gauss-Hermite quadrature: with a
mixture prior these do not add up to the total KL (the prior does not factorise over latents).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from aejax.families.registry import Family, register
from aejax.families.vae import LIKELIHOODS, LOG_2PI, VAE, nll_of
from aejax.nets import backbone
from aejax.settings import NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, require, setting

PRIORS = ("vampprior", "standard")
COMPONENT_CHUNK = 32   # mixture components summed at a time (mixture_log_density)
QUADRATURE_NODES = 32  # Gauss-Hermite nodes of the per-latent KL: exact for polynomials of degree 63


def log_normal_diag(z, mean, logvar):
    """log N(z; mean, diag(exp(logvar))) summed over the last axis (every argument broadcasts)."""
    return -0.5 * jnp.sum(LOG_2PI + logvar + (z - mean) ** 2 * jnp.exp(-logvar), axis=-1)


def mixture_log_density(z, means, logvars):
    """log (1/C) sum_c N(z; means_c, diag(exp(logvars_c))) for codes `(..., L)` and components `(C, L)`.

    The squared distance is summed as it is written, (z - mu)^2 / v: expanded into matrix products
    (z^2/v - 2 z mu/v + mu^2/v) its large terms cancel, and in float32 the error reached 0.14 nats at
    log v = -8 (far more under a GPU's TF32 matmuls), noise the NLL's log-mean-exp turns into a bias.
    Components go COMPONENT_CHUNK at a time with a running logsumexp, so memory stays `(N, chunk, L)`:
    the NLL evaluates 12,500 codes against 500 components at once."""
    c, latent = means.shape
    lead = z.shape[:-1]
    flat = z.reshape(-1, latent)
    chunk = min(COMPONENT_CHUNK, c)
    pad = (-c) % chunk   # padded components are finite (mean 0, log-variance 0) and masked out below
    means_p = jnp.pad(means, ((0, pad), (0, 0))).reshape(-1, chunk, latent)
    logvars_p = jnp.pad(logvars, ((0, pad), (0, 0))).reshape(-1, chunk, latent)
    valid = (jnp.arange(c + pad) < c).reshape(-1, chunk)

    def add_chunk(running, part):
        mu, lv, ok = part
        log_comp = jnp.where(ok, log_normal_diag(flat[:, None, :], mu, lv), -jnp.inf)   # (N, chunk)
        return jnp.logaddexp(running, jax.nn.logsumexp(log_comp, axis=-1)), None

    total, _ = jax.lax.scan(add_chunk, jnp.full(flat.shape[:1], -jnp.inf), (means_p, logvars_p, valid))
    return (total - math.log(c)).reshape(lead)


def marginal_kl(mean, logvar, means, logvars, nodes: int = QUADRATURE_NODES):
    """KL(N(mean_l, var_l) || (1/C) sum_c N(means_cl, vars_cl)) per latent l: `(..., L)` for posteriors
    `(..., L)` and components `(C, L)`, by Gauss-Hermite quadrature of E_q[log p_l(z)]."""
    t, w = np.polynomial.hermite.hermgauss(nodes)
    t, w = jnp.asarray(t, jnp.float32), jnp.asarray(w / math.sqrt(math.pi), jnp.float32)
    entropy = 0.5 * (LOG_2PI + 1.0 + logvar)                                 # (..., L)

    def one_latent(args):
        m, lv, mu_c, lv_c = args                       # (N,), (N,), (C,), (C,)
        z = m[:, None] + jnp.sqrt(2.0) * jnp.exp(0.5 * lv)[:, None] * t      # (N, nodes)
        log_c = -0.5 * (LOG_2PI + lv_c + (z[..., None] - mu_c) ** 2 * jnp.exp(-lv_c))  # (N, nodes, C)
        log_p = jax.nn.logsumexp(log_c, axis=-1) - math.log(mu_c.shape[0])
        return log_p @ w                                                     # (N,)

    lead = mean.shape[:-1]
    m, lv = mean.reshape(-1, mean.shape[-1]).T, logvar.reshape(-1, logvar.shape[-1]).T
    cross = jax.lax.map(one_latent, (m, lv, means.T, logvars.T)).T.reshape(*lead, mean.shape[-1])
    return -entropy - cross


class VampVAE(VAE):
    """A VAE whose prior is the VampPrior over `pseudo_inputs` learned inputs, or (pseudo_inputs=0, the
    paper's baseline) N(0, I); either way the KL is the sampled one (`__call__`'s aux["log_q"], ["log_p"])."""

    def __init__(self, encoder, decoder, latent: int, likelihood: str, input_dim: int, pseudo_inputs: int,
                 init_mean: float, init_std: float, clip: bool, rngs: nnx.Rngs):
        super().__init__(encoder, decoder, latent, likelihood)
        self.mixture = pseudo_inputs > 0
        self.clip = clip
        if self.mixture:
            self.pseudo = nnx.Param(init_mean + init_std * jax.random.normal(rngs.params(), (pseudo_inputs, input_dim)))

    def pseudo_inputs(self):
        """The K pseudo-inputs u_k `(K, D)`: hardtanh(W) into [0, 1] (the paper's code), or W itself."""
        w = self.pseudo[...]
        return jnp.clip(w, 0.0, 1.0) if self.clip else w

    def prior_components(self):
        """Means and log-variances `(K, latent)` of the mixture's components q(z | u_k)."""
        return self.posterior(self.pseudo_inputs())

    def log_prior(self, z):
        if not self.mixture:
            return super().log_prior(z)
        return mixture_log_density(z, *self.prior_components())

    def prior_sample(self, key, n: int):
        """`n` codes z ~ p(z) `(n, latent)`: a component k uniformly, then z ~ N(mu(u_k), sigma^2(u_k))
        (`sample` decodes them)."""
        if not self.mixture:
            return super().prior_sample(key, n)
        pick, noise = jax.random.split(key)
        means, logvars = self.prior_components()
        k = jax.random.randint(pick, (n,), 0, means.shape[0])
        return means[k] + jnp.exp(0.5 * logvars[k]) * jax.random.normal(noise, (n, self.latent))

    def prior_marginals(self):
        """Each latent's mean and standard deviation under the mixture (law of total variance)."""
        if not self.mixture:
            return super().prior_marginals()
        means, logvars = self.prior_components()
        loc = jnp.mean(means, axis=0)
        return loc, jnp.sqrt(jnp.mean(jnp.exp(logvars) + means**2, axis=0) - loc**2)

    def latent_kl(self, mean, logvar):
        if not self.mixture:
            return super().latent_kl(mean, logvar)
        return marginal_kl(mean, logvar, *self.prior_components())

    def __call__(self, x, key):
        recon, aux = super().__call__(x, key)
        # The sampled KL's two terms at the code the reconstruction used; the gradient flows through z,
        # the posterior's parameters and (log p) the pseudo-inputs and the encoder they pass through.
        aux["log_q"] = log_normal_diag(aux["z"], aux["mean"], aux["logvar"])
        aux["log_p"] = self.log_prior(aux["z"])
        return recon, aux


@dataclass(frozen=True)
class VampSettings:
    likelihood: str = setting("bernoulli", "the decoder's distribution p(x|z)", choices=LIKELIHOODS)
    prior: str = setting("vampprior", "vampprior: the mixture over the pseudo-inputs | standard: N(0, I), with "
                         "the same sampled KL and warm-up (the paper's baseline)", choices=PRIORS)
    pseudo_inputs: int = setting(500, "K, the learned pseudo-inputs (paper: 500)", rule=POSITIVE_INT)
    pseudo_init_mean: float = setting(0.05, "pseudo-inputs' initial values ~ N(mean, std) (the paper's code for MNIST)")
    pseudo_init_std: float = setting(0.01, "see pseudo_init_mean (> 0: equal pseudo-inputs would stay equal)",
                                     rule=POSITIVE)
    pseudo_clip: bool = setting(True, "pseudo-inputs = hardtanh(W) in [0, 1], the data's range (false: W itself)")
    beta: float = setting(1.0, "weight of the KL term once warmed up (1: the ELBO)", rule=NON_NEGATIVE, member=True,
                          label="beta")
    warmup_steps: int = setting(0, "steps over which the KL weight ramps linearly to beta (0: none; the paper: "
                                "100 epochs)", rule=NON_NEGATIVE_INT)


MIXTURE_ONLY = ("pseudo_inputs", "pseudo_init_mean", "pseudo_init_std", "pseudo_clip")


def check(spec, s: VampSettings, grid: dict) -> None:
    """With prior=standard the pseudo-input settings would do nothing: refused unless at their defaults."""
    if s.prior == "vampprior" and s.pseudo_clip:  # outside (0, 1) the hardtanh passes no gradient: frozen
        require(0 < s.pseudo_init_mean < 1, "model.pseudo_init_mean", s.pseudo_init_mean,
                "a number in (0, 1) when model.pseudo_clip=true (the hardtanh clips to [0, 1] with no gradient outside)")
    if s.prior == "standard":
        for f in fields(VampSettings):
            if f.name in MIXTURE_ONLY:
                value = getattr(s, f.name)
                require(value == f.default, f"model.{f.name}", value, f"{f.default} (its default) unless "
                        "model.prior=vampprior (prior=standard has no pseudo-inputs)")


def build(spec, s: VampSettings, input_dim: int, image_shape, rngs: nnx.Rngs) -> VampVAE:
    encoder, decoder = backbone(spec, input_dim, image_shape, 2 * spec.code_size, rngs)
    return VampVAE(encoder, decoder, spec.code_size, s.likelihood, input_dim,
                   s.pseudo_inputs if s.prior == "vampprior" else 0, s.pseudo_init_mean, s.pseudo_init_std,
                   s.pseudo_clip, rngs)


def kl_weight(step, beta, warmup_steps: int):
    """beta * min(1, (step + 1) / warmup_steps): the linear warm-up, step counted from 0."""
    if warmup_steps == 0:
        return beta
    return beta * jnp.minimum(1.0, (step + 1) / warmup_steps)


def loss(spec, s: VampSettings, dataset_size: int | None = None):
    def terms(params, x, recon, aux, hp, extra=None):
        nll = jnp.mean(nll_of(s.likelihood, aux["decoder_out"], x, params))
        kl = jnp.mean(aux["log_q"] - aux["log_p"])
        weight = kl_weight(hp["step"], hp["beta"], s.warmup_steps)
        return nll + weight * kl, {"nll": nll, "kl": kl, "neg_elbo": nll + kl, "kl_weight": weight}

    return terms


def eval_sums(model, params, x, key, s: VampSettings) -> dict:
    """The negative ELBO in nats, with the KL estimated by the one posterior sample per image."""
    _, aux = model(x, key)
    return {"neg_elbo": nll_of(s.likelihood, aux["decoder_out"], x, params) + aux["log_q"] - aux["log_p"]}


def report(spec, data, graph, params, hp, healthy, workdir):
    """The first healthy member's pseudo-inputs as an image grid (figures/pseudo_inputs.png), 10 a row."""
    s = spec.model.family_settings
    members = len(healthy)
    first = next((m for m in range(members) if healthy[m]), None)
    if s.prior != "vampprior" or first is None or not data.image_shape:
        return [{} for _ in range(members)], {}, None
    from aejax.figures import image_grid

    w = np.asarray(params["pseudo"][first])
    u = np.clip(w, 0.0, 1.0) if s.pseudo_clip else w
    shown = u[:50]
    path = image_grid([shown[i:i + 10] for i in range(0, len(shown), 10)], data.image_shape,
                      Path(workdir) / "figures" / "pseudo_inputs.png",
                      note=f"member {first}: the first {len(shown)} of K={len(u)} pseudo-inputs")
    return [{} for _ in range(members)], {"pseudo_inputs": path}, None


def needs_unit_interval(s: VampSettings):
    if s.likelihood == "bernoulli":
        return "model.likelihood=bernoulli"
    return "model.pseudo_clip=true" if s.prior == "vampprior" and s.pseudo_clip else None


VAMP = register(Family(name="vamp", settings=VampSettings, build=build, loss=loss, label="VampPrior", check=check,
                       eval_sums=eval_sums, gaussian_latent=True, report=report,
                       needs_unit_interval=needs_unit_interval))
