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


def test_iwae_uses_the_vampprior_and_matches_exact_integration():
    """The same check for a VampPrior model: the prior is the mixture over its pseudo-inputs' posteriors,
    written here in NumPy from the encoder's weights (a N(0, 1) prior would miss by nats)."""
    spec = model_spec(family="vamp", hidden=(8,), code_size=1, activation="tanh", pseudo_inputs=3)
    params = init_params(spec, 6, None, jax.random.key(1))
    params["pseudo"] = jnp.asarray(np.random.default_rng(1).uniform(0, 1, (3, 6)), jnp.float32)
    model = nnx.merge(model_graph(spec, 6), params)
    layers = params["encoder"]["layers"]
    h = np.tanh(np.asarray(params["pseudo"]) @ np.asarray(layers[0]["kernel"]) + np.asarray(layers[0]["bias"]))
    mu, logvar = (h @ np.asarray(layers[1]["kernel"]) + np.asarray(layers[1]["bias"])).astype(np.float64).T
    z = np.linspace(-8, 8, 4001)
    comps = -0.5 * (np.log(2 * np.pi) + logvar[:, None] + (z - mu[:, None]) ** 2 / np.exp(logvar[:, None]))
    log_prior = np.log(np.mean(np.exp(comps), axis=0))                        # (G,)
    x = (np.random.default_rng(0).uniform(size=(7, 6)) > 0.5).astype(np.float32)
    logits = np.asarray(model.decoder(jnp.asarray(z[:, None], jnp.float32)), np.float64)
    log_joint = (x[None] * logits[:, None] - np.logaddexp(0, logits)[:, None]).sum(-1) + log_prior[:, None]
    m = log_joint.max(0)
    exact = -(m + np.log(np.trapezoid(np.exp(log_joint - m), z, axis=0)))
    # 25,000 samples: a mixture prior makes the weights of some images heavier-tailed than N(0, 1) does
    # (at 5,000, one of these seven images still varies by 0.04 nats between keys).
    got = np.asarray(jax.jit(lambda x: iwae_nll(model, x, jax.random.key(0), 25000, image_chunk=4))(x))
    np.testing.assert_allclose(got, exact, atol=0.02)
    standard = exact_nll(model, x)  # the same decoder under N(0, 1): what the old estimator targeted
    assert np.abs(standard - exact).max() > 0.1
