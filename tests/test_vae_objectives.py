"""The VAE objectives (aejax/families/vae.py and disentangling.py) against NumPy computations of the papers' formulas,
called through jax.jit; FactorVAE's critic; per-member weights under vmap."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax.config import model_spec as ModelSpec
from aejax.families import disentangling as V
from aejax.families import family
from aejax.families.vae import objective_for
from aejax.models import critic_for

OBJECTIVES = {name: objective.fn for name, objective in family("vae").objectives.items()}
VAE_OBJECTIVES = tuple(OBJECTIVES)

rng = np.random.default_rng(0)
B, K = 7, 3
NLL = rng.uniform(50, 60, size=B).astype(np.float32)
MEAN = rng.normal(size=(B, K)).astype(np.float32)
LOGVAR = rng.normal(scale=0.5, size=(B, K)).astype(np.float32) - 1.0
Z = (MEAN + np.exp(LOGVAR / 2) * rng.normal(size=(B, K))).astype(np.float32)
ARRAYS = tuple(map(np.float64, (NLL, MEAN, LOGVAR, Z)))


def np_kl(mean, logvar):
    return np.mean(0.5 * np.sum(mean**2 + np.exp(logvar) - logvar - 1, axis=1))


def call(objective, hp, **settings):
    """The objective through jax.jit on the fixed arrays."""
    return jax.jit(lambda *a: OBJECTIVES[objective](*a, hp, **settings))(NLL, MEAN, LOGVAR, Z)


def test_the_registry_holds_the_studys_six_objectives_each_with_its_preset():
    from conftest import REPO

    assert {"beta_vae", "beta_tc_vae", "factor_vae", "dip_vae_i", "dip_vae_ii", "annealed_vae"} <= set(VAE_OBJECTIVES)
    assert all((REPO / "conf" / "model" / f"{name}.yaml").exists() for name in VAE_OBJECTIVES if name != "beta_vae")


def test_beta_vae_is_nll_plus_beta_kl():
    nll, mean, logvar, _ = ARRAYS
    loss, terms = call("beta_vae", {"beta": 4.0})
    kl = np_kl(mean, logvar)
    np.testing.assert_allclose(float(loss), nll.mean() + 4 * kl, rtol=1e-6)
    np.testing.assert_allclose(float(terms["neg_elbo"]), nll.mean() + kl, rtol=1e-6)
    np.testing.assert_allclose(float(terms["kl"]), kl, rtol=1e-5)


def np_tc_mws(z, mean, logvar, n):
    """Chen et al. 2018, Eq. (S2): log q(z) ~ log (1/(N B)) sum_i q(z | x_i), and the same per
    dimension for prod_l q(z_l); TC = mean_j [log q(z_j) - sum_l log q(z_jl)]."""
    b, k = z.shape
    dens = np.empty((b, b, k))  # q(z_jl | x_i), written out from the Gaussian density
    for j in range(b):
        for i in range(b):
            var = np.exp(logvar[i])
            dens[j, i] = np.exp(-(z[j] - mean[i]) ** 2 / (2 * var)) / np.sqrt(2 * np.pi * var)
    log_qz = np.log(np.prod(dens, axis=2).sum(axis=1) / (n * b))
    log_qz_marginals = np.log(dens.sum(axis=1) / (n * b)).sum(axis=1)
    return np.mean(log_qz - log_qz_marginals)


def test_beta_tc_vae_minibatch_weighted_tc_with_and_without_the_constant():
    nll, mean, logvar, z = ARRAYS
    n = 737_280
    tc = np_tc_mws(z, mean, logvar, n)
    loss, terms = call("beta_tc_vae", {"beta": 6.0}, dataset_size=n)
    np.testing.assert_allclose(float(terms["tc"]), tc, rtol=1e-5)
    np.testing.assert_allclose(float(loss), nll.mean() + np_kl(mean, logvar) + 5 * tc, rtol=1e-5)
    # disentanglement_lib's value: the same estimate less (K - 1) log(B N).
    _, terms = call("beta_tc_vae", {"beta": 6.0})
    np.testing.assert_allclose(float(terms["tc"]), tc - (K - 1) * np.log(B * n), rtol=1e-5, atol=1e-4)


def test_tc_is_near_zero_for_a_factorised_batch_and_large_for_a_correlated_one():
    key = jax.random.key(0)
    u = jax.random.normal(key, (256, 1))
    logvar = jnp.full((256, 2), -6.0)
    independent = jax.random.normal(jax.random.fold_in(key, 1), (256, 2))
    corr = jnp.concatenate([u, u], 1)
    tc = lambda m: float(V.total_correlation(m, m, logvar, dataset_size=256) - np.log(256))  # B = N: no i.i.d. constant
    assert tc(corr) > tc(independent) + 1.0


def np_discriminator(params, z):
    h = np.asarray(z, np.float64)
    layers = [params[f"dense_{i}"] for i in range(len(params))]
    for i, layer in enumerate(layers):
        h = h @ np.asarray(layer["kernel"], np.float64) + np.asarray(layer["bias"], np.float64)
        if i < len(layers) - 1:
            h = np.where(h > 0, h, 0.2 * h)
    return h


def test_factor_vae_tc_is_the_discriminators_mean_logit_difference():
    nll, mean, logvar, z = ARRAYS
    params = V.init_discriminator(jax.random.key(1), K, hidden=(16, 16))
    params = jax.tree.map(lambda a: a + 0.1, params)  # nonzero biases too
    logits = np_discriminator(params, z)
    loss, terms = call("factor_vae", {"gamma": 30.0}, critic_params=params)
    tc = np.mean(logits[:, 0] - logits[:, 1])
    np.testing.assert_allclose(float(terms["tc"]), tc, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(float(loss), nll.mean() + np_kl(mean, logvar) + 30 * tc, rtol=1e-5)


def test_discriminator_loss_and_accuracy_against_numpy():
    params = V.init_discriminator(jax.random.key(2), K, hidden=(8,))
    z, permuted = ARRAYS[3], ARRAYS[1]
    loss, terms = jax.jit(V.discriminator_loss)(params, Z, MEAN)
    logits = np_discriminator(params, np.concatenate([z, permuted]))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    p = np.clip(p, 1e-6, 1 - 1e-6)
    expected = -(0.5 * np.log(p[:B, 0]).mean() + 0.5 * np.log(p[B:, 1]).mean())
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    acc = np.mean(np.concatenate([logits[:B].argmax(1) == 0, logits[B:].argmax(1) == 1]))
    assert float(terms["disc_acc"]) == pytest.approx(acc)


def np_dip(cov, lambda_od, lambda_d):
    off = cov - np.diag(np.diag(cov))
    od, d = (off**2).sum(), ((np.diag(cov) - 1) ** 2).sum()
    return od, d, lambda_od * od + lambda_d * d


@pytest.mark.parametrize("objective, lambda_d_factor", [("dip_vae_i", 10.0), ("dip_vae_ii", 1.0)])
def test_dip_vae_covariance_penalties(objective, lambda_d_factor):
    nll, mean, logvar, _ = ARRAYS
    cov = np.cov(mean, rowvar=False, bias=True)  # Kumar et al.: Cov_p(x)[mu(x)], over the batch
    if objective == "dip_vae_ii":
        cov = cov + np.diag(np.exp(logvar).mean(0))  # Cov_q(z) = E[Sigma(x)] + Cov[mu(x)]
    od, d, penalty = np_dip(cov, 5.0, lambda_d_factor * 5.0)
    loss, terms = call(objective, {"lambda_od": 5.0})  # lambda_d_factor: the objective's default
    np.testing.assert_allclose([float(terms["dip_od"]), float(terms["dip_d"])], [od, d], rtol=1e-4)
    np.testing.assert_allclose(float(loss), nll.mean() + np_kl(mean, logvar) + penalty, rtol=1e-5)
    loss3, _ = call(objective, {"lambda_od": 5.0}, lambda_d_factor=3.0)
    np.testing.assert_allclose(float(loss3), nll.mean() + np_kl(mean, logvar) + np_dip(cov, 5.0, 15.0)[2], rtol=1e-5)


@pytest.mark.parametrize("step, capacity", [(0, 0.0), (50, 10.0), (100, 20.0), (250, 20.0)])
def test_annealed_vae_capacity_rises_linearly_then_holds(step, capacity):
    nll, mean, logvar, _ = ARRAYS
    hp = {"gamma": 1000.0, "c_max": 20.0, "step": jnp.int32(step)}
    loss, terms = call("annealed_vae", hp, iteration_threshold=100)
    assert float(terms["capacity"]) == pytest.approx(capacity)
    np.testing.assert_allclose(float(loss), nll.mean() + 1000 * abs(np_kl(mean, logvar) - capacity), rtol=1e-5)


def test_permute_dims_shuffles_each_dimension_on_its_own():
    z = jnp.arange(64 * 4, dtype=jnp.float32).reshape(64, 4)
    out = np.asarray(jax.jit(V.permute_dims)(z, jax.random.key(3)))
    for col in range(4):
        assert sorted(out[:, col]) == list(np.asarray(z[:, col]))  # a permutation of its own column
    rows = (out - np.arange(4)) / 4  # the source row of every entry
    assert len({tuple(rows[:, c]) for c in range(4)}) == 4  # a different permutation per dimension
    assert not np.array_equal(out, z)


def test_critic_for_is_the_study_discriminator_and_none_elsewhere():
    assert critic_for(ModelSpec(family="vae")) is None
    assert critic_for(ModelSpec(family="vae", objective="dip_vae_i")) is None
    critic = critic_for(ModelSpec(family="vae", objective="factor_vae", code_size=10))
    params = critic.init(jax.random.key(0))
    sizes = [params[f"dense_{i}"]["kernel"].shape for i in range(len(params))]
    assert sizes == [(10, 1000)] + [(1000, 1000)] * 5 + [(1000, 2)]
    count = sum(a.size for a in jax.tree.leaves(params))
    assert count == (10 * 1000 + 1000) + 5 * (1000 * 1000 + 1000) + (1000 * 2 + 2)
    limit = np.sqrt(6 / (1000 + 1000))  # glorot uniform
    kernel = np.asarray(params["dense_3"]["kernel"])
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit


def test_critic_update_learns_to_tell_codes_from_permuted_codes():
    """Two perfectly correlated latents: their permuted copies break the correlation, which
    the study's discriminator learns to see within a few dozen Adam steps (lr 1e-4)."""
    critic = critic_for(ModelSpec(family="vae", objective="factor_vae", code_size=2))
    params = critic.init(jax.random.key(0))
    opt_state = critic.optimizer.init(params)

    def codes(key):
        u = jax.random.normal(key, (64, 1))
        return jnp.concatenate([u, u], axis=1)

    held_out, permute_key = codes(jax.random.key(999)), jax.random.key(998)
    evaluate = jax.jit(lambda p: V.discriminator_loss(p, held_out, V.permute_dims(held_out, permute_key)))
    before = evaluate(params)
    update = jax.jit(critic.update)
    for i in range(25):
        params, opt_state, terms = update(params, opt_state, codes(jax.random.key(i)), jax.random.key(100 + i))
    after = evaluate(params)
    assert set(terms) == {"disc_loss", "disc_acc"}
    assert float(after[0]) < float(before[0]) - 0.2
    assert float(after[1]["disc_acc"]) > 0.75


