"""Shapes and parameter counts for every model family, counted by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from aejax.config import model_spec
from aejax.models import count_params, init_params, keep_top_k, model_graph


def dense(a, b):
    return a * b + b


def build(spec, dim=64, image_shape=(8, 8, 1), seed=0):
    params = init_params(spec, dim, image_shape, jax.random.key(seed))
    return nnx.merge(model_graph(spec, dim, image_shape), params), params


CASES = {
    "mlp": (model_spec(hidden=(256,), code_size=32), dense(64, 256) + dense(256, 32) + dense(32, 256) + dense(256, 64)),
    "mlp_deep": (model_spec(hidden=(100, 50), code_size=8),
                 dense(64, 100) + dense(100, 50) + dense(50, 8) + dense(8, 50) + dense(50, 100) + dense(100, 64)),
    "linear": (model_spec(hidden=(), code_size=5, activation="linear", output_activation="linear"),
               dense(64, 5) + dense(5, 64)),
    "tied": (model_spec(hidden=(256,), code_size=32, tied_weights=True), dense(64, 256) + dense(256, 32) + 256 + 64),
    "overcomplete": (model_spec(hidden=(), code_size=200), dense(64, 200) + dense(200, 64)),
    "conv": (model_spec(architecture="conv", channels=(16, 32), code_size=32),
             (9 * 16 + 16) + (9 * 16 * 32 + 32) + dense(2 * 2 * 32, 32)
             + dense(32, 2 * 2 * 32) + (9 * 32 * 16 + 16) + (9 * 16 + 1)),
    "vae": (model_spec(family="vae", hidden=(256,), code_size=32),
            dense(64, 256) + dense(256, 64) + dense(32, 256) + dense(256, 64)),
    "vae_gaussian": (model_spec(family="vae", hidden=(10,), code_size=2, likelihood="gaussian"),
                     dense(64, 10) + dense(10, 4) + dense(2, 10) + dense(10, 64) + 1),
}


@pytest.mark.parametrize("name", CASES)
def test_shapes_and_parameter_count(name):
    spec, expected = CASES[name]
    model, params = build(spec)
    assert count_params(params) == expected
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(7, 64)), jnp.float32)
    recon, aux = model(x, jax.random.key(1))
    assert recon.shape == (7, 64)
    assert model.encode(x).shape == aux["code"].shape == (7, spec.code_size)
    assert model.decode(aux["code"]).shape == (7, 64)


def test_tied_decoder_uses_transposed_encoder_kernel():
    spec = model_spec(hidden=(), code_size=4, tied_weights=True, output_activation="linear")
    model, params = build(spec)
    w = np.asarray(params["encoder"]["layers"][0]["kernel"])
    h = np.ones((1, 4), np.float32)
    np.testing.assert_allclose(model.decode(h), h @ w.T, rtol=1e-6)


def test_top_k_keeps_k_largest():
    h = jnp.array([[0.1, 0.9, -2.0, 0.5, 0.3]])
    np.testing.assert_allclose(keep_top_k(h, 2), [[0.0, 0.9, 0.0, 0.5, 0.0]])
    model, _ = build(model_spec(code_size=16, sparsity="topk", top_k=3))
    codes = model.encode(jnp.ones((5, 64)))
    assert (np.count_nonzero(np.asarray(codes), axis=1) == 3).all()


def test_init_scale_multiplies_kernels_not_biases():
    _, base = build(model_spec(hidden=(8,), code_size=4))
    _, scaled = build(model_spec(hidden=(8,), code_size=4, init_scale=0.1))
    k0, k1 = base["encoder"]["layers"][0]["kernel"], scaled["encoder"]["layers"][0]["kernel"]
    np.testing.assert_allclose(k1, 0.1 * k0, rtol=1e-6)


def test_vae_sample_and_stochastic_forward():
    model, _ = build(model_spec(family="vae", hidden=(16,), code_size=3))
    assert model.sample(jax.random.key(0), 5).shape == (5, 64)
    x = jnp.full((2, 64), 0.5)
    a, _ = model(x, jax.random.key(1))
    b, _ = model(x, jax.random.key(2))
    assert not np.allclose(a, b)  # the reparameterised sample depends on the key
    np.testing.assert_allclose(model.encode(x), model.posterior(x)[0])


def test_wrong_input_width_raises():
    model, _ = build(model_spec(hidden=(8,), code_size=4))
    with pytest.raises(Exception):
        model.encode(jnp.ones((3, 63)))
