"""The sparse autoencoder family (aejax/families/sae.py): each architecture's definition against a direct
computation, per-member hyperparameters in one program, the conventions that change results, streamed
activations and the refusals."""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from aejax.config import ConfigError, model_spec, parse_run
from aejax.families import sae
from aejax.models import build_model, init_params
from aejax.run import train_and_evaluate
from tests.conftest import REPO, compose, trained

D, W = 8, 16


def model(kind: str, **settings):
    settings = {"k": 4, **settings} if kind in sae.WITH_K else settings
    spec = model_spec(family="sae", hidden=[], code_size=W, sae=kind, **settings)
    return spec, build_model(spec, D, key=jax.random.key(0))


def test_initialisation_conventions():
    for kind, norm in (("relu", 0.1), ("topk", 1.0)):
        _, m = model(kind)
        rows = np.asarray(m.W_dec[...])
        np.testing.assert_allclose(np.linalg.norm(rows, axis=1), norm, rtol=1e-5)  # free rows 0.1, unit rows 1
        np.testing.assert_array_equal(np.asarray(m.W_enc[...]), rows.T)           # encoder = decoder transposed
        assert not np.asarray(m.b_enc[...]).any() and not np.asarray(m.b_dec[...]).any()


@pytest.mark.parametrize("subtract", [True, False])
def test_decoder_bias_is_subtracted_from_the_input_when_asked(subtract):
    _, m = model("relu", subtract_decoder_bias=subtract)
    m.b_dec[...] = jnp.arange(D, dtype=jnp.float32)
    m.b_enc[...] = jnp.ones(W)
    x = jax.random.normal(jax.random.key(1), (5, D))
    x_in = x - m.b_dec[...] if subtract else x
    np.testing.assert_allclose(m.pre_activations(x), x_in @ m.W_enc[...] + 1.0, rtol=1e-6)


def test_each_architectures_code_against_its_definition():
    x = jax.random.normal(jax.random.key(2), (6, D))
    _, relu = model("relu")
    pre = np.asarray(relu.pre_activations(x))
    np.testing.assert_allclose(relu.encode(x), np.maximum(pre, 0), rtol=1e-6)

    _, topk = model("topk", k=3)
    pre = np.asarray(topk.pre_activations(x))
    kept = np.where(pre >= np.sort(pre, axis=1)[:, -3:-2], pre, 0)
    np.testing.assert_allclose(topk.encode(x), np.maximum(kept, 0), rtol=1e-6)
    np.testing.assert_allclose(topk.encode(x, k=jnp.int32(5)),  # a member's own k, traced
                               np.maximum(np.where(pre >= np.sort(pre, axis=1)[:, -5:-4], pre, 0), 0), rtol=1e-6)

    _, jump = model("jumprelu", threshold=0.2)
    pre = np.asarray(jump.pre_activations(x))
    np.testing.assert_allclose(jump.encode(x), pre * (pre > 0.2), rtol=1e-5)

    _, gated = model("gated")
    gated.r_mag[...] = jnp.full(W, 0.5)
    gated.b_mag[...] = jnp.full(W, -0.1)
    x_in = np.asarray(x)
    gate = x_in @ np.asarray(gated.W_enc[...])
    magnitude = x_in @ (np.asarray(gated.W_enc[...]) * np.exp(0.5)) - 0.1
    np.testing.assert_allclose(gated.encode(x), (gate > 0) * np.maximum(magnitude, 0), rtol=1e-5, atol=1e-6)


def test_batch_top_k_keeps_k_per_row_on_average_and_infers_with_its_threshold():
    _, m = model("batchtopk", k=3)
    x = jax.random.normal(jax.random.key(3), (10, D))
    _, aux = m(x)
    acts = np.maximum(np.asarray(m.pre_activations(x)), 0)
    assert (np.asarray(aux["code"]) != 0).sum() == min(30, (acts > 0).sum())
    smallest_kept = np.sort(acts.ravel())[-30]
    np.testing.assert_array_equal(np.asarray(aux["code"]), np.where(acts >= smallest_kept, acts, 0))
    m.threshold[...] = jnp.float32(0.3)
    np.testing.assert_allclose(m.encode(x), np.where(acts > 0.3, acts, 0), rtol=1e-6)