# ----------------------------------------------------------------------------- through make_loss
D = 6
WEIGHTS = {"beta_vae": "beta", "beta_tc_vae": "beta", "factor_vae": "gamma", "dip_vae_i": "lambda_od",
           "dip_vae_ii": "lambda_od", "annealed_vae": "c_max", "info_vae": "info_lambda"}


def tiny(objective):
    from aejax.models import init_params, model_graph

    extra = {"iteration_threshold": 10} if objective == "annealed_vae" else {}
    spec = ModelSpec(family="vae", hidden=(8,), code_size=3, objective=objective, **extra)
    return spec, model_graph(spec, D), init_params(spec, D, None, jax.random.key(0))


@pytest.mark.parametrize("objective", VAE_OBJECTIVES)
def test_a_population_hp_array_reaches_each_objective(objective):
    """Two members, identical but for their weight, in one vmapped call: different losses, each
    the loss of a single call with that member's scalar."""
    from aejax.models import make_loss

    spec, graph, params = tiny(objective)
    loss = make_loss(spec, graph)
    x = jnp.asarray(rng.uniform(size=(16, D)), jnp.float32)
    hp = {"beta": jnp.array([2.0, 2.0]), "gamma": jnp.array([3.0, 3.0]), "lambda_od": jnp.array([1.0, 1.0]),
          "c_max": jnp.array([5.0, 5.0]), "alpha": jnp.zeros(2), "info_lambda": jnp.array([9.0, 9.0]), "noise_level": jnp.zeros(2), "sparsity_weight": jnp.zeros(2),
          "contractive_weight": jnp.zeros(2), "step": jnp.array([4, 4], jnp.int32)}
    hp[WEIGHTS[objective]] = jnp.array([1.5, 40.0])
    critic = critic_for(spec)
    extra = (jax.tree.map(lambda a: jnp.stack([a, a]), critic.init(jax.random.key(5))),) if critic else ()
    batched = jax.jit(jax.vmap(loss, in_axes=(None, None, None, 0) + (0,) * len(extra)))
    total, aux = batched(params, x, jax.random.key(1), hp, *extra)
    terms = aux[0] if critic else aux
    assert float(total[0]) != float(total[1])
    for m in range(2):
        one = jax.tree.map(lambda a: a[m], (hp, *extra))
        single, _ = jax.jit(loss)(params, x, jax.random.key(1), *one)
        np.testing.assert_allclose(float(total[m]), float(single), rtol=1e-5)
    np.testing.assert_array_equal(terms["loss"], total)
    assert {"nll", "kl", "neg_elbo"} <= set(terms)


