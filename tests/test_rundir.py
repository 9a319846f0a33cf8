"""A run directory holds one run: lock, no mixing, resume from its own config, masked
divergence, checkpoints that fail to read, signals, and W&B that cannot cost a result."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from aejax.errors import ConfigError
from aejax.run import train_and_evaluate
from conftest import trained
from conftest import TINY, compose, pretend_killed

EXE = Path(sys.executable).parent / "aejax-train"


def aejax_train(args, cwd, **kwargs):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    return subprocess.run([str(EXE), *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env,
                          stdin=subprocess.DEVNULL, **kwargs)


def error_lines(result) -> list[str]:
    return [l for l in result.stderr.splitlines() if l.strip()]


def snapshot(run: Path) -> dict:
    """Every file of a run dir with its bytes (what must not change when a command is refused)."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished TINY run with checkpoints at epochs 1 and 2."""
    run = tmp_path_factory.mktemp("finished") / "run"
    train_and_evaluate(compose(TINY + ["trainer.checkpoint_every=1"]), run)
    return run


def test_a_finished_dir_is_not_reused_and_not_touched(finished, tmp_path):
    before = snapshot(finished)
    result = aejax_train([*TINY, "optim.learning_rate=0.01", "trainer.checkpoint_every=1",
                          f"hydra.run.dir={finished}"], tmp_path)
    assert result.returncode == 2
    (line,) = error_lines(result)
    assert line.startswith("aejax-train: error: ") and "already holds a finished run" in line
    assert str(finished) in line and "trainer.resume=true" in line
    assert snapshot(finished) == before


def test_resume_refuses_changed_settings_one_line_each_and_writes_nothing(finished, tmp_path):
    before = snapshot(finished)
    result = aejax_train([*TINY, "trainer.checkpoint_every=1", "trainer.resume=true", "trainer.epochs=3",
                          "optim.learning_rate=0.01", "model.activation=tanh", f"hydra.run.dir={finished}"], tmp_path)
    assert result.returncode == 2, result.stderr
    lines = error_lines(result)
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("aejax-train: error: trainer.resume=true may not change")
    assert lines[1:] == ["model.activation: the run has 'relu', the command line 'tanh'",
                         "optim.learning_rate: the run has 0.001, the command line 0.01"]
    assert snapshot(finished) == before


def test_resume_takes_the_saved_config_not_todays_defaults():
    from aejax.resume import apply_changes

    defaults = compose([])
    saved = compose(["trainer.epochs=300", "model.code_size=8", "optim.learning_rate=0.01"])
    # `hydra.run.dir=D trainer.resume=true`: the command line changes nothing but resume.
    same = apply_changes(saved, compose(["trainer.resume=true"]), defaults, ["trainer.resume=true"])
    assert same["trainer"]["epochs"] == 300 and same["model"]["code_size"] == 8 and same["trainer"]["resume"]
    longer = apply_changes(saved, compose(["trainer.epochs=400"]), defaults, ["trainer.epochs=400"])
    assert longer["trainer"]["epochs"] == 400 and longer["optim"]["learning_rate"] == 0.01
    # Naming a setting counts even when it equals aejax's default: the run had another value.
    back = apply_changes(saved, compose(["model.code_size=32"]), defaults, ["model.code_size=32"])
    assert back["model"]["code_size"] == 32
    # A group choice sets the whole section.
    vae = apply_changes(saved, compose(["model=vae"]), defaults, ["model=vae"])
    assert vae["model"]["family"] == "vae"


def test_lock_refuses_a_second_run_and_vanishes_with_kill_9(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys; from aejax.rundir import RunDirectory; from conftest import compose, TINY\n"
        f"held = RunDirectory.open({str(run)!r}, compose(TINY)); print('held', flush=True); sys.stdin.read()")],
        cwd=Path(__file__).parent, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=f"hydra.run.dir={run} is in use by pid {holder.pid}"):
            train_and_evaluate(compose(TINY), run)
    finally:
        holder.kill()  # SIGKILL: no clean-up code runs, the kernel drops the flock
        holder.wait()
    summary = train_and_evaluate(compose(TINY), run)
    assert summary["status"] == "finished"