def test_jumprelu_straight_through_gradients():
    """Rajamanoharan et al. 2024, eq. 11: d/dz = H(z - theta); d/dtheta = -(theta/eps) rect((z - theta)/eps)."""
    z = jnp.array([[0.05, 0.19, 0.21, 0.5, -0.3]])
    theta, eps = jnp.full(5, 0.2), 0.05
    gz, gt = jax.grad(lambda z, t: jnp.sum(sae.jumprelu(z, t, eps)), argnums=(0, 1))(z, theta)
    np.testing.assert_array_equal(np.asarray(gz), [[0, 0, 1, 1, 0]])
    inside = np.abs((np.asarray(z) - 0.2) / eps) < 0.5
    np.testing.assert_allclose(np.asarray(gt), np.where(inside, -(0.2 / eps), 0.0)[0], rtol=1e-6)
    gz, gt = jax.grad(lambda z, t: jnp.sum(sae.heaviside(z, t, eps)), argnums=(0, 1))(z, theta)
    assert not np.asarray(gz).any()
    np.testing.assert_allclose(np.asarray(gt), np.where(inside, -1 / eps, 0.0)[0], rtol=1e-6)


def test_aux_k_loss_against_a_direct_computation():
    rng = np.random.default_rng(0)
    pre, residual = rng.normal(size=(4, W)).astype(np.float32), rng.normal(size=(4, D)).astype(np.float32)
    w_dec = rng.normal(size=(W, D)).astype(np.float32)
    dead = np.zeros(W, bool)
    dead[[1, 4, 7, 9, 12]] = True
    got = sae.aux_k_loss({"W_dec": jnp.asarray(w_dec)}, jnp.asarray(pre), jnp.asarray(residual), jnp.asarray(dead), 3)
    acts = np.zeros_like(pre)
    for b in range(4):
        top = [i for i in np.argsort(-pre[b]) if dead[i]][:3]
        acts[b, top] = np.maximum(pre[b, top], 0)
    want = min(5 / 3, 1.0) * np.mean(np.sum((acts @ w_dec - residual) ** 2, axis=1))
    np.testing.assert_allclose(float(got), want, rtol=1e-5)
    none = sae.aux_k_loss({"W_dec": jnp.asarray(w_dec)}, jnp.asarray(pre), jnp.asarray(residual), jnp.zeros(W, bool), 3)
    assert float(none) == 0.0


def test_aux_k_is_skipped_for_a_block_without_dead_latents_and_exact_otherwise():
    """Under compile_population's member axis AuxK is a real branch taken once per block: skipped when no
    member has a dead latent, run for all when one has (each member keeps its own value, 0 without dead)."""
    from aejax.objectives import MEMBER_AXIS

    rng = np.random.default_rng(1)
    pre, residual = rng.normal(size=(2, 4, W)).astype(np.float32), rng.normal(size=(2, 4, D)).astype(np.float32)
    w_dec = jnp.asarray(rng.normal(size=(2, W, D)).astype(np.float32))
    one = lambda w, p, r, d: sae.aux_k_loss({"W_dec": w}, p, r, d, 3)
    block = jax.vmap(one, axis_name=MEMBER_AXIS)
    dead = np.zeros((2, W), bool)
    dead[1, [2, 5, 11]] = True
    got = block(w_dec, pre, residual, dead)
    alone = [float(one(w_dec[m], pre[m], residual[m], dead[m])) for m in range(2)]
    assert float(got[0]) == 0.0 and alone[1] > 0
    np.testing.assert_allclose(np.asarray(got), alone, rtol=1e-6)
    jaxpr = str(jax.make_jaxpr(block)(w_dec, pre, residual, np.zeros((2, W), bool)))
    assert "cond[" in jaxpr and "psum" in jaxpr  # one branch for the block, not a per-member select


def losses(kind: str, x, hp=None, **settings):
    spec, m = model(kind, **settings)
    params = nnx.to_pure_dict(nnx.split(m)[1])
    terms = sae.loss(spec, spec.family_settings)
    hp = {"sparsity_coefficient": 2.0, "k": 3, "bandwidth": 0.05, "aux_coefficient": 1.0, "step": 0, **(hp or {})}
    recon, aux = m(x, **sae.member_call(spec.family_settings, hp))
    return params, recon, aux, terms(params, x, recon, aux, hp)


