"""The training engine: one compilation, populations equal separate runs, exact resume, divergence."""

import json

import jax
import numpy as np
import pytest

from aejax.config import parse_run
from aejax.run import train_and_evaluate
from conftest import trained
from aejax.train import Diverged
from conftest import TINY, compose, pretend_killed


def run(tmp_path, name, overrides):
    return train_and_evaluate(compose(TINY + overrides), tmp_path / name)


def test_population_matches_separate_runs(tmp_path):
    grid = ["population.seeds=[0,1]", "+population.grid.model.noise_level=[0.0,0.2]",
            "+population.grid.optim.learning_rate=[0.001,0.003]"]
    together = run(tmp_path, "pop", grid)
    assert together["num_members"] == 8
    for member in together["members"][::3]:  # members 0, 3, 6: both seeds, all values
        hp = member["hyperparameters"]
        alone = run(tmp_path, f"m{member['member']}", [
            f"population.seeds=[{member['seed']}]", f"model.noise_level={hp['model.noise_level']}",
            f"optim.learning_rate={hp['optim.learning_rate']}"])["members"][0]
        for key in ("mse", "sse_per_image", "denoise_mse"):
            np.testing.assert_allclose(member["test"][key], alone["test"][key], rtol=2e-4)
    # Members really differ: the varied settings are recorded and change the result.
    assert together["varied"] == ["seed", "optim.learning_rate", "model.noise_level"]
    assert len({round(m["test"]["mse"], 6) for m in together["members"]}) == 8


def compiled_population(seeds: int):
    """The compiled program of a TINY run with `seeds` members, and its arguments."""
    import jax.numpy as jnp

    from aejax.data import load_dataset
    from aejax.models import init_params, model_graph
    from aejax.models import make_loss
    from aejax.optim import make_optimizer
    from aejax.population import hyperparameter_arrays, members
    from aejax.train import compile_population, init_population, make_member_program, make_step, member_keys

    spec = parse_run(compose(TINY + [f"population.seeds={seeds}"]))
    data = load_dataset(spec.data)
    graph = model_graph(spec.model, data.dim, data.image_shape)
    optimizer = make_optimizer(spec.optim, 100)
    program = compile_population(make_member_program(make_step(make_loss(spec.model, graph), optimizer),
                                                     len(data.train), 64), shared_data=True)
    rows = members(spec)
    keys = member_keys([r["seed"] for r in rows])
    state = init_population(lambda k: init_params(spec.model, data.dim, None, k), optimizer, keys)
    return program, (state, keys, jnp.asarray(data.train), hyperparameter_arrays(rows))


def test_train_step_compiles_once():
    program, (state, keys, x, hp) = compiled_population(3)
    state, _ = program(state, keys, x, hp, 0, 1, 4)
    assert program._cache_size() == 1
    with jax.log_compiles():  # a recompilation would also show in the log
        state, terms = program(state, keys, x, hp, 4, 1, 4)
    assert program._cache_size() == 1
    assert terms["loss"].shape == (3, 1, 4)


def test_one_member_runs_unbatched_matmuls():
    """vmap over one member would make every matmul a batched dot, slower on XLA's CPU backend."""
    for seeds, batched in ((1, False), (2, True)):
        program, args = compiled_population(seeds)
        hlo = program.lower(*args, 0, 1, 4).as_text()
        assert "dot_general" in hlo
        assert ("batching_dims" in hlo) == batched, seeds
        assert jax.eval_shape(program, *args, 0, 1, 4)[1]["loss"].shape == (seeds, 1, 4)  # the member axis is kept


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="off a CPU, conv populations stay vmapped")
def test_a_conv_member_of_a_population_is_bitwise_its_run_alone(tmp_path):
    """On a CPU conv members are trained one after another in the program (train.population_block),
    each unbatched: seed 1 of a population of two ends with the parameters of seed 1 trained alone."""
    from aejax.train import population_block

    assert population_block("conv") == 1 and population_block("mlp") is None  # MLPs: each shard picks its block
    conv = ["model=conv", "model.channels=[4,8]", "data.train_size=128", "trainer.epochs=1"]
    _, pair = trained(compose(TINY + conv + ["population.seeds=[0,1]"]), tmp_path / "pair")
    _, alone = trained(compose(TINY + conv + ["population.seeds=[1]"]), tmp_path / "alone")
    for a, b in zip(jax.tree.leaves(pair), jax.tree.leaves(alone)):
        np.testing.assert_array_equal(np.asarray(a[1]), np.asarray(b[0]))


def test_resume_replays_the_same_randomness(tmp_path):
    common = ["trainer.epochs=4", "trainer.checkpoint_every=2", "model.noise_level=0.3",
              "model.corruption=mask", "population.seeds=[0,1]"]
    full = run(tmp_path, "full", common)
    interrupted = tmp_path / "resumed"
    run(tmp_path, "resumed", common)
    # Pretend the run died after epoch 2: drop the later checkpoint, metrics and summary.
    pretend_killed(interrupted, 2)
    resumed = run(tmp_path, "resumed", common + ["trainer.resume=true"])
    for a, b in zip(full["members"], resumed["members"]):
        assert a["test"]["mse"] == pytest.approx(b["test"]["mse"], rel=1e-6)
    lines = [json.loads(l) for l in (interrupted / "metrics.jsonl").read_text().splitlines()]
    steps = [l["step"] for l in lines if l["member"] == 0]
    assert steps == sorted(set(steps))  # no duplicated steps after the resume


