"""The VampPrior family (aejax/families/vamp.py) against direct NumPy computations: the prior's
log-density, the sampled KL and the warmed-up loss, sampling from the mixture, its marginals and the
per-latent KL; and its refusals."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy.special import logsumexp

from aejax.config import model_spec
from aejax.families.vamp import marginal_kl
from aejax.models import init_params, make_loss, model_graph

D, L, K = 6, 3, 5


def tiny(seed=0, **settings):
    """A tiny VampPrior VAE whose pseudo-inputs are spread over [-0.2, 1.2] (some clipped)."""
    if settings.get("prior") != "standard":
        settings["pseudo_inputs"] = K
    spec = model_spec(family="vamp", hidden=(8,), code_size=L, activation="tanh", **settings)
    params = init_params(spec, D, None, jax.random.key(seed))
    if "pseudo" in params:
        params["pseudo"] = jnp.asarray(np.random.default_rng(seed).uniform(-0.2, 1.2, (K, D)), jnp.float32)
    return spec, params, nnx.merge(model_graph(spec, D), params)


def np_encoder(params, x):
    """The MLP encoder in NumPy: tanh hidden layer, affine output split into mean and log-variance."""
    layers = params["encoder"]["layers"]
    h = np.tanh(x @ np.asarray(layers[0]["kernel"]) + np.asarray(layers[0]["bias"]))
    out = h @ np.asarray(layers[1]["kernel"]) + np.asarray(layers[1]["bias"])
    return out[:, :L].astype(np.float64), out[:, L:].astype(np.float64)


def np_log_normal(z, mean, logvar):
    return -0.5 * np.sum(np.log(2 * np.pi) + logvar + (z - mean) ** 2 / np.exp(logvar), axis=-1)


def np_log_prior(params, z):
    """log (1/K) sum_k N(z; mu(u_k), sigma^2(u_k)), u_k = clip(W_k, 0, 1), by scipy's logsumexp."""
    mu, logvar = np_encoder(params, np.clip(np.asarray(params["pseudo"]), 0, 1))
    per = np.stack([np_log_normal(z, mu[k], logvar[k]) for k in range(K)], axis=-1)
    return logsumexp(per, axis=-1) - np.log(K)