def test_losses_against_direct_computations():
    x = jax.random.normal(jax.random.key(4), (6, D))
    params, recon, aux, (total, terms) = losses("relu", x)
    sse = np.mean(np.sum((np.asarray(recon) - np.asarray(x)) ** 2, axis=1))
    l1 = np.mean(np.sum(np.asarray(aux["code"]) * np.linalg.norm(params["W_dec"], axis=1), axis=1))
    np.testing.assert_allclose([terms["sse"], terms["l1"], total], [sse, l1, sse + 2.0 * l1], rtol=1e-5)
    np.testing.assert_allclose(terms["l0"], np.mean(np.sum(np.asarray(aux["code"]) != 0, axis=1)), rtol=1e-6)

    params, recon, aux, (total, terms) = losses("matryoshka", x, matryoshka_widths=[4, 8, W])
    f = np.asarray(aux["code"])
    prefix = sum(np.mean(np.sum((f[:, :w] @ params["W_dec"][:w] + params["b_dec"] - np.asarray(x)) ** 2, axis=1))
                 for w in (4, 8))
    np.testing.assert_allclose(terms["prefix_sse"], prefix, rtol=1e-5)

    _, _, _, (warm_total, warm_terms) = losses("relu", x, hp={"step": 4}, sparsity_warmup_steps=10)
    np.testing.assert_allclose(warm_total, warm_terms["sse"] + 2.0 * 0.5 * warm_terms["l1"], rtol=1e-5)


def test_the_decoder_bias_is_subtracted_with_the_direct_formulas_value_and_gradient():
    """With a non-zero b_dec, ReLU's loss and gradient equal those of the textbook formula written directly,
    (x - b_dec) W_enc + b_enc, though aejax routes b_dec's gradient through a vector product."""
    spec, m = model("relu")
    graph, state = nnx.split(m)
    params = nnx.to_pure_dict(state)
    params["b_dec"] = jax.random.normal(jax.random.key(8), (D,)) * 3.0
    params["b_enc"] = jax.random.normal(jax.random.key(9), (W,)) * 0.1
    x = jax.random.normal(jax.random.key(7), (6, D)) + 3.0
    hp = {"sparsity_coefficient": 2.0, "step": 0}

    def ours(p):
        recon, aux = nnx.merge(graph, p)(x)
        return sae.loss(spec, spec.family_settings)(p, x, recon, aux, hp)[0]

    def direct(p):
        f = jax.nn.relu((x - p["b_dec"]) @ p["W_enc"] + p["b_enc"])
        recon = f @ p["W_dec"] + p["b_dec"]
        norms = jnp.linalg.norm(p["W_dec"], axis=1)
        return jnp.mean(jnp.sum((recon - x) ** 2, axis=1)) + 2.0 * jnp.mean(jnp.sum(f * norms, axis=1))

    np.testing.assert_allclose(ours(params), direct(params), rtol=1e-6)
    got, want = jax.grad(ours)(params), jax.grad(direct)(params)
    for name in ("b_dec", "W_enc", "b_enc", "W_dec"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5, err_msg=name)


def batch_matmuls(jaxpr, rows: int) -> int:
    """dot_generals with an operand of `rows` rows (the batch's products), in `jaxpr` and the calls inside it."""
    count = 0
    for e in jaxpr.eqns:
        if e.primitive.name == "dot_general":
            count += any(getattr(v.aval, "shape", ())[:1] == (rows,) for v in e.invars)
        for value in e.params.values():
            for inner in value if isinstance(value, (tuple, list)) else (value,):  # cond's branches: a tuple
                inner = getattr(inner, "jaxpr", inner)
                if hasattr(inner, "eqns"):
                    count += batch_matmuls(inner, rows)
    return count


