"""The IWAE family (aejax/families/iwae.py): the bound against a NumPy computation, k = 1 against the VAE,
its gradient against the IWAE gradient, a member's own k in one program, the importance-sampled NLL of
task mnist_vae on it, and the refusals."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from aejax.config import model_spec, parse_run
from aejax.families import iwae
from aejax.models import init_params, make_loss, model_graph
from tests.conftest import compose
from tests.test_mnist_vae import exact_nll

D = 6


def tiny(likelihood="bernoulli", k=5, code_size=3, family="iwae", seed=0):
    settings = dict(k=k) if family == "iwae" else {}
    spec = model_spec(family=family, hidden=(8,), code_size=code_size, activation="tanh", likelihood=likelihood,
                      **settings)
    graph = model_graph(spec, D)
    params = init_params(spec, D, None, jax.random.key(seed))
    if likelihood == "gaussian":
        params["log_scale"] = jnp.float32(-0.3)  # away from 0, so a wrong scale would show
    return spec, graph, params


def batch(n=4, seed=0):
    return (np.random.default_rng(seed).uniform(size=(n, D)) > 0.5).astype(np.float32)


def numpy_bound(model, x, zs, k, likelihood, log_scale=0.0):
    """-log (1/k) sum_{j<k} p(x|z_j) p(z_j) / q(z_j|x), written from the densities in float64."""
    mean, logvar = (np.asarray(a, np.float64) for a in model.posterior(jnp.asarray(x)))
    zs = np.asarray(zs, np.float64)[:k]                                           # (k, B, K)
    out = np.asarray(model.decoder(jnp.asarray(zs.reshape(-1, zs.shape[-1]), jnp.float32)), np.float64)
    out = out.reshape(k, len(x), -1)
    if likelihood == "bernoulli":
        p = 1 / (1 + np.exp(-out))
        log_px = np.sum(x * np.log(p) + (1 - x) * np.log1p(-p), axis=-1)
    else:
        sd = np.exp(log_scale)
        log_px = np.sum(-0.5 * ((x - out) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi), axis=-1)
    log_pz = np.sum(-0.5 * zs**2 - 0.5 * np.log(2 * np.pi), axis=-1)
    var = np.exp(logvar)
    log_qz = np.sum(-0.5 * (zs - mean) ** 2 / var - 0.5 * np.log(2 * np.pi * var), axis=-1)
    log_w = log_px + log_pz - log_qz                                              # (k, B)
    top = log_w.max(0)
    return -(top + np.log(np.mean(np.exp(log_w - top), axis=0)))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_the_loss_is_the_bound_itself(likelihood):
    spec, graph, params = tiny(likelihood, k=7)
    model = nnx.merge(graph, params)
    x, key = batch(), jax.random.key(3)
    loss = make_loss(spec, graph)
    for k in (1, 3, 7):  # a member's own k masks the samples past it
        value, terms = jax.jit(loss)(params, jnp.asarray(x), key, {"k": jnp.float32(k), "noise_level": 0.0})
        # the samples the step drew: the engine splits the key once for input noise, then hands the model its half
        _, aux = model(jnp.asarray(x), jax.random.split(key)[1])
        expected = numpy_bound(model, x, aux["zs"], k, likelihood, float(params.get("log_scale", 0.0)))
        np.testing.assert_allclose(float(value), expected.mean(), rtol=2e-5)
        assert float(terms["neg_iwae_bound"]) == float(value)
    if likelihood == "bernoulli":  # in expectation the bound tightens with k (Burda et al., Theorem 1)
        over_keys = jax.jit(jax.vmap(lambda kk, k: loss(params, jnp.asarray(x), kk, {"k": k, "noise_level": 0.0})[0],
                                     in_axes=(0, None)))
        keys = jax.random.split(jax.random.key(9), 400)
        means = [float(jnp.mean(over_keys(keys, jnp.float32(k)))) for k in (1, 3, 7)]
        assert means[0] > means[1] > means[2]


def test_k1_is_the_vaes_negative_elbo_estimate():
    """With k = 1 the bound is log p(x|z) + log p(z) - log q(z|x) at one sample: the VAE's negative ELBO
    with the KL estimated by that sample. Over many samples its mean is the VAE's (analytic KL) estimate
    with the same network."""
    spec, graph, params = tiny(k=1)
    vae_spec, vae_graph, vae_params = tiny(family="vae")
    assert jax.tree.structure(params) == jax.tree.structure(vae_params)
    x = jnp.asarray(batch(8))
    hp = {"k": jnp.float32(1), "noise_level": 0.0, "beta": jnp.float32(1)}
    iwae_loss, vae_loss = make_loss(spec, graph), make_loss(vae_spec, vae_graph)
    keys = jax.random.split(jax.random.key(0), 2000)
    ours = jax.vmap(lambda k: iwae_loss(params, x, k, hp))(keys)
    theirs = jax.vmap(lambda k: vae_loss(params, x, k, hp))(keys)
    # at each sample: the bound = the one-sample nll + (log q - log p), whose mean is the analytic kl
    mc_kl = np.asarray(ours[0] - ours[1]["nll"])
    np.testing.assert_allclose(np.asarray(ours[1]["neg_elbo"]), np.asarray(ours[1]["nll"] + ours[1]["kl"]), rtol=1e-6)
    se = np.std(np.asarray(ours[0])) / np.sqrt(len(keys))
    assert abs(float(jnp.mean(ours[0]) - jnp.mean(theirs[0]))) < 4 * se + 1e-3
    assert abs(mc_kl.mean() - float(jnp.mean(ours[1]["kl"]))) < 4 * np.std(mc_kl) / np.sqrt(len(keys))


def test_its_gradient_is_the_iwae_gradient():
    """d(-L_k) = -sum_j w~_j d log w_j (Burda et al. eq. 13): pythae's surrogate, written here, has that
    gradient (and another value)."""
    spec, graph, params = tiny(k=5)
    x, key = jnp.asarray(batch()), jax.random.key(1)
    hp = {"k": jnp.float32(5), "noise_level": 0.0}

    def surrogate(p):
        model = nnx.merge(graph, p)
        _, aux = model(x, jax.random.split(key)[1])
        log_w = iwae.log_weights("bernoulli", aux, x, p)
        return -jnp.mean(jnp.sum(jax.lax.stop_gradient(jax.nn.softmax(log_w, axis=0)) * log_w, axis=0))

    ours = jax.grad(lambda p: make_loss(spec, graph)(p, x, key, hp)[0])(params)
    theirs = jax.grad(surrogate)(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), ours, theirs)


def test_a_members_own_k_trains_as_a_run_of_that_k_alone():
    """Members of k=[1,5] draw 5 samples each and mask; each ends where a run of its k alone (drawing only
    k) does, after a few Adam steps from the same start on the same batches and keys."""
    import optax

    from aejax.model_spec import parse_model

    x = jnp.asarray(batch(16, seed=2))
    start = None

    def trained(ks, grid):
        nonlocal start
        spec = parse_model(dict(family="iwae", hidden=[8], code_size=3, k=ks[0]), grid)
        graph = model_graph(spec, D)
        start = start or init_params(spec, D, None, jax.random.key(0))
        loss, optimizer = make_loss(spec, graph), optax.adam(1e-2)

        def step(carry, i):
            params, opt_state, k = carry
            (value, _), grads = jax.value_and_grad(loss, has_aux=True)(
                params, jax.lax.dynamic_slice_in_dim(x, 4 * i, 4), jax.random.fold_in(jax.random.key(1), i), {"k": k, "noise_level": 0.0})
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state, k), value

        def run(k):
            (params, _, _), values = jax.lax.scan(step, (start, optimizer.init(start), k), jnp.arange(4))
            return params, values

        return jax.jit(jax.vmap(run))(jnp.asarray(ks, jnp.float32))

    params, values = trained([1, 5], {"model.k": (1, 5)})
    for i, k in enumerate((1, 5)):
        own, own_values = trained([k], {})
        np.testing.assert_allclose(values[i], own_values[0], rtol=1e-5)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b[0], atol=2e-6), params, own)
    assert not np.allclose(values[0], values[1])  # the two members did train differently


def test_eval_metrics_use_the_members_own_k():
    from aejax.evaluate import evaluate_population

    spec = parse_run(compose(["model=iwae", "model.hidden=[8]", "model.code_size=3", "+population.grid.model.k=[1,4]"]))
    assert spec.model.family_settings.draws == 4
    graph = model_graph(spec.model, D)
    one = init_params(spec.model, D, None, jax.random.key(0))
    params = jax.tree.map(lambda a: jnp.stack([a, a]), one)
    x = jnp.asarray(batch(20))
    keys = jax.vmap(jax.random.key)(jnp.array([0, 0]))
    test = evaluate_population(spec.model, graph, params, x, keys, {"k": jnp.array([1.0, 4.0]),
                                                                     "noise_level": jnp.zeros(2)})
    # Same network, same samples: the k=4 member's bound is the tighter, and both share the bound at the
    # population's largest k (the estimate comparable across members).
    assert test["neg_iwae_bound"][1] < test["neg_iwae_bound"][0]
    np.testing.assert_allclose(test["neg_iwae_bound_max"][0], test["neg_iwae_bound_max"][1], rtol=1e-6)
    np.testing.assert_allclose(test["neg_iwae_bound_max"][1], test["neg_iwae_bound"][1], rtol=1e-6)


def test_the_importance_sampled_nll_of_task_mnist_vae_reads_an_iwae():
    from aejax.studies.mnist_vae import iwae_nll

    _, graph, params = tiny(k=5, code_size=1)
    model = nnx.merge(graph, params)
    x = batch(7)
    nll = np.asarray(jax.jit(lambda x: iwae_nll(model, x, jax.random.key(0), 5000, image_chunk=4))(x))
    np.testing.assert_allclose(nll, exact_nll(model, x), atol=0.02)


@pytest.mark.parametrize("args,says", [
    ("model=iwae model.k=0", "model.k=0 is not allowed; expected an integer > 0"),
    ("model=iwae model.k=2.5", "model.k=2.5 is not allowed; expected an integer"),
    ("model=iwae +population.grid.model.k=[5,0]", "population.grid.model.k=0 is not allowed; expected an integer > 0"),
    ("model=iwae +population.grid.model.k=[5,1.5]", "population.grid.model.k=1.5 is not allowed; expected integers"),
    ("model=iwae model.likelihood=poisson", "model.likelihood='poisson' is not allowed; expected one of bernoulli, "
                                            "gaussian"),
    ("model=vae +population.grid.model.k=[1,5]", "population.grid.model.k is not allowed; expected no grid over "
                                                 "model.k unless model.family=iwae or sae"),
])
def test_bad_input_is_one_line_exit_2(args, says, tmp_path, capsys, monkeypatch):
    from aejax.cli import precheck

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        precheck([*args.split(), "logger=none", f"hydra.run.dir={tmp_path}/run"])
    assert exit_.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 1 and says in errors[0], errors


def test_the_reproductions_report_reads_a_run(tmp_path, monkeypatch, capsys):
    """experiments/iwae_mnist: the experiment shrunk to a few steps (on the digits), then its report (NLL with 250 samples on
    10 test images, the curve from the run's validation rows, the ordering)."""
    import json

    from aejax.run import train_and_evaluate
    from tests.conftest import run_report

    config = compose(["experiment=iwae_mnist", "data=digits", "model.hidden=[16]", "model.code_size=4",
                      "trainer.epochs=2", "data.train_size=40", "data.test_size=20", "data.val_fraction=0.05",
                      "trainer.batch_size=20", "logger=none", "trainer.progress=off"])
    train_and_evaluate(config, tmp_path / "run")
    status, out, err = run_report("iwae_mnist", [str(tmp_path / "run"), "--samples", "250", "--test-images", "10",
                                                 "--out", str(tmp_path / "report")], monkeypatch, capsys)
    assert status == 0, err
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    assert [m["k"] for m in results["members"]] == [1, 5, 50]
    assert all(np.isfinite(m["test_nll"]) for m in results["members"])
    assert [len(c["epoch"]) for c in results["curve"].values()] == [2, 2, 2]
    assert (tmp_path / "report" / "nll_against_epochs.png").exists() and "| IWAE k=50 |" in out
