"""WAE-MMD and InfoVAE (aejax/families/wae.py): the MMD estimator against a NumPy computation written out
pair by pair, its unbiasedness, both losses through the engine's `make_loss` against direct computations,
sampling from the prior, and the refusals (one line, exit 2)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax.config import model_spec
from aejax.families.wae import SCALES, mmd
from aejax.models import init_params, make_loss, model_graph

rng = np.random.default_rng(0)


def np_kernel(x, y, kernel, sigma2):
    """k(x, y) for one pair, from Tolstikhin et al. (imq, summed over the scales) and pythae (rbf)."""
    d = len(x)
    dist2 = float(np.sum((x - y) ** 2))
    if kernel == "imq":
        return sum(2 * d * sigma2 * s / (2 * d * sigma2 * s + dist2) for s in SCALES)
    return np.exp(-dist2 / (2 * d * sigma2))


def np_mmd(z, p, kernel, sigma2):
    """The unbiased estimate: the within-sample sums over i != j over n(n-1), the cross sum over n^2."""
    n = len(z)
    within = lambda a: sum(np_kernel(a[i], a[j], kernel, sigma2) for i in range(n) for j in range(n) if i != j)
    cross = sum(np_kernel(z[i], p[j], kernel, sigma2) for i in range(n) for j in range(n))
    return within(z) / (n * (n - 1)) + within(p) / (n * (n - 1)) - 2 * cross / n**2


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
@pytest.mark.parametrize("sigma2", [1.0, 0.3])
def test_mmd_matches_numpy_pair_by_pair(kernel, sigma2):
    z = rng.normal(loc=0.5, size=(9, 4))
    p = rng.normal(size=(9, 4))
    got = jax.jit(lambda a, b: mmd(a, b, kernel, sigma2))(jnp.asarray(z, jnp.float32), jnp.asarray(p, jnp.float32))
    np.testing.assert_allclose(float(got), np_mmd(z, p, kernel, sigma2), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_mmd_is_unbiased_near_zero_for_one_distribution_and_positive_for_two(kernel):
    """Mean over many draws of two samples of N(0, I): ~0 (within 4 standard errors), while the biased
    estimate (diagonals kept, divided by n^2) sits clearly above 0; samples of two distributions: > 0."""
    draws, n, d = 4000, 6, 3
    keys = jax.random.split(jax.random.key(1), 2)
    z = jax.random.normal(keys[0], (draws, n, d))
    p = jax.random.normal(keys[1], (draws, n, d))
    values = np.asarray(jax.jit(jax.vmap(lambda a, b: mmd(a, b, kernel)))(z, p))
    standard_error = values.std() / np.sqrt(draws)
    assert abs(values.mean()) < 4 * standard_error, (values.mean(), standard_error)
    biased = np.mean([np_mmd(np.asarray(z[i]), np.asarray(p[i]), kernel, 1.0) * (n - 1) / n
                      + 2 * np_kernel(np.zeros(d), np.zeros(d), kernel, 1.0) / n**2 for i in range(200)])
    assert biased > 10 * standard_error
    shifted = np.asarray(jax.jit(jax.vmap(lambda a, b: mmd(a + 1.0, b, kernel)))(z, p))
    assert shifted.mean() > 20 * standard_error


def test_mmd_of_one_example_is_refused():
    with pytest.raises(ValueError, match="size >= 2"):
        mmd(jnp.zeros((1, 3)), jnp.zeros((1, 3)))


def member_loss(spec, x, hp):
    """The engine's training loss for one member, and the model's outputs it saw (same key)."""
    from flax import nnx

    graph = model_graph(spec, x.shape[1])
    params = init_params(spec, x.shape[1], None, jax.random.key(0))
    key = jax.random.key(3)
    hp = {"noise_level": 0.0, "contractive_weight": 0.0, "step": 0, **hp}
    loss, terms = jax.jit(make_loss(spec, graph))(params, x, key, hp)
    model = nnx.merge(graph, params)
    _, model_key = jax.random.split(key)   # make_loss's split: (noise key, model key)
    return float(loss), terms, model, model_key, params


@pytest.mark.parametrize("reconstruction", ["squared_error", "cross_entropy"])
def test_wae_loss_is_cost_plus_lambda_mmd_of_codes_and_prior_draws(reconstruction):
    spec = model_spec(family="wae", hidden=[16], code_size=3, reconstruction_loss=reconstruction)
    x = jnp.asarray(rng.uniform(size=(8, 12)), jnp.float32)
    loss, terms, model, model_key, _ = member_loss(spec, x, {"mmd_weight": 7.0})
    z = np.asarray(model.encode(x), np.float64)
    prior = np.asarray(jax.random.normal(model_key, z.shape), np.float64)
    logits = np.asarray(model.decode_logits(model.encode(x)), np.float64)
    recon = 1 / (1 + np.exp(-logits))
    xn = np.asarray(x, np.float64)
    if reconstruction == "squared_error":
        cost = np.mean(np.sum((recon - xn) ** 2, axis=1))
    else:
        cost = np.mean(-np.sum(xn * np.log(recon) + (1 - xn) * np.log(1 - recon), axis=1))
    expected_mmd = np_mmd(z, prior, "imq", 1.0)
    np.testing.assert_allclose(float(terms["mmd"]), expected_mmd, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(loss, cost + 7.0 * expected_mmd, rtol=1e-4)


def test_info_vae_loss_weights_kl_by_1_minus_alpha_and_mmd_by_alpha_plus_lambda_minus_1():
    spec = model_spec(family="vae", objective="info_vae", hidden=[16], code_size=3, kernel="rbf", kernel_bandwidth=0.5)
    x = jnp.asarray(rng.uniform(size=(8, 12)) > 0.5, jnp.float32)
    alpha, lam = 0.25, 40.0
    loss, terms, model, model_key, _ = member_loss(spec, x, {"alpha": alpha, "info_lambda": lam})
    mean, logvar = (np.asarray(a, np.float64) for a in model.posterior(x))
    z = mean + np.exp(0.5 * logvar) * np.asarray(jax.random.normal(model_key, mean.shape), np.float64)
    prior = np.asarray(jax.random.normal(jax.random.fold_in(model_key, 1), mean.shape), np.float64)
    logits = np.asarray(model.decoder(jnp.asarray(z, jnp.float32)), np.float64)
    xn = np.asarray(x, np.float64)
    nll = np.mean(np.sum(np.logaddexp(0, logits) - xn * logits, axis=1))
    kl = np.mean(0.5 * np.sum(mean**2 + np.exp(logvar) - logvar - 1, axis=1))
    expected_mmd = np_mmd(z, prior, "rbf", 0.5)
    np.testing.assert_allclose(float(terms["mmd"]), expected_mmd, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(loss, nll + (1 - alpha) * kl + (alpha + lam - 1) * expected_mmd, rtol=1e-4)


def test_info_vae_at_alpha_0_lambda_1_is_the_vae():
    spec = model_spec(family="vae", objective="info_vae", hidden=[16], code_size=3)
    x = jnp.asarray(rng.uniform(size=(8, 12)) > 0.5, jnp.float32)
    loss, terms, *_ = member_loss(spec, x, {"alpha": 0.0, "info_lambda": 1.0})
    np.testing.assert_allclose(loss, float(terms["neg_elbo"]), rtol=1e-6)


def test_wae_samples_decode_draws_of_the_prior():
    spec = model_spec(family="wae", hidden=[16], code_size=3)
    from flax import nnx

    graph = model_graph(spec, 12)
    model = nnx.merge(graph, init_params(spec, 12, None, jax.random.key(0)))
    samples = np.asarray(model.sample(jax.random.key(5), 4))
    z = jax.random.normal(jax.random.key(5), (4, 3))
    np.testing.assert_allclose(samples, np.asarray(model.decode(z)), rtol=1e-6)
    assert samples.shape == (4, 12) and samples.min() >= 0 and samples.max() <= 1


BAD_INPUTS = {
    "model=wae model.kernel=gauss": "model.kernel='gauss' is not allowed; expected one of imq, rbf",
    "model=info_vae model.kernel=laplace": "model.kernel='laplace' is not allowed; expected one of imq, rbf",
    "model=wae model.kernel_bandwidth=0": "model.kernel_bandwidth=0.0 is not allowed; expected a number > 0",
    "model=info_vae model.kernel_bandwidth=-1": "model.kernel_bandwidth=-1.0 is not allowed; expected a number > 0",
    "model=wae model.mmd_weight=-1": "model.mmd_weight=-1.0 is not allowed; expected a number >= 0",
    "model=wae +population.grid.model.mmd_weight=[1,-1]":
        "population.grid.model.mmd_weight=-1.0 is not allowed; expected a number >= 0",
    "model=info_vae model.info_lambda=-1": "model.info_lambda=-1.0 is not allowed; expected a number >= 0",
    "model=info_vae model.alpha=1.5": "model.alpha=1.5 is not allowed; expected a number <= 1",
    "model=info_vae model.info_lambda=0.5": "model.info_lambda=0.5 is not allowed; expected a number >= 1 - model.alpha",
    "model=info_vae +population.grid.model.info_lambda=[1000,0.1]": "population.grid.model.info_lambda=0.1",
    # Each member's pair: alpha 1 with lambda 0.5 is fine, alpha 0 with lambda 0.5 is not (the grid is a product).
    "model=info_vae model.alpha=1 +population.grid.model.alpha=[0,1] +population.grid.model.info_lambda=[0.5,1000]":
        "population.grid.model.info_lambda=0.5 is not allowed; expected a number >= 1 - model.alpha = 1.0",
    "model=wae trainer.batch_size=1":
        "trainer.batch_size=1 is not allowed; expected an integer >= 2 with model.family=wae",
    "model=info_vae trainer.batch_size=1":
        "trainer.batch_size=1 is not allowed; expected an integer >= 2 with model.objective=info_vae",
    "model=wae model.reconstruction_loss=cross_entropy model.output_activation=linear":
        "model.output_activation='linear' is not allowed; expected sigmoid when model.reconstruction_loss=cross_entropy",
    "model=vae model.mmd_weight=3": "model.mmd_weight=3.0 is not allowed; expected 10.0 unless model.family=wae",
}


@pytest.mark.parametrize("args", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2(args, tmp_path, capsys, monkeypatch):
    from aejax.cli import precheck

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        precheck([*args.split(), "data=digits", "logger=none", f"hydra.run.dir={tmp_path}/run"])
    assert exit_.value.code == 2
    errors = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert len(errors) == 1 and errors[0].startswith("aejax-train: error: "), errors
    assert BAD_INPUTS[args] in errors[0]
