"""Every loss and regulariser against an independent numpy computation, called through jax.jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax import objectives as O

rng = np.random.default_rng(0)


def test_squared_error_sums_over_pixels():
    r, x = rng.uniform(size=(5, 7)), rng.uniform(size=(5, 7))
    np.testing.assert_allclose(jax.jit(O.squared_error)(r, x), ((r - x) ** 2).sum(1), rtol=1e-6)


def test_bernoulli_nll_matches_log_likelihood():
    logits, x = rng.normal(size=(4, 6)) * 3, (rng.uniform(size=(4, 6)) > 0.5).astype(float)
    p = 1 / (1 + np.exp(-logits))
    expected = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(1)
    np.testing.assert_allclose(jax.jit(O.bernoulli_nll)(logits, x), expected, rtol=1e-5)


def test_gaussian_nll_matches_density():
    mean, x, log_scale = rng.normal(size=(3, 5)), rng.normal(size=(3, 5)), 0.3
    sigma = np.exp(log_scale)
    expected = -(-0.5 * ((x - mean) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)).sum(1)
    np.testing.assert_allclose(jax.jit(O.gaussian_nll)(mean, log_scale, x), expected, rtol=1e-5)


def test_gaussian_kl_against_closed_form_per_dimension():
    mean, logvar = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    var = np.exp(logvar)
    expected = (0.5 * (var + mean**2 - 1 - np.log(var))).sum(1)
    np.testing.assert_allclose(jax.jit(O.gaussian_kl)(mean, logvar), expected, rtol=1e-5)
    assert float(O.gaussian_kl(jnp.zeros((1, 3)), jnp.zeros((1, 3)))[0]) == 0.0


def test_l1_penalty():
    h = rng.normal(size=(6, 4))
    np.testing.assert_allclose(jax.jit(O.l1_penalty)(h), np.abs(h).sum(1).mean(), rtol=1e-6)


def test_kl_sparsity_against_numpy_and_zero_at_target():
    h, rho = rng.uniform(0.01, 0.99, size=(8, 5)), 0.05
    rho_hat = h.mean(0)
    expected = (rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))).sum()
    np.testing.assert_allclose(jax.jit(O.kl_sparsity, static_argnums=1)(h, rho), expected, rtol=1e-5)
    assert abs(float(O.kl_sparsity(jnp.full((4, 3), rho), rho))) < 1e-6


def test_contractive_penalty_matches_finite_differences():
    w = rng.normal(size=(5, 3)).astype(np.float32)
    encode = lambda x: jnp.tanh(x @ w)
    x = rng.normal(size=(4, 5)).astype(np.float64)
    # Central differences in float64 numpy, independent of JAX autodiff.
    f = lambda v: np.tanh(v @ w.astype(np.float64))
    eps, fro = 1e-5, []
    for xi in x:
        jac = np.stack([(f(xi + eps * e) - f(xi - eps * e)) / (2 * eps) for e in np.eye(5)], axis=1)
        fro.append((jac**2).sum())
    got = jax.jit(lambda x: O.contractive_penalty(encode, x))(x.astype(np.float32))
    np.testing.assert_allclose(got, np.mean(fro), rtol=1e-4)


def test_contractive_penalty_forward_mode_for_overcomplete_codes():
    w = rng.normal(size=(2, 6)).astype(np.float32)  # code larger than input: jacfwd path
    x = rng.normal(size=(3, 2)).astype(np.float32)
    s = 1 - np.tanh(x @ w) ** 2
    expected = np.mean([((s[i][:, None] * w.T) ** 2).sum() for i in range(3)])
    got = jax.jit(lambda x: O.contractive_penalty(lambda v: jnp.tanh(v @ w), x))(x)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("kind", ["gaussian", "mask", "salt_pepper"])
def test_corruption_is_identity_at_zero_level(kind):
    x = rng.uniform(size=(10, 20)).astype(np.float32)
    out = jax.jit(O.corrupt, static_argnums=2)(x, jax.random.key(0), kind, 0.0)
    np.testing.assert_array_equal(out, x)


def test_mask_corruption_zeroes_the_requested_fraction():
    x = np.ones((200, 500), np.float32)
    out = np.asarray(jax.jit(O.corrupt, static_argnums=2)(x, jax.random.key(1), "mask", 0.3))
    assert abs((out == 0).mean() - 0.3) < 0.01
    assert set(np.unique(out)) <= {0.0, 1.0}


def test_salt_pepper_sets_corrupted_entries_to_zero_or_one():
    x = np.full((200, 500), 0.5, np.float32)
    out = np.asarray(O.corrupt(x, jax.random.key(2), "salt_pepper", 0.2))
    hit = out != 0.5
    assert abs(hit.mean() - 0.2) < 0.01
    assert abs((out[hit] == 1).mean() - 0.5) < 0.02 and set(np.unique(out[hit])) == {0.0, 1.0}


def test_gaussian_corruption_has_requested_std():
    x = np.zeros((300, 300), np.float32)
    out = np.asarray(O.corrupt(x, jax.random.key(3), "gaussian", 0.4))
    assert abs(out.std() - 0.4) < 0.01


def test_binarize_batches_draws_a_fresh_binary_target_every_step():
    from aejax.config import model_spec
    from aejax.models import init_params, make_loss, model_graph

    spec = model_spec(family="vae", hidden=(8,), code_size=2)
    graph = model_graph(spec, 6)
    params = init_params(spec, 6, None, jax.random.key(0))
    loss = jax.jit(make_loss(spec, graph, binarize_batches=True))
    hp = {"beta": 1.0, "noise_level": 0.0, "sparsity_weight": 0.0, "contractive_weight": 0.0}
    x = jnp.full((500, 6), 0.5)
    nll = [float(loss(params, x, jax.random.key(i), hp)[1]["nll"]) for i in range(3)]
    assert len(set(nll)) == 3        # each key: another draw of the targets
    grey = float(jax.jit(make_loss(spec, graph))(params, x, jax.random.key(0), hp)[1]["nll"])
    assert grey not in nll


def test_cross_entropy_reconstruction_loss_against_numpy():
    from aejax.config import model_spec
    from aejax.models import init_params, make_loss, model_graph
    from flax import nnx

    spec = model_spec(hidden=(5,), code_size=3, reconstruction_loss="cross_entropy")
    graph = model_graph(spec, 6)
    params = init_params(spec, 6, None, jax.random.key(0))
    x = np.random.default_rng(0).uniform(size=(4, 6)).astype(np.float32)
    hp = {"beta": 1.0, "noise_level": 0.0, "sparsity_weight": 0.0, "contractive_weight": 0.0}
    total, terms = jax.jit(make_loss(spec, graph))(params, x, jax.random.key(0), hp)
    r = np.asarray(nnx.merge(graph, params)(jnp.asarray(x))[0], np.float64)
    expected = -np.mean(np.sum(x * np.log(r) + (1 - x) * np.log(1 - r), axis=1))
    np.testing.assert_allclose(float(total), expected, rtol=1e-4)
    np.testing.assert_allclose(float(terms["sse"]), np.mean(np.sum((r - x) ** 2, axis=1)), rtol=1e-4)