def test_a_topk_step_takes_the_encoders_gradient_once():
    """TopK's code and AuxK read the same pre-activations: the gradient has one matmul through the encoder
    (its weights'), not one per reader, and the decoder bias's gradient is a vector product (pre is
    x W_enc - b_dec W_enc), not a product of the batch. Outside AuxK's branch: the forward's two matmuls, two
    through the decoder (its weights and the code) and one through the encoder: 5 with a batch operand
    (9 when the code read its own pre-activations, 6 when b_dec's gradient went through x - b_dec)."""
    spec, m = model("topk")
    graph, state = nnx.split(m)
    params = nnx.to_pure_dict(state)
    rows = 6
    x = jax.random.normal(jax.random.key(6), (rows, D))
    hp = {"k": 3, "aux_coefficient": 1.0, "sparsity_coefficient": 0.0, "step": 0}

    def total(p):
        recon, aux = nnx.merge(graph, p)(x, k=hp["k"])
        return sae.loss(spec, spec.family_settings)(p, x, recon, aux, hp)[0]

    jaxpr = jax.make_jaxpr(jax.grad(total))(params).jaxpr
    assert batch_matmuls(jaxpr, rows) == 5 + 3  # + AuxK's branch: its forward, its gradients to the decoder and the code


@pytest.mark.parametrize("decoder_norm,frozen", [("unit", True), ("auto", False)])
def test_the_gate_reconstruction_trains_the_decoder_only_when_its_rows_are_free(decoder_norm, frozen):
    """Unit rows: the paper's frozen decoder. Free rows (gated's default), whose norms the penalty reads:
    the live decoder, as SAELens, not frozen in one term and live in the other."""
    spec, m = model("gated", decoder_norm=decoder_norm)
    params = nnx.to_pure_dict(nnx.split(m)[1])
    graph = nnx.split(m)[0]
    x = jax.random.normal(jax.random.key(5), (6, D))

    def gate_sse(p):
        recon, aux = nnx.merge(graph, p)(x)
        return sae.loss(spec, spec.family_settings)(p, x, recon, aux, {"sparsity_coefficient": 0.0, "step": 0})[1]["gate_sse"]

    grads = jax.grad(gate_sse)(params)
    assert np.asarray(grads["W_dec"]).any() != frozen   # b_dec moves either way, through the input x - b_dec
    assert np.asarray(grads["W_enc"]).any()


def test_after_update_keeps_unit_rows_counts_dead_steps_and_tracks_the_threshold():
    spec, m = model("batchtopk", threshold_lr=0.5)
    s = spec.family_settings
    old = nnx.to_pure_dict(nnx.split(m)[1])
    old["threshold"] = jnp.float32(1.0)
    old["steps_since_fired"] = jnp.arange(W, dtype=jnp.float32)
    new = dict(old, W_dec=old["W_dec"] * 3.0)
    code = jnp.zeros((2, W)).at[0, 2].set(0.4).at[1, 5].set(0.8)
    out = sae.after_update(new, old, {"code": code, "firing": sae.firing_rates(code)}, {}, s)
    np.testing.assert_allclose(np.linalg.norm(out["W_dec"], axis=1), 1.0, rtol=1e-5)
    want = np.arange(W) + 1.0
    want[[2, 5]] = 0
    np.testing.assert_array_equal(np.asarray(out["steps_since_fired"]), want)
    np.testing.assert_allclose(float(out["threshold"]), 0.5 * 1.0 + 0.5 * 0.4, rtol=1e-6)


def test_unit_rows_lose_the_gradient_along_themselves():
    spec, m = model("topk")
    params = nnx.to_pure_dict(nnx.split(m)[1])
    grads = jax.tree.map(lambda a: jnp.ones_like(a), params)
    adjusted = sae.adjust_grads(grads, params, spec.family_settings)
    np.testing.assert_allclose(np.sum(np.asarray(adjusted["W_dec"]) * np.asarray(params["W_dec"]), axis=1), 0,
                               atol=1e-5)
    free = model_spec(family="sae", hidden=[], code_size=W, sae="relu").family_settings
    assert sae.adjust_grads(grads, params, free) is grads


# ----------------------------------------------------------------------------- through train_and_evaluate
def sae_config(*overrides):
    return compose(["model=sae", "data=synthetic", "data.dim=16", "data.num_samples=1024", "model.code_size=32",
                    "logger=none", "trainer.epochs=3", "trainer.batch_size=128", "trainer.figure_formats=[png]",
                    *overrides])


