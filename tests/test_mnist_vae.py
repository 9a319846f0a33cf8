"""The importance-sampled NLL against exact integration over a 1-D latent, and its bound order."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from aejax.config import model_spec
from aejax.models import init_params, model_graph
from aejax.studies.mnist_vae import iwae_nll


def tiny_vae(seed=0):
    spec = model_spec(family="vae", hidden=(8,), code_size=1, activation="tanh")
    return nnx.merge(model_graph(spec, 6), init_params(spec, 6, None, jax.random.key(seed)))


def exact_nll(model, x):
    """-log int p(x|z) N(z; 0, 1) dz by the trapezoid rule on a dense grid (numpy)."""
    z = np.linspace(-8, 8, 4001, dtype=np.float32)[:, None]
    logits = np.asarray(model.decoder(jnp.asarray(z)), np.float64)           # (G, D)
    log_px = (x[None] * logits[:, None] - np.logaddexp(0, logits)[:, None]).sum(-1)  # (G, N)
    log_joint = log_px - 0.5 * (z**2 + np.log(2 * np.pi))                  # (G, N)
    m = log_joint.max(0)
    return -(m + np.log(np.trapezoid(np.exp(log_joint - m), z[:, 0], axis=0)))


def test_iwae_matches_exact_integration_and_beats_the_elbo():
    model = tiny_vae()
    x = (np.random.default_rng(0).uniform(size=(7, 6)) > 0.5).astype(np.float32)
    exact = exact_nll(model, x)
    k5000 = np.asarray(jax.jit(lambda x: iwae_nll(model, x, jax.random.key(0), 5000, image_chunk=4))(x))
    k1 = np.asarray(jax.jit(lambda x: iwae_nll(model, x, jax.random.key(0), 250 * 8, image_chunk=4,
                                                 sample_chunk=250))(x))
    np.testing.assert_allclose(k5000, exact, atol=0.02)
    assert k1.shape == (7,)
    # Importance sampling never gives a value (in expectation) below the true NLL, and the
    # single-sample ELBO is looser than either.
    mean, logvar = model.posterior(jnp.asarray(x))
    elbo_terms = []
    for i in range(200):
        _, aux = model(jnp.asarray(x), jax.random.key(100 + i))
        from aejax.objectives import bernoulli_nll, gaussian_kl
        elbo_terms.append(np.asarray(bernoulli_nll(aux["decoder_out"], x) + gaussian_kl(aux["mean"], aux["logvar"])))
    neg_elbo = np.mean(elbo_terms, axis=0)
    assert (neg_elbo >= exact - 0.02).all() and neg_elbo.mean() > k5000.mean()