def test_log_prior_and_sampled_kl_and_warmed_up_loss_match_numpy():
    spec, params, model = tiny(warmup_steps=10)
    rng = np.random.default_rng(1)
    z = rng.normal(size=(7, L)) * 2
    np.testing.assert_allclose(np.asarray(jax.jit(model.log_prior)(jnp.asarray(z, jnp.float32))),
                               np_log_prior(params, z), rtol=1e-5, atol=1e-4)
    x = (rng.uniform(size=(4, D)) > 0.5).astype(np.float32)
    call = jax.jit(lambda x, key: model(x, key)[1])
    aux = call(jnp.asarray(x), jax.random.key(3))
    mean, logvar = np_encoder(params, x)
    zs = np.asarray(aux["z"], np.float64)
    kl = np_log_normal(zs, mean, logvar) - np_log_prior(params, zs)   # the single-sample KL estimate
    np.testing.assert_allclose(np.asarray(aux["log_q"] - aux["log_p"]), kl, rtol=1e-4, atol=1e-4)
    loss = jax.jit(make_loss(spec, model_graph(spec, D)))
    for step, weight in ((0, 0.1), (4, 0.5), (9, 1.0), (50, 1.0)):
        total, terms = loss(params, jnp.asarray(x), jax.random.key(0), {"beta": jnp.float32(2.0), "step": step,
                                                                         "noise_level": 0.0})
        aux = call(jnp.asarray(x), jax.random.split(jax.random.key(0))[1])  # the loss's own model key
        zs, logits = np.asarray(aux["z"], np.float64), np.asarray(aux["decoder_out"], np.float64)
        nll = np.mean(np.sum(np.logaddexp(0, logits) - x * logits, axis=-1))
        kl = np.mean(np_log_normal(zs, mean, logvar) - np_log_prior(params, zs))
        np.testing.assert_allclose(float(terms["kl"]), kl, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(float(terms["neg_elbo"]), nll + kl, rtol=1e-4)
        np.testing.assert_allclose(float(total), nll + 2.0 * weight * kl, rtol=1e-4)


def test_the_pseudo_inputs_learn_where_the_hardtanh_passes_them():
    spec, params, _ = tiny()
    x = (np.random.default_rng(2).uniform(size=(16, D)) > 0.5).astype(np.float32)
    loss = make_loss(spec, model_graph(spec, D))
    grads = jax.jit(jax.grad(lambda p: loss(p, jnp.asarray(x), jax.random.key(0), {"beta": 1.0, "step": 0,
                                                                            "noise_level": 0.0})[0]))(params)
    g, w = np.asarray(grads["pseudo"]), np.asarray(params["pseudo"])
    inside = (w > 0) & (w < 1)
    assert (g[~inside] == 0).all() and (np.abs(g[inside]) > 0).mean() > 0.9


def test_samples_come_from_the_mixture_and_its_marginals():
    _, params, model = tiny()
    mu, logvar = np_encoder(params, np.clip(np.asarray(params["pseudo"]), 0, 1))
    loc = mu.mean(0)
    var = (np.exp(logvar) + mu**2).mean(0) - loc**2                  # the mixture's per-latent variance
    got_loc, got_scale = (np.asarray(a) for a in model.prior_marginals())
    np.testing.assert_allclose(got_loc, loc, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_scale, np.sqrt(var), rtol=1e-4)
    z = np.asarray(jax.jit(model.prior_sample, static_argnums=1)(jax.random.key(0), 40000), np.float64)
    np.testing.assert_allclose(z.mean(0), loc, atol=4 * np.sqrt(var / 40000).max())
    np.testing.assert_allclose(z.var(0), var, rtol=0.05)
    # Each draw is near one component: its best component's log-density beats N(0, I)'s fit by a margin
    # a standard normal draw would not show (the components are narrower than N(0, I)).
    assert np.mean(np_log_prior(params, z[:2000])) > np.mean(np_log_normal(z[:2000], 0.0, 0.0)) + 0.5
    assert model.sample(jax.random.key(1), 5).shape == (5, D)


def test_per_latent_kl_to_the_mixture_marginal_matches_integration():
    rng = np.random.default_rng(3)
    mean, logvar = rng.normal(size=(3, 2)), rng.normal(scale=0.5, size=(3, 2))
    means, logvars = rng.normal(size=(4, 2)), rng.normal(scale=0.5, size=(4, 2))
    grid = np.linspace(-15, 15, 60001)
    expected = np.zeros((3, 2))
    for n in range(3):
        for l in range(2):
            log_q = -0.5 * (np.log(2 * np.pi) + logvar[n, l] + (grid - mean[n, l]) ** 2 / np.exp(logvar[n, l]))
            comps = -0.5 * (np.log(2 * np.pi) + logvars[:, l, None] + (grid - means[:, l, None]) ** 2
                            / np.exp(logvars[:, l, None]))
            log_p = logsumexp(comps, axis=0) - np.log(4)
            expected[n, l] = np.trapezoid(np.exp(log_q) * (log_q - log_p), grid)
    f = jax.jit(marginal_kl)
    got = np.asarray(f(*(jnp.asarray(a, jnp.float32) for a in (mean, logvar, means, logvars))))
    np.testing.assert_allclose(got, expected, atol=2e-3)


def test_the_standard_prior_keeps_the_vae_formulas():
    _, params, model = tiny(prior="standard")
    assert "pseudo" not in params
    z = np.random.default_rng(4).normal(size=(5, L))
    np.testing.assert_allclose(np.asarray(model.log_prior(jnp.asarray(z, jnp.float32))), np_log_normal(z, 0.0, 0.0),
                               rtol=1e-5)
    mean, logvar = np.random.default_rng(5).normal(size=(2, 4, L))
    np.testing.assert_allclose(np.asarray(model.latent_kl(jnp.asarray(mean), jnp.asarray(logvar))),
                               0.5 * (mean**2 + np.exp(logvar) - 1 - logvar), rtol=1e-5)


BAD = {
    "model=vamp model.pseudo_inputs=0": "model.pseudo_inputs=0 is not allowed; expected an integer > 0",
    "model=vamp model.pseudo_inputs=2.5": "model.pseudo_inputs=2.5 is not allowed; expected an integer",
    "model=vamp model.prior=standard model.pseudo_inputs=50":
        "model.pseudo_inputs=50 is not allowed; expected 500 (its default) unless model.prior=vampprior",
    "model=vamp model.prior=mog": "model.prior='mog' is not allowed; expected one of vampprior, standard",
    "model=vamp model.likelihood=poisson": "model.likelihood='poisson' is not allowed; expected one of bernoulli, gaussian",
    "model=vamp model.warmup_steps=-1": "model.warmup_steps=-1 is not allowed; expected an integer >= 0",
    "model=vamp model.pseudo_init_std=-0.1": "model.pseudo_init_std=-0.1 is not allowed; expected a number > 0",
    "model=vamp +population.grid.model.beta=[1,-1]": "population.grid.model.beta=-1.0 is not allowed",
}


@pytest.mark.parametrize("args", BAD)
def test_bad_input_is_one_line_exit_2(args, tmp_path, capsys, monkeypatch):
    from aejax.cli import precheck

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        precheck([*args.split(), "logger=none", f"hydra.run.dir={tmp_path}/run"])
    assert exit_.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 1 and BAD[args] in errors[0], errors