@pytest.mark.parametrize("kind,grid", [
    ("relu", "+population.grid.model.sparsity_coefficient=[0.1,3.0]"),
    ("topk", "+population.grid.model.k=[2,8]"),
    ("batchtopk", "+population.grid.model.k=[2,8]"),
    ("jumprelu", "+population.grid.model.threshold=[0.01,0.5]"),
    ("gated", "+population.grid.model.sparsity_coefficient=[0.1,3.0]"),
    ("matryoshka", "+population.grid.model.k=[2,8]"),
])
def test_every_architecture_trains_as_a_population_whose_sparsity_follows_its_member_setting(tmp_path, kind, grid):
    extra = ["model.matryoshka_widths=[8,16,32]"] if kind == "matryoshka" else []
    summary, params = trained(sae_config(f"model.sae={kind}", grid, *extra), tmp_path / kind)
    tests = [m["test"] for m in summary["members"]]
    for t in tests:
        assert {"l0", "fvu", "explained_variance", "cosine", "norm_ratio", "dead_latents", "dense_latents"} <= set(t)
        np.testing.assert_allclose(t["explained_variance"], 1 - t["fvu"], rtol=1e-6)
    assert tests[0]["l0"] < tests[1]["l0"] if kind in ("topk", "batchtopk", "matryoshka") else tests[0]["l0"] > tests[1]["l0"]
    if kind == "topk":
        assert [t["l0"] for t in tests] == [2.0, 8.0]
    if kind in sae.UNIT_BY_DEFAULT:
        np.testing.assert_allclose(np.linalg.norm(np.asarray(params["W_dec"]), axis=-1), 1.0, rtol=1e-4)
    assert summary["sae"]["architecture"] == kind
    assert (tmp_path / kind / "figures" / "sae_frontier.png").exists()


def test_a_members_own_k_trains_as_a_run_of_that_k_alone(tmp_path):
    pop, params = trained(sae_config("model.sae=topk", "+population.grid.model.k=[2,8]"), tmp_path / "pop")
    for i, k in enumerate((2, 8)):
        alone, own = trained(sae_config("model.sae=topk", f"model.k={k}"), tmp_path / f"k{k}")
        np.testing.assert_allclose(np.asarray(params["W_dec"][i]), np.asarray(own["W_dec"][0]), atol=2e-5)
        assert pop["members"][i]["test"]["l0"] == alone["members"][0]["test"]["l0"] == k


def test_jumprelu_members_start_at_their_own_threshold():
    spec = parse_run(sae_config("model.sae=jumprelu", "+population.grid.model.threshold=[0.01,0.5]"))
    from aejax.run import prepare

    setup = prepare(spec)
    np.testing.assert_allclose(np.exp(np.asarray(setup.state["params"]["log_threshold"]))[:, 0], [0.01, 0.5], rtol=1e-6)


# ----------------------------------------------------------------------------- streamed activations
@pytest.fixture
def shards(tmp_path):
    folder = tmp_path / "acts"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        np.save(folder / f"shard_{i}.npy", rng.normal(size=(3000, 16)).astype(np.float16))
    return folder


def test_streamed_training_does_not_depend_on_how_calls_cut_the_steps(tmp_path, shards):
    base = ["model.sae=topk", "data=activations", f"data.path={shards}", "data.test_size=1000", "model.k=4",
            "trainer.epochs=2", "trainer.batch_size=256"]
    _, one = trained(sae_config(*base, "trainer.call_seconds=1000"), tmp_path / "long")
    summary, many = trained(sae_config(*base, "trainer.call_seconds=0.0001"), tmp_path / "short")
    np.testing.assert_array_equal(np.asarray(one["W_dec"]), np.asarray(many["W_dec"]))
    assert summary["sae"]["activation_scale"] != 1.0  # mean_norm scaling recorded


