"""Compiled calls sized by time (aejax.schedule): the plan covers every step once and lands on every
interval, any cut of the steps gives bitwise the same run, and a signal to a slow model is answered
within about one call."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from aejax import schedule
from aejax.run import train_and_evaluate
from conftest import trained
from conftest import TINY, compose

EXE = Path(sys.executable).parent / "aejax-train"


@pytest.mark.parametrize("first,epochs,spe,per_call,intervals", [
    (0, 10, 5, 500, (0, 0)), (0, 12, 100, 400, (4, 0)), (0, 7, 400, 500, (0, 0)), (0, 9, 3, 9, (3, 0)),
    (0, 4, 10, 3, (1, 2)), (37, 6, 10, 4, (2, 0)), (40, 6, 10, 500, (2, 3)), (0, 3, 1, 1, (0, 0))])
def test_a_plan_covers_every_step_once_and_lands_on_every_interval(first, epochs, spe, per_call, intervals):
    calls = schedule.plan(first, epochs * spe, spe, per_call, *intervals)
    assert calls[0].first_step == first and calls[-1].end == epochs * spe
    assert all(a.end == b.first_step for a, b in zip(calls, calls[1:]))
    for call in calls:
        assert call.n_epochs * call.n_steps <= max(per_call, spe)
        assert call.n_epochs == 1 or (call.n_steps == spe and call.first_step % spe == 0)
        assert call.first_step // spe == (call.end - 1) // spe or call.n_steps == spe  # inside one epoch, or whole ones
    ends = {call.end for call in calls}
    for every in intervals:
        if every:
            assert {e * spe for e in range(every, epochs + 1, every) if e * spe > first} <= ends
    assert len({c.shape for c in calls[1:-1]}) <= 2  # one shape (and the epoch's remainder): few compilations


def test_steps_per_call_follow_the_measured_step_time():
    assert schedule.steps_for(0.5, 10) == 20
    assert schedule.steps_for(1e-6, 10) == schedule.MAX_STEPS_PER_CALL
    assert schedule.steps_for(60.0, 10) == 1


def test_any_cut_of_the_steps_gives_bitwise_the_same_parameters(tmp_path):
    """Calls of one step each (call_seconds far below a step) against the default cut (whole epochs)."""
    config = compose(TINY + ["trainer.epochs=3", "population.seeds=2", "trainer.log_every=1"])
    whole, whole_params = trained(config, tmp_path / "whole")
    cut = {**config, "trainer": {**config["trainer"], "call_seconds": 1e-9}}
    single, single_params = trained(cut, tmp_path / "cut")
    for a, b in zip(jax.tree.leaves(whole_params), jax.tree.leaves(single_params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert whole["members"] == single["members"]
    lines = lambda run: [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in rows]
    assert strip(lines(tmp_path / "whole")) == strip(lines(tmp_path / "cut"))
    rates = [r["perf/ms_per_step"] for r in lines(tmp_path / "cut")]
    assert len(set(rates)) > 1  # each call reports its own rate, not one figure for the run


# A model slow enough that one call of the old fixed 500 steps would last minutes on 2 cores
# (about 0.1 s a step), in epochs of 20 steps, with calls sized to about half a second.
SLOW = ["data=synthetic", "data.dim=2048", "data.num_samples=2000", "model.hidden=[2048,2048]", "trainer.epochs=2",
        "trainer.batch_size=128", "trainer.call_seconds=0.5", "logger=none", "trainer.progress=off"]


def test_a_signal_to_a_slow_model_is_answered_within_about_one_call(tmp_path):
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    process = subprocess.Popen([str(EXE), *SLOW, f"hydra.run.dir={run}"], cwd=tmp_path, env=env, text=True,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:  # wait until the probe and one sized call are done
        status = json.loads((run / "status.json").read_text()) if (run / "status.json").exists() else {}
        if (status.get("step") or 0) > schedule.PROBE_STEPS:
            break
        time.sleep(0.05)
    tic = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=300)
    answered = time.perf_counter() - tic
    assert process.returncode == 143, err
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "interrupted" and status["step"] < 2 * status["steps_per_epoch"]
    assert (run / "checkpoints" / str(status["step"])).is_dir()  # saved where it stopped, inside an epoch or not
    # Half-second calls, a checkpoint and the exit: well under the minute a 500-step call would take.
    assert answered < 20, f"the signal took {answered:.1f} s to answer"
    resumed = subprocess.run([str(EXE), f"hydra.run.dir={run}", "trainer.resume=true"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert resumed.returncode == 0, resumed.stderr
    full = subprocess.run([str(EXE), *SLOW, f"hydra.run.dir={tmp_path / 'full'}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert full.returncode == 0, full.stderr
    summaries = [json.loads((r / "summary.json").read_text()) for r in (run, tmp_path / "full")]
    assert summaries[0]["members"][0]["test"] == summaries[1]["members"][0]["test"]  # bitwise: the same floats
    from aejax.checkpoint import PopulationCheckpointer

    last = 2 * status["steps_per_epoch"]
    a, b = (PopulationCheckpointer(r / "checkpoints") for r in (run, tmp_path / "full"))
    for x, y in zip(*(jax.tree.leaves(c.manager.restore(last)) for c in (a, b))):  # parameters and Adam's moments
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    steps = [[json.loads(l)["step"] for l in (r / "metrics.jsonl").read_text().splitlines()] for r in (run, tmp_path / "full")]
    assert steps[0] == sorted(set(steps[0])) == steps[1]  # each logged step once, as in the uninterrupted run