def test_divergence_names_step_and_member_and_keeps_checkpoint(tmp_path):
    with pytest.raises(Diverged) as info:
        run(tmp_path, "nan", ["optim=sgd", "population.seeds=[0]", "trainer.on_divergence=stop",
                              "+population.grid.optim.learning_rate=[0.01,1e9]",
                              "trainer.epochs=4", "trainer.checkpoint_every=2", "model.output_activation=linear"])
    assert info.value.member == 1 and "member 1" in str(info.value)
    assert not (tmp_path / "nan" / "summary.json").exists()
    assert any((tmp_path / "nan" / "checkpoints").iterdir())


def test_a_population_split_across_cpu_devices_resumes_reads_anywhere_and_matches_one_device_to_rounding(tmp_path):
    """With trainer.cpu_devices=4 (XLA_FLAGS=--xla_force_host_platform_device_count=4 is the same for JAX) the
    member axis of 6 members is split across 3 of the 4 CPU devices, 2 members each (aejax.train.devices_for).
    It resumes (a restore is committed to one device, which the split program refused), its checkpoints read
    in this one-device process (Orbax alone refused the saved topology), and every member matches the same
    population on one device to float rounding, not bitwise (README, Populations)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from aejax.restore import restore_population

    grid = ["population.seeds=[0,1,2]", "+population.grid.optim.learning_rate=[0.001,0.01]"]  # 6 members
    runs = {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    aejax_train = lambda *args: subprocess.run([str(Path(sys.executable).parent / "aejax-train"), *args], cwd=tmp_path,
                                               env=env, capture_output=True, text=True, timeout=600,
                                               stdin=subprocess.DEVNULL)
    for devices, shown, used in ((1, "1", 1), (4, "3 of 4", 3)):
        run = tmp_path / f"devices{devices}"
        resumed = devices > 1  # trained for one of TINY's two epochs, then resumed for the second
        result = aejax_train(*TINY, *grid, f"trainer.cpu_devices={devices}", f"hydra.run.dir={run}",
                             *(["trainer.epochs=1"] if resumed else []))
        assert result.returncode == 0, result.stderr[-2000:]
        if resumed:
            result = aejax_train(f"hydra.run.dir={run}", "trainer.resume=true", "trainer.epochs=2")
            assert result.returncode == 0, result.stderr[-2000:]
        assert f"training 6 member(s) on {shown} cpu device(s)" in (run / "aejax-train.log").read_text()
        attempts = json.loads((run / "provenance.json").read_text())["attempts"]
        assert [a["devices_used"] for a in attempts] == [used] * (1 + resumed)  # the trained state's own sharding
        runs[devices] = (json.loads((run / "summary.json").read_text()), restore_population(run).params)
    (one, one_params), (split, split_params) = runs[1], runs[4]
    for a, b in zip(one["members"], split["members"]):
        for key in ("mse", "sse_per_image"):
            np.testing.assert_allclose(a["test"][key], b["test"][key], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(one_params), jax.tree.leaves(split_params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=2e-5)  # measured: at most 4.1e-6 (resumed or not)


def test_cpu_devices_are_refused_where_jax_already_runs_with_another_count():
    """JAX fixes its CPU device count when the backend starts: a second value in the same process (a Python
    session, a multirun on Hydra's basic launcher) is an error, not a setting silently not applied."""
    from aejax.errors import ConfigError
    from aejax.train import use_cpu_devices

    running = len(jax.devices("cpu"))  # starts the backend if nothing has yet
    use_cpu_devices(running)  # the count it runs with: nothing to change
    use_cpu_devices(None)
    with pytest.raises(ConfigError, match=rf"trainer.cpu_devices={running + 1} is not allowed in this process; "
                                          rf"expected {running} or null"):
        use_cpu_devices(running + 1)
    assert len(jax.devices("cpu")) == running


def test_shards_together_are_bitwise_the_unsharded_population(tmp_path):
    grid = ["population.seeds=[0,1]", "+population.grid.optim.learning_rate=[0.001,0.003,0.01]"]  # 6 members
    whole, whole_params = trained(compose(TINY + grid), tmp_path / "whole")
    members, leaves = [], []
    for shard in range(2):  # 3 members each
        summary, params = trained(compose(TINY + grid + ["population.shards=2", f"population.shard={shard}"]),
                                             tmp_path / f"shard{shard}")
        members += summary["members"]
        leaves += [[np.asarray(a[i]) for a in jax.tree.leaves(params)] for i in range(summary["num_members"])]
    assert [m["member"] for m in members] == [0, 1, 2, 3, 4, 5]
    logged = {json.loads(l)["member"] for l in (tmp_path / "shard1" / "metrics.jsonl").read_text().splitlines()}
    assert logged == {3, 4, 5}  # metrics.jsonl numbers members as the whole population does
    for mine, theirs in zip(members, whole["members"]):
        assert (mine["seed"], mine["hyperparameters"]) == (theirs["seed"], theirs["hyperparameters"])
        assert mine["test"] == theirs["test"]
    for m, member_leaves in enumerate(leaves):
        for a, b in zip(member_leaves, jax.tree.leaves(whole_params)):
            np.testing.assert_array_equal(a, np.asarray(b[m]))