# ----------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("settings,message", [
    (dict(sae="topk", k=64), "model.k=64 is not allowed; expected an integer in [1, model.code_size=16]"),
    (dict(sae="relu", sparsity_coefficient=-1.0), "model.sparsity_coefficient=-1.0 is not allowed"),
    (dict(sae="relu", sparsity_coefficient=float("nan")), "model.sparsity_coefficient=nan is not allowed"),
    (dict(sae="matryoshka", matryoshka_widths=[8, 4, 16]), "model.matryoshka_widths=[8, 4, 16] is not allowed; "
                                                           "expected strictly increasing widths ending at model.code_size=16"),
    (dict(sae="matryoshka", matryoshka_widths=[4, 8]), "model.matryoshka_widths=[4, 8] is not allowed"),
    (dict(sae="topk", matryoshka_widths=[4, 16]), "expected [] unless model.sae=matryoshka"),
    (dict(sae="topk", hidden=[64]), "model.hidden=[64] is not allowed; expected [] for model.family=sae"),
    (dict(sae="relu", aux_k=100), "model.aux_k=100 is not allowed"),
])
def test_bad_settings_are_refused_in_one_line(settings, message):
    with pytest.raises(ConfigError) as err:
        model_spec(**{"family": "sae", "hidden": [], "code_size": W, "k": 4, **settings})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_grid_over_a_setting_the_architecture_does_not_read_is_refused():
    with pytest.raises(ConfigError, match=r"population.grid.model.k=\[2, 4\] is not allowed; expected no values "
                                          r"unless model.sae=topk or batchtopk or matryoshka"):
        parse_run(sae_config("model.sae=relu", "+population.grid.model.k=[2,4]"))


def test_the_cli_refuses_k_above_the_width_in_one_line(tmp_path):
    run = subprocess.run([sys.executable, "-m", "aejax.cli", "model=sae", "data=synthetic", "model.code_size=32",
                          "+population.grid.model.k=[4,64]", "logger=none", f"hydra.run.dir={tmp_path / 'run'}"],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert lines == ["aejax-train: error: population.grid.model.k=64 is not allowed; expected an integer in [1, model.code_size=32]"]
    assert not (tmp_path / "run" / "summary.json").exists()


def test_warmup_decay_schedule():
    from aejax.optim import OptimSpec, make_schedule

    schedule = make_schedule(OptimSpec(schedule="warmup_decay", warmup_steps=4, decay_steps=10), 100)
    values = np.array([float(schedule(t)) for t in range(100)])
    np.testing.assert_allclose(values[:4], [0.25, 0.5, 0.75, 1.0])
    assert (values[4:90] == 1.0).all()
    np.testing.assert_allclose(values[90:], (100 - np.arange(90, 100)) / 10)
    with pytest.raises(ConfigError, match="optim.decay_steps=5 is not allowed; expected 0 unless optim.schedule=warmup_decay"):
        OptimSpec(decay_steps=5).check()


def test_a_non_finite_activation_is_refused_before_anything_is_written(tmp_path):
    folder = tmp_path / "acts"
    folder.mkdir()
    rows = np.ones((500, 8), np.float16)
    rows[321, 3] = np.nan
    np.save(folder / "a.npy", np.ones((500, 8), np.float16))
    np.save(folder / "b.npy", rows)
    run = subprocess.run([sys.executable, "-m", "aejax.cli", "model=sae", "data=activations", f"data.path={folder}",
                          "data.test_size=100", "model.code_size=16", "model.k=4", "logger=none",
                          f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "b.npy" in lines[0] and "row 321" in lines[0], lines
    assert not (tmp_path / "run").exists()


def test_load_run_gives_each_member_its_own_k(tmp_path):
    from aejax.trained import load_run

    summary, _ = trained(sae_config("model.sae=topk", "+population.grid.model.k=[2,8]"), tmp_path / "run")
    x = np.asarray(load_run(tmp_path / "run", member=0).data.test[:50])
    for member, k in ((0, 2), (1, 8)):
        codes = np.asarray(load_run(tmp_path / "run", member=member).encode(x))
        assert ((codes != 0).sum(axis=1) == k).all()


def test_logged_norms_leave_out_the_counters(tmp_path):
    import json

    _, params = trained(sae_config("model.sae=batchtopk", "model.k=4"), tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in rows if "train/param_norm" in r][-1]["train/param_norm"]  # norms at the last step
    norm = lambda names: np.sqrt(sum(float(np.sum(np.square(np.asarray(params[n][0])))) for n in names))
    assert float(np.asarray(params["threshold"][0])) > 0
    np.testing.assert_allclose(logged, norm([n for n in params if n not in ("steps_since_fired", "threshold")]),
                               rtol=1e-5)