def test_default_run_dirs_differ_within_one_second():
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    import aejax.cli  # registers the aejax_id resolver  # noqa: F401
    from conftest import REPO

    dirs = []
    for _ in range(3):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            cfg = hydra_compose("config", return_hydra_config=True)
            HydraConfig.instance().set_config(cfg)
            dirs.append(OmegaConf.select(cfg, "hydra.run.dir"))
    assert len(set(dirs)) == 3, dirs
    assert all(d.startswith("outputs/autoencoder-digits/20") for d in dirs)  # named from what was chosen


def test_a_diverging_member_is_masked_and_the_others_are_bitwise_unchanged(tmp_path):
    common = ["optim=sgd", "model.output_activation=linear", "trainer.epochs=4", "trainer.checkpoint_every=2"]
    with_bad, bad_params = trained(
        compose(TINY + common + ["+population.grid.optim.learning_rate=[0.01,1.0e9,0.03]"]), tmp_path / "bad")
    without, good_params = trained(
        compose(TINY + common + ["+population.grid.optim.learning_rate=[0.01,0.03]"]), tmp_path / "good")
    diverged = with_bad["members"][1]
    assert diverged["status"] == "diverged" and diverged["diverged_at_step"] >= 1
    assert all(v is None for v in diverged["test"].values())
    assert with_bad["diverged_members"] == 1
    for healthy, same in ((0, 0), (2, 1)):
        assert with_bad["members"][healthy]["status"] == "finished"
        assert with_bad["members"][healthy]["test"] == without["members"][same]["test"]
        for a, b in zip(jax_leaves(bad_params, healthy), jax_leaves(good_params, same)):
            np.testing.assert_array_equal(a, b)
    assert np.isfinite(np.concatenate([a.ravel() for a in jax_leaves(bad_params, 1)])).all()  # frozen, finite
    steps = {l["step"] for l in map(json.loads, (tmp_path / "bad" / "metrics.jsonl").read_text().splitlines())
             if l["member"] == 1}
    assert all(step < diverged["diverged_at_step"] for step in steps)  # nothing logged for it after it diverged


def jax_leaves(params, member):
    import jax

    return [np.asarray(a[member]) for a in jax.tree.leaves(params)]


def test_a_masked_divergence_exits_0_with_one_line_and_stop_exits_3(tmp_path):
    args = [*TINY, "optim=sgd", "model.output_activation=linear", "+population.grid.optim.learning_rate=[0.01,1.0e9]"]
    masked = aejax_train([*args, f"hydra.run.dir={tmp_path}/mask"], tmp_path)
    assert masked.returncode == 0, masked.stderr
    assert "2 member(s) trained; 1 diverged" in masked.stdout
    stopped = aejax_train([*args, "trainer.on_divergence=stop", f"hydra.run.dir={tmp_path}/stop"], tmp_path)
    assert stopped.returncode == 3 and "member 1" in stopped.stderr
    assert json.loads((tmp_path / "stop" / "status.json").read_text())["status"] == "diverged"
    assert not (tmp_path / "stop" / "summary.json").exists()


def truncate_an_array_file(checkpoint: Path) -> None:
    files = [p for p in checkpoint.rglob("*") if p.is_file() and p.stat().st_size > 200 and "d/" in str(p)]
    files = files or [p for p in checkpoint.rglob("*") if p.is_file() and p.stat().st_size > 200]
    for f in files:
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])


