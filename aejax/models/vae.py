"""Variational autoencoder (Kingma & Welling 2014) with a diagonal Gaussian encoder.

The encoder network outputs `2 * latent` numbers: the posterior mean and log-variance.
The decoder network outputs Bernoulli logits or, for the Gaussian likelihood, the mean
(with one learned log standard deviation shared by all pixels).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


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

    def sample(self, key, n: int):
        """`n` samples of the mean image from the prior z ~ N(0, I)."""
        return self.generate(jax.random.normal(key, (n, self.latent)))

    def __call__(self, x, key):
        mean, logvar = self.posterior(x)
        z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape)
        out = self.decoder(z)
        recon = jax.nn.sigmoid(out) if self.likelihood == "bernoulli" else out
        return recon, {"code": mean, "mean": mean, "logvar": logvar, "z": z, "decoder_out": out}
