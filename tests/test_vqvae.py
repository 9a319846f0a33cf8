"""VQ-VAE (aejax/families/vqvae.py) against independent NumPy computations: the nearest code, the
straight-through gradient, the loss terms, sonnet's zero-debiased EMA with Laplace smoothing, perplexity,
restarts of exactly the dead codes; and its refusals."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from aejax.config import model_spec
from aejax.families.vqvae import (VQVAESettings, after_update, nearest_code, perplexity, straight_through)
from aejax.models import build_model, init_params, make_loss, model_graph


def test_nearest_code_is_the_brute_force_argmin():
    rng = np.random.default_rng(0)
    z, codebook = rng.normal(size=(3, 5, 4)).astype(np.float32), rng.normal(size=(7, 4)).astype(np.float32)
    expected = np.array([[np.argmin([np.sum((v - e) ** 2) for e in codebook]) for v in row] for row in z])
    np.testing.assert_array_equal(jax.jit(nearest_code)(z, codebook), expected)


def test_straight_through_is_z_q_forward_and_the_identity_backward():
    z_e, z_q = jnp.array([0.3, -1.0, 2.0]), jnp.array([0.5, -0.5, 1.0])
    w = jnp.array([1.0, 2.0, 3.0])
    g = jax.grad(lambda z: jnp.sum(w * straight_through(z, z_q) ** 2))(z_e)
    np.testing.assert_allclose(straight_through(z_e, z_q), z_q)
    np.testing.assert_allclose(g, 2 * w * z_q)      # the decoder's gradient at z_q, passed to z_e unchanged


def test_the_encoder_gets_the_decoders_gradient_at_the_quantised_code():
    spec = model_spec(family="vqvae", architecture="mlp", hidden=[8], code_size=6, embedding_dim=2, codebook_size=5)
    graph = model_graph(spec, 10)
    params = init_params(spec, 10, None, jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (4, 10))

    def recon_loss(p):
        recon, _ = nnx.merge(graph, p)(x)
        return jnp.sum((recon - x) ** 2)

    grads = jax.jit(jax.grad(recon_loss))(params)

    @jax.jit
    def pulled_back(p):
        """Independently: the gradient of the reconstruction with respect to the decoder's input at z_q,
        pulled back through the encoder alone."""
        model = nnx.merge(graph, p)
        g_code = jax.grad(lambda h: jnp.sum((model.decode(h) - x) ** 2))(model.encode(x))
        _, pull = jax.vjp(lambda q: nnx.merge(graph, q).encode_continuous(x).reshape(4, -1), p)
        return pull(g_code)[0]

    expected = pulled_back(params)
    for a, b in zip(jax.tree.leaves(grads["encoder"]), jax.tree.leaves(expected["encoder"])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert np.abs(jax.tree.leaves(grads["encoder"])[0]).sum() > 0
    np.testing.assert_array_equal(grads["codebook"], 0)  # the reconstruction never moves the codes


@pytest.mark.parametrize("update", ["loss", "ema"])
def test_loss_terms_and_which_parameters_they_move(update):
    spec = model_spec(family="vqvae", architecture="mlp", hidden=[8], code_size=6, embedding_dim=2, codebook_size=5,
                      codebook_update=update)
    graph = model_graph(spec, 10)
    params = init_params(spec, 10, None, jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (4, 10))
    beta = 0.4
    loss = make_loss(spec, graph)
    (total, (terms, aux)), grads = jax.value_and_grad(loss, has_aux=True)(
        params, x, jax.random.key(2), {"commitment_weight": beta, "decay": 0.9, "noise_level": 0.0, "step": 0})
    model = nnx.merge(graph, params)
    z_e = np.asarray(model.encode_continuous(x))
    codebook = np.asarray(params["codebook"])
    idx = np.argmin(((z_e[:, :, None, :] - codebook[None, None]) ** 2).sum(-1), axis=-1)
    quant = np.sum((z_e - codebook[idx]) ** 2) / 4          # per image, batch mean
    sse = np.sum((np.asarray(model.decode(codebook[idx].reshape(4, -1))) - np.asarray(x)) ** 2) / 4
    np.testing.assert_allclose(terms["commitment"], quant, rtol=1e-5)
    np.testing.assert_allclose(total, sse + beta * quant + (quant if update == "loss" else 0), rtol=1e-5)
    assert ("codebook" in terms) == (update == "loss")
    moved = np.abs(np.asarray(grads["codebook"])).sum(axis=1) > 0
    # Codebook loss: exactly the chosen codes get a gradient, 2 (e - z_e) summed over their vectors / B.
    if update == "loss":
        np.testing.assert_array_equal(moved, np.isin(np.arange(5), idx))
        expected = np.zeros_like(codebook)
        np.add.at(expected, idx.reshape(-1), 2 * (codebook[idx] - z_e).reshape(-1, 2) / 4)
        np.testing.assert_allclose(grads["codebook"], expected, rtol=1e-4, atol=1e-6)
    else:
        assert not moved.any()
    np.testing.assert_allclose(terms["codes_in_use"], len(np.unique(idx)))


def test_perplexity_is_exp_entropy_of_code_frequencies():
    idx = np.array([[0, 0, 1], [2, 0, 1]])
    p = np.array([3, 2, 1]) / 6
    np.testing.assert_allclose(jax.jit(perplexity, static_argnums=1)(idx, 8), np.exp(-np.sum(p * np.log(p))), rtol=1e-6)
    np.testing.assert_allclose(perplexity(jnp.arange(16), 16), 16, rtol=1e-5)
    np.testing.assert_allclose(perplexity(jnp.zeros(9, int), 4), 1, rtol=1e-6)


def _state(k, d, rng, ema=True):
    state = {"codebook": rng.normal(size=(k, d)).astype(np.float32), "steps_unused": np.zeros(k, np.float32)}
    if ema:
        state |= {"ema_count": np.zeros(k, np.float32), "ema_sum": np.zeros((k, d), np.float32)}
    return state


def test_ema_update_is_sonnets_debiased_average_with_laplace_smoothing():
    k, d, decay, eps = 4, 3, 0.9, 1e-5
    s = VQVAESettings(codebook_size=k, embedding_dim=d, codebook_update="ema")
    rng = np.random.default_rng(3)
    state = _state(k, d, rng)
    hidden_n, hidden_dw = np.zeros(k), np.zeros((k, d))  # sonnet's ExponentialMovingAverage, written out
    for t in range(1, 5):
        z = rng.normal(size=(2, 5, d)).astype(np.float32)
        idx = rng.integers(0, 3, size=(2, 5))  # code 3 never chosen
        onehot = np.eye(k)[idx.reshape(-1)]
        hidden_n = decay * hidden_n + (1 - decay) * onehot.sum(0)
        hidden_dw = decay * hidden_dw + (1 - decay) * onehot.T @ z.reshape(-1, d)
        n_avg, dw_avg = hidden_n / (1 - decay**t), hidden_dw / (1 - decay**t)
        n = n_avg.sum()
        smoothed = (n_avg + eps) / (n + k * eps) * n
        state = {key: np.asarray(v) for key, v in jax.jit(after_update, static_argnums=4)(
            state, state, {"z_e": z, "indices": idx}, {"decay": decay, "step": t - 1}, s).items()}
        np.testing.assert_allclose(state["ema_count"], n_avg, rtol=1e-5)
        np.testing.assert_allclose(state["codebook"], dw_avg / smoothed[:, None], rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(state["steps_unused"], [0, 0, 0, 4])
    np.testing.assert_array_equal(state["codebook"][3], 0)  # unchosen from the first step: at the origin (sonnet)


@pytest.mark.parametrize("update", ["loss", "ema"])
def test_a_restart_replaces_exactly_the_dead_codes(update):
    k, d = 6, 2
    s = VQVAESettings(codebook_size=k, embedding_dim=d, codebook_update=update, restarts=True, dead_window=3,
                      dead_count=0.5 if update == "ema" else 0.0)
    rng = np.random.default_rng(4)
    old = _state(k, d, rng, ema=update == "ema")
    old["steps_unused"] = np.array([2, 2, 0, 1, 5, 0], np.float32)
    if update == "ema":
        old["ema_count"] = np.array([3, 3, 3, 3, 3, 0.1], np.float32)   # code 5 falls below dead_count
        old["ema_sum"] = old["codebook"] * old["ema_count"][:, None]
    z = rng.normal(size=(1, 4, d)).astype(np.float32)
    idx = np.array([[1, 2, 2, 5]])         # codes 0, 3, 4 unused this step: 0 -> 3 steps (dead), 3 -> 2, 4 -> 6 (dead)
    pick = np.array([3, 1, 0, 2, 1, 0])
    new = dict(old, codebook=old["codebook"] + 0.01)   # as if the optimiser had moved the codes
    out = {key: np.asarray(v) for key, v in after_update(new, old, {"z_e": z, "indices": idx, "restart_pick": pick},
                                                         {"decay": 0.5, "step": 10}, s).items()}
    # Dead: 0 (unused 3 steps) and 4 (6 steps). Code 5 had an EMA count below dead_count, but it is used in this
    # batch: 0.5 * 0.1 + 0.5 * 1 (about, the debiased decay at step 10) = 0.55 >= 0.5, alive.
    dead = [0, 4]
    flat = z.reshape(-1, d)
    for i in range(k):
        if i in dead:
            np.testing.assert_allclose(out["codebook"][i], flat[pick[i]])
            assert out["steps_unused"][i] == 0
        elif update == "loss":
            np.testing.assert_allclose(out["codebook"][i], new["codebook"][i])
    np.testing.assert_array_equal(out["steps_unused"], [0, 0, 0, 2, 0, 0])
    if update == "ema":
        np.testing.assert_allclose(out["ema_count"][dead], 1.0)
        np.testing.assert_allclose(out["ema_sum"][dead], flat[pick[dead]])


def test_ema_count_below_dead_count_is_restarted():
    k, d = 3, 2
    s = VQVAESettings(codebook_size=k, embedding_dim=d, codebook_update="ema", restarts=True, dead_window=100,
                      dead_count=2.0)
    rng = np.random.default_rng(5)
    old = _state(k, d, rng)
    old["ema_count"] = np.array([10, 10, 2.5], np.float32)
    old["ema_sum"] = old["codebook"] * old["ema_count"][:, None]
    z = rng.normal(size=(1, 4, d)).astype(np.float32)
    out = after_update(dict(old), old, {"z_e": z, "indices": np.array([[0, 1, 0, 1]]), "restart_pick": np.array([0, 1, 3])},
                       {"decay": 0.5, "step": 50}, s)
    # code 2: count 0.5 * 2.5 = 1.25 < 2, restarted with count max(dead_count, 1) = 2 and the batch's 4th encoding
    np.testing.assert_allclose(out["ema_count"], [0.5 * 10 + 0.5 * 2, 0.5 * 10 + 0.5 * 2, 2.0], rtol=1e-6)
    np.testing.assert_allclose(out["codebook"][2], z[0, 3], rtol=1e-6)
    np.testing.assert_allclose(out["ema_sum"][2], 2.0 * z[0, 3], rtol=1e-6)


def test_conv_positions_are_the_feature_map_and_bits_per_image():
    spec = model_spec(family="vqvae", architecture="conv", channels=[4, 8], kernel_sizes=[4], codebook_size=32,
                      embedding_dim=3)
    model = nnx.eval_shape(lambda: build_model(spec, 784, (28, 28, 1), key=jax.random.key(0)))
    x = jax.ShapeDtypeStruct((2, 784), jnp.float32)
    assert nnx.eval_shape(lambda m, xx: m.indices(xx), model, x).shape == (2, 49)
    assert nnx.eval_shape(lambda m, xx: m.encode(xx), model, x).shape == (2, 49 * 3)
    assert model.positions * math.log2(32) == 245


BAD = {
    "model.codebook_size=0": "model.codebook_size=0 is not allowed; expected an integer > 0",
    "model.embedding_dim=0": "model.embedding_dim=0 is not allowed; expected an integer > 0",
    "model.commitment_weight=-0.1": "model.commitment_weight=-0.1 is not allowed; expected a number >= 0",
    "model.decay=1": "model.decay=1.0 is not allowed; expected a number in [0, 1)",
    "model.decay=-0.5": "model.decay=-0.5 is not allowed; expected a number in [0, 1)",
    "model.codebook_update=ema +population.grid.model.decay=[0.9,1.0]":
        "population.grid.model.decay=1.0 is not allowed; expected a number in [0, 1)",
    "+population.grid.model.commitment_weight=[0.25,-1]": "population.grid.model.commitment_weight=-1.0 is not allowed",
    "model.codebook_update=kmeans": "model.codebook_update='kmeans' is not allowed; expected one of loss, ema",
    "+population.grid.model.decay=[0.9,0.99]": "population.grid.model.decay=0.9 is not allowed; expected 0.99 (its "
                                              "default) unless model.codebook_update=ema",
    "+population.grid.model.decay=[0.99]": "model.decay=[0.99] is not allowed; expected no values unless "
                                          "model.codebook_update=ema",
    "model.architecture=mlp model.code_size=30": "model.code_size=30 is not allowed; expected a multiple of "
                                                 "model.embedding_dim=16",
    "model.dense=[64]": "model.dense=[64] is not allowed; expected [] for model.family=vqvae",
    "model.dead_count=1": "model.dead_count=1.0 is not allowed; expected 0 unless model.codebook_update=ema",
}


@pytest.mark.parametrize("args", BAD)
def test_bad_input_is_one_line_exit_2(args, tmp_path, capsys, monkeypatch):
    from aejax.cli import precheck

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        precheck(["model=vqvae", *args.split(), "logger=none", f"hydra.run.dir={tmp_path}/run"])
    assert exit_.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 1 and BAD[args] in errors[0], errors


def test_a_population_trains_each_member_with_its_own_decay(tmp_path):
    """Two EMA members, decay 0 and 0.9, two steps: the first member's counts are its last batch's
    (integers), the second's a debiased mix of both batches; summary.json has each member's code use."""
    from conftest import TINY, compose, trained

    summary, params = trained(compose(TINY + [
        "model=vqvae", "model.architecture=mlp", "model.hidden=[16]", "model.code_size=8", "model.embedding_dim=4",
        "model.codebook_size=8", "model.codebook_update=ema", "+population.grid.model.decay=[0.0,0.9]",
        "data.train_size=128", "trainer.epochs=1", "data.val_fraction=0"]), tmp_path)
    counts = np.asarray(params["ema_count"])
    assert counts.shape == (2, 8)
    np.testing.assert_allclose(counts.sum(axis=1), 64 * 2, rtol=1e-5)   # B x P assignments, whatever the decay
    np.testing.assert_allclose(counts[0], np.round(counts[0]), atol=1e-5)
    assert not np.allclose(counts[1], np.round(counts[1]), atol=1e-3)
    for member in summary["members"]:
        assert member["test"]["bits_per_image"] == 2 * 3 and 1 <= member["test"]["perplexity"] <= 8
        assert member["test"]["codes_in_use"] + member["test"]["dead_codes"] == 8