def test_an_unreadable_checkpoint_is_named_and_resume_falls_back_to_the_one_before(tmp_path, caplog):
    from aejax.trained import load_run

    config = compose(TINY + ["trainer.epochs=4", "trainer.checkpoint_every=1"])
    full, full_params = trained(config, tmp_path / "full")
    run = tmp_path / "run"
    train_and_evaluate(config, run)
    pretend_killed(run, 4)
    last = str(4 * json.loads((run / "status.json").read_text())["steps_per_epoch"])  # numbered by steps
    truncate_an_array_file(run / "checkpoints" / last)
    with pytest.raises(ConfigError) as info:
        load_run(run)
    message = str(info.value)
    assert "\n" not in message and f"checkpoint {run / 'checkpoints' / last} cannot be read" in message
    assert "readable epochs: [2, 3]" in message
    resumed, resumed_params = trained({**config, "trainer": {**config["trainer"], "resume": True}}, run)
    assert any(f"checkpoints/{last} cannot be read" in r.getMessage() for r in caplog.records)
    assert resumed["members"][0]["test"] == full["members"][0]["test"]
    for a, b in zip(jax_leaves(full_params, 0), jax_leaves(resumed_params, 0)):
        np.testing.assert_array_equal(a, b)


def test_a_torn_last_metrics_line_is_dropped_at_resume(tmp_path, caplog):
    config = compose(TINY + ["trainer.epochs=4", "trainer.checkpoint_every=2", "trainer.log_every=1"])
    run = tmp_path / "run"
    train_and_evaluate(config, run)
    pretend_killed(run, 2)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    expected = [json.loads(l)["step"] for l in lines]
    torn = len(lines) - 2  # killed while writing a line after the epoch-2 checkpoint
    (run / "metrics.jsonl").write_text("\n".join(lines[:torn]) + "\n" + lines[torn][:20])
    train_and_evaluate({**config, "trainer": {**config["trainer"], "resume": True}}, run)
    assert any("torn last line" in r.getMessage() for r in caplog.records)
    steps = [json.loads(l)["step"] for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == expected  # each step once, the torn one rewritten by the resumed run


# One compiled call per epoch, several calls: a signal sent after the first lands inside the loop.
SLOW = ["data=digits", "trainer.batch_size=128", "model.hidden=[1024,1024]", "trainer.epochs=8",
        "trainer.checkpoint_every=1", "logger=none", "trainer.progress=off"]


def wait_for_epoch(run: Path, epoch: int, process, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        status = json.loads((run / "status.json").read_text()) if (run / "status.json").exists() else {}
        if status.get("epoch", 0) >= epoch:
            return
        time.sleep(0.02)
    raise AssertionError(f"run never reached epoch {epoch}")


@pytest.mark.parametrize("sig,status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_checkpoints_where_it_stopped_and_exits_with_the_signals_status(sig, status, tmp_path):
    """That resuming after a signal ends bitwise where an uninterrupted run does (summary, checkpoint leaves,
    logged steps) is tested with calls sized by time, the signal landing inside an epoch or at its end
    (tests/test_schedule.py, the slow model), and for a SLURM preemption (tests/test_slurm.py)."""
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    process = subprocess.Popen([str(EXE), *SLOW, f"hydra.run.dir={run}"], cwd=tmp_path, env=env, text=True,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_epoch(run, 1, process)  # inside the loop: the first compiled call is done
    process.send_signal(sig)
    out, err = process.communicate(timeout=300)
    assert process.returncode == status, err
    state = json.loads((run / "status.json").read_text())
    assert state["status"] == "interrupted" and 1 <= state["epoch"] < 8
    line = [l for l in err.splitlines() if l.startswith("aejax-train:")]
    assert len(line) == 1 and f"stopped at epoch {state['epoch']} of 8 (checkpoint saved)" in line[0], err
    assert "Traceback" not in err
    assert state["step"] == state["epoch"] * state["steps_per_epoch"]  # calls of whole epochs here
    assert (run / "checkpoints" / str(state["step"])).is_dir()
    assert not (run / "summary.json").exists()  # nothing that looks like a finished run's result


def test_a_second_signal_stops_at_once_and_says_which_checkpoint_is_on_disk(tmp_path):
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    process = subprocess.Popen([str(EXE), *SLOW, f"hydra.run.dir={run}"], cwd=tmp_path, env=env, text=True,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_epoch(run, 1, process)
    process.send_signal(signal.SIGINT)
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    tic = time.perf_counter()
    out, err = process.communicate(timeout=300)
    assert process.returncode == 130 and time.perf_counter() - tic < 3, err  # not at the end of the compiled call
    line = [l for l in err.splitlines() if l.startswith("aejax-train:")]
    assert len(line) == 1 and line[0].startswith("aejax-train: SIGINT: stopped at once by a second SIGINT; "), err
    state = json.loads((run / "status.json").read_text())
    assert state["status"] == "interrupted" and line[0] == f"aejax-train: SIGINT: {state['message']}"
    saved = max(int(p.name) for p in (run / "checkpoints").glob("*") if p.name.isdigit())
    done, within = divmod(saved, state["steps_per_epoch"])
    assert f"the last checkpoint on disk is at epoch {done} of 8 ({run / 'checkpoints' / str(saved)}); resume with: " \
           f"uv run --locked aejax-train hydra.run.dir={run} trainer.resume=true" in line[0] and not within


def test_wandb_failing_to_start_costs_nothing(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "wandb").write_text("a file where W&B wants a folder")
    result = aejax_train([*TINY[:-2], "logger=wandb", f"hydra.run.dir={run}"], tmp_path)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr  # Hydra's console log handler writes to stdout
    warnings = [l for l in output.splitlines() if "W&B failed" in l]
    assert len(warnings) == 1 and "Traceback" not in output
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"


def test_online_wandb_without_a_key_exits_2_at_once_even_on_a_terminal(tmp_path):
    command = " ".join([str(EXE), *TINY[:-2], "logger=wandb", "logger.mode=online", f"hydra.run.dir={tmp_path}/run"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["HOME"] = str(tmp_path)  # no ~/.netrc
    tic = time.perf_counter()
    result = subprocess.run(["script", "-qec", command, "/dev/null"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60, env=env, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - tic
    assert result.returncode == 2, result.stdout
    lines = [l for l in result.stdout.splitlines() if l.strip()]
    assert len(lines) == 1 and "logger.mode=online needs W&B credentials" in lines[0] and "wandb login" in lines[0]
    assert seconds < 5  # measured well under 2 s alone; CI shares two cores with the suite
    assert not (tmp_path / "run").exists()


def test_provenance_records_code_environment_machine_command_and_data(tmp_path):
    import hashlib

    import numpy as np

    data = tmp_path / "data.npz"
    np.savez(data, x=np.random.default_rng(0).random((600, 16)).astype(np.float32))  # 432 training and 120 test rows: TINY takes 256 and 100
    run = tmp_path / "run"
    train_and_evaluate(compose(TINY + ["data=array", f"data.path={data}", "population.seeds=[3,5]"]), run)
    record = json.loads((run / "provenance.json").read_text())
    assert len(record["git"]["commit"]) == 40 and isinstance(record["git"]["dirty"], bool)
    assert record["uv_lock_sha256"] == hashlib.sha256((Path(__file__).parents[1] / "uv.lock").read_bytes()).hexdigest()
    assert {"python", "jax", "jaxlib", "flax", "optax"} <= set(record["versions"]) and all(record["versions"].values())
    assert record["devices"]["platform"] == "cpu" and record["devices"]["count"] >= 1 and record["hostname"]
    assert record["data_files"]["data"]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert record["seeds"] == [3, 5] and record["argv"] and "slurm" in record
    assert record["started"] <= record["ended"] and len(record["attempts"]) == 1


def test_resuming_a_finished_run_is_nothing_to_do(finished, tmp_path, capsys):
    """What lets a sweep launched again with trainer.resume=true finish only what is missing."""
    from aejax.cli import precheck

    before = snapshot(finished)
    with pytest.raises(SystemExit) as exit_:
        precheck([*TINY, "trainer.checkpoint_every=1", "trainer.resume=true", f"hydra.run.dir={finished}"])
    assert exit_.value.code == 0
    assert "already holds this run, finished: nothing to do" in capsys.readouterr().out
    assert snapshot(finished) == before


def test_a_killed_wandb_service_costs_nothing(tmp_path):
    """wandb-core dies mid-run (OOM killer, a crash): one warning, the run finishes, exit 0."""
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    process = subprocess.Popen([str(EXE), *SLOW, "logger=wandb", f"hydra.run.dir={run}"], cwd=tmp_path, env=env,
                               text=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_epoch(run, 1, process)
    cores = subprocess.run(["pgrep", "-f", f"wandb-core.*--pid {process.pid}"], capture_output=True, text=True)
    assert cores.stdout.split(), "no wandb-core process of this run"
    for pid in cores.stdout.split():
        os.kill(int(pid), signal.SIGKILL)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-2000:]
    output = out + err
    assert len([l for l in output.splitlines() if "W&B failed" in l]) == 1 and "Traceback" not in output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished"
    steps = [json.loads(l)["step"] for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == summary["steps"]  # the local log went on to the end


def test_training_longer_lands_on_the_epochs_asked_for(tmp_path):
    """A resume with more epochs: compiled calls are re-cut so that no call overshoots (a
    4-epoch run in one call, resumed to 6 epochs, trains exactly 2 more)."""
    config = compose(TINY + ["trainer.epochs=4"])
    run = tmp_path / "run"
    train_and_evaluate(config, run)
    longer = {**config, "trainer": {**config["trainer"], "epochs": 6, "resume": True}}
    summary, params = trained(longer, run)
    fresh, fresh_params = trained(compose(TINY + ["trainer.epochs=6"]), tmp_path / "fresh")
    assert summary["steps"] == fresh["steps"] and summary["members"][0]["test"] == fresh["members"][0]["test"]
    for a, b in zip(jax_leaves(params, 0), jax_leaves(fresh_params, 0)):
        np.testing.assert_array_equal(a, b)
    assert (run / "summary.previous.json").exists()  # the 4-epoch summary is kept, under another name


def test_a_longer_resume_with_a_schedule_is_refused(tmp_path):
    from aejax.rundir import RunDirectory

    run = tmp_path / "run"
    (run / "checkpoints" / "2").mkdir(parents=True)
    saved = compose(TINY + ["optim.schedule=cosine"])
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(ConfigError, match="trainer.epochs=4 is not allowed on resume with optim.schedule=cosine"):
        RunDirectory.check_only(run, {**saved, "trainer": {**saved["trainer"], "epochs": 4, "resume": True}})


def test_a_run_saved_before_a_setting_existed_resumes(tmp_path):
    """A config.yaml written by an older aejax lacks the settings added since; they ran with
    their defaults, so a resume is not refused for them (but is for a real change)."""
    from aejax.rundir import resume_differences

    new = compose(TINY + ["trainer.resume=true"])
    saved = compose(TINY)
    for section, key in (("trainer", "on_divergence"), ("trainer", "eval_every"), ("trainer", "figure_formats"),
                         ("trainer", "shuffle"), ("population", "shards"), ("data", "loader")):
        saved[section].pop(key)
    assert resume_differences(saved, new) == []
    saved["population"]["shards"] = 1
    new["population"]["shards"] = 2
    assert resume_differences(saved, new) == ["population.shards: the run has 1, the command line 2"]
    new["population"]["shards"] = 1
    new["trainer"]["shuffle"] = "feistel"  # another order of the rows from here on: not the run that was saved
    assert resume_differences(saved, new) == ["trainer.shuffle: the run has 'sort', the command line 'feistel'"]