def test_factor_vae_loss_hands_out_codes_and_stops_the_critics_gradient():
    from aejax.models import make_loss

    spec, graph, params = tiny("factor_vae")
    loss = make_loss(spec, graph)
    critic_params = critic_for(spec).init(jax.random.key(5))
    x = jnp.asarray(rng.uniform(size=(16, D)), jnp.float32)
    hp = {"gamma": 10.0, "noise_level": 0.0}
    (_, (terms, z)), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 4), has_aux=True))(
        params, x, jax.random.key(1), hp, critic_params)
    assert z.shape == (16, 3) and "tc" in terms
    assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(grads[1]))  # the critic has its own update
    assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads[0]))


def test_objective_for_binds_the_static_settings():
    spec = ModelSpec(family="vae", objective="annealed_vae", iteration_threshold=10)
    loss, terms = objective_for(spec)(NLL, MEAN, LOGVAR, Z, {"gamma": 1.0, "c_max": 4.0, "step": 5})
    assert float(terms["capacity"]) == pytest.approx(2.0)
    spec = ModelSpec(family="vae", objective="dip_vae_ii", lambda_d_factor=0.0)
    _, terms = objective_for(spec)(NLL, MEAN, LOGVAR, Z, {"lambda_od": 1.0})
    loss, _ = objective_for(spec)(NLL, MEAN, LOGVAR, Z, {"lambda_od": 1.0})
    np.testing.assert_allclose(float(loss), float(terms["neg_elbo"] + terms["dip_od"]), rtol=1e-6)


@pytest.mark.parametrize("objective", [o for o in VAE_OBJECTIVES if o != "beta_vae"])
def test_each_preset_composes_to_its_objective(objective):
    from conftest import compose

    from aejax.config import parse_run

    spec = parse_run(compose([f"model={objective}", "logger=none"])).model
    assert (spec.family, spec.objective) == ("vae", objective)


def test_a_population_grid_of_gamma_is_per_member():
    from conftest import compose

    from aejax.config import parse_run
    from aejax.population import hyperparameter_arrays, members

    spec = parse_run(compose(["model=factor_vae", "logger=none", "population.seeds=2",
                              "+population.grid.model.gamma=[10,20,30]"]))
    hp = hyperparameter_arrays(members(spec))
    np.testing.assert_array_equal(hp["gamma"], [10, 20, 30] * 2)
