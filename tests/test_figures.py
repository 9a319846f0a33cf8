"""Seeing training as it happens: validation during training, curves with the variant's terms,
members labelled by their values, several members side by side, figures for papers."""

import json

from aejax.run import train_and_evaluate
from conftest import TINY, compose


def test_validation_during_training_and_labelled_figures_in_every_format(tmp_path):
    config = compose(TINY + ["model=sparse", "trainer.epochs=4", "trainer.eval_every=2",
                             "+population.grid.model.sparsity_weight=[0.001,0.01]",
                             "trainer.figure_formats=[png,pdf,svg]"])
    train_and_evaluate(config, tmp_path)
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if "val/mse" in r]
    assert sorted((r["epoch"], r["member"]) for r in val) == [(2, 0), (2, 1), (4, 0), (4, 1)]
    assert all(0 < r["val/mse"] < 1 and "val/mean_l0" in r for r in val)
    summary = json.loads((tmp_path / "summary.json").read_text())
    last = {r["member"]: r["val/mse"] for r in val if r["epoch"] == 4}
    assert {m["member"]: m["val"]["mse"] for m in summary["members"]} == last  # the same numbers at the end
    figures = {p.name for p in (tmp_path / "figures").iterdir()}
    for name in ("training_curves", "reconstructions"):
        assert {f"{name}.png", f"{name}.pdf", f"{name}.svg"} <= figures
    curves = (tmp_path / "figures" / "training_curves.svg").read_text()
    for text in ("sparsity0.001", "sparsity0.01", "(val)", "l1", "mse per pixel"):
        assert text in curves, text  # members by their values, train and val, the L1 term
    recon = (tmp_path / "figures" / "reconstructions.svg").read_text()
    assert "reconstruction: sparsity0.001" in recon and "reconstruction: sparsity0.01" in recon


def test_the_validation_evaluator_compiles_once():
    import jax
    import jax.numpy as jnp

    from aejax.config import parse_run
    from aejax.data import load_dataset
    from aejax.evaluate import population_evaluator
    from aejax.models import init_params, model_graph
    from aejax.optim import make_optimizer
    from aejax.population import hyperparameter_arrays, members
    from aejax.train import init_population, member_keys

    spec = parse_run(compose(TINY + ["population.seeds=2"]))
    data = load_dataset(spec.data)
    graph = model_graph(spec.model, data.dim, data.image_shape)
    rows = members(spec)
    keys = member_keys([r["seed"] for r in rows])
    state = init_population(lambda k: init_params(spec.model, data.dim, None, k), make_optimizer(spec.optim, 10), keys)
    evaluate = population_evaluator(spec.model, graph)
    hp = hyperparameter_arrays(rows)
    first = evaluate(state["params"], data.val, keys, hp)
    moved = jax.tree.map(lambda a: a * 1.01, state["params"])
    second = evaluate(moved, data.val, keys, hp)
    assert evaluate.compiled._cache_size() == 1
    assert (first["mse"] != second["mse"]).all()
    assert jnp.isfinite(second["mse"]).all()
