"""Sweeps through Hydra's submitit launcher on a real SLURM cluster (`hydra/launcher=slurm`).

They need a running cluster: `$SLURM_CONF` set and `sinfo` answering (`scripts/slurm_cluster.sh start DIR`
starts a one-node one on localhost; `.ci/run` does). Without one they skip with a one-line reason, or fail
under `CI=true`, where the cluster is part of the test environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

TRAIN = str(Path(sys.executable).with_name("aejax-train"))
TINY = [
    "data=digits",
    "data.train_size=256",
    "data.test_size=100",
    "trainer.epochs=2",
    "trainer.batch_size=64",
    "logger=none",
    "trainer.progress=off",
]
# small requests so that both jobs of a sweep fit at once on a small CI machine
SLURM = ["hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=10"]
SWEEP_TIMEOUT_S = 400


def _no_cluster(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true but no SLURM cluster: {reason} (.ci/run starts one with scripts/slurm_cluster.sh)", pytrace=False)
    pytest.skip(f"no SLURM cluster ({reason}); start one: scripts/slurm_cluster.sh start DIR")


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """The running cluster's $SLURM_CONF; skips (or fails under CI=true) without one."""
    conf = os.environ.get("SLURM_CONF")
    if not conf:
        _no_cluster("SLURM_CONF is not set")
    if shutil.which("sinfo") is None:
        _no_cluster("sinfo is not installed")
    try:
        answer = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        _no_cluster("sinfo did not answer in 30 s")
    if answer.returncode != 0:
        lines = (answer.stderr or answer.stdout).strip().splitlines()
        _no_cluster(f"sinfo failed: {lines[-1] if lines else answer.returncode}")
    states = answer.stdout.split()
    if not any(s.startswith(("idle", "mix", "alloc")) for s in states):
        _no_cluster(f"no usable node (sinfo: {' '.join(states) or 'nothing'})")
    return conf


def multirun(sweep_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    cmd = [TRAIN, "-m", *SLURM, *TINY, f"hydra.sweep.dir={sweep_dir}", *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=SWEEP_TIMEOUT_S, cwd=sweep_dir.parent)


def slurm_ids(job_dir: Path) -> dict:
    """The SLURM ids a job ran under: provenance.json's `slurm` entry."""
    provenance = job_dir / "provenance.json"
    assert provenance.is_file(), f"{job_dir} has no provenance.json"
    return json.loads(provenance.read_text())["slurm"]


def sacct_states(array_job_id: str, wait_s: float = 30.0) -> dict[str, str]:
    """SLURM's own record of an array's tasks, {"<array job>_<task>": state}, once none is still running
    (submitit returns as soon as a job has written its result, a moment before the job ends); empty
    without accounting."""
    deadline = time.monotonic() + wait_s
    while True:
        done = subprocess.run(
            ["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", str(array_job_id)], capture_output=True, text=True, timeout=30
        )
        if done.returncode != 0:
            return {}
        states = dict(line.split("|", 1) for line in done.stdout.splitlines() if "|" in line)
        if time.monotonic() > deadline or not any(s in ("PENDING", "RUNNING", "COMPLETING") for s in states.values()):
            return states
        time.sleep(0.5)


def test_sweep_runs_under_slurm_and_comes_back(slurm_cluster, tmp_path):
    sweep = tmp_path / "sweep"
    result = multirun(sweep, "model.code_size=2,3")
    assert result.returncode == 0, result.stderr[-3000:]
    for num in ("0", "1"):
        job_dir = sweep / num
        summary = json.loads((job_dir / "summary.json").read_text())
        assert summary["num_members"] == 1
        # the run saw its SLURM ids (provenance.json), submitit named the job's folder by them, and
        # SLURM's accounting has that array task COMPLETED
        ids = slurm_ids(job_dir)
        assert ids["job_id"] and str(ids["array_task_id"]) == num, ids
        assert ids["restart_count"] in (0, None), ids
        task = f"{ids['array_job_id']}_{ids['array_task_id']}"
        assert (sweep / ".submitit" / task).is_dir(), sorted(p.name for p in (sweep / ".submitit").iterdir())
        states = sacct_states(ids["array_job_id"])
        assert states.get(task, "COMPLETED") == "COMPLETED", states


def test_failed_sweep_point_fails_the_multirun_and_keeps_the_others(slurm_cluster, tmp_path):
    # aejax-train pre-checks the first value of a sweep only: the bad 0 reaches its SLURM job
    sweep = tmp_path / "sweep"
    result = multirun(sweep, "model.code_size=2,0")
    assert result.returncode == 1
    assert "aejax-train: error: 1 of 2 jobs did not finish:" in result.stderr
    assert "job 1 failed: model.code_size=0 is not allowed" in result.stderr  # its one-line reason
    assert (sweep / "0" / "summary.json").is_file()
    assert not (sweep / "1" / "summary.json").exists()
    status = json.loads((sweep / "1" / "status.json").read_text())
    assert status["status"] == "failed" and "model.code_size=0" in status["message"]


# One job with several compiled calls (one an epoch): a signal after the first lands inside training.
LONG = ["data=digits", "trainer.batch_size=128", "model.hidden=[1024,1024]", "trainer.epochs=8",
        "trainer.checkpoint_every=1", "trainer.progress=off"]


def wait_for(condition, what: str, timeout_s: float = 300, process=None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the multirun ended ({process.returncode}) before {what}: {process.stderr.read()[-2000:]}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def test_a_preempted_job_checkpoints_requeues_and_resumes_bitwise(slurm_cluster, tmp_path):
    """USR2 (what SLURM sends before the time limit, or `scancel --signal=USR2`): the run saves a
    checkpoint at the end of its compiled call, submitit requeues the job, the requeued job resumes
    in the same run dir on its own, continues the same W&B runs, and ends bitwise where an
    uninterrupted run ends."""
    import numpy as np

    from aejax.checkpoint import PopulationCheckpointer
    from aejax.wandb_records import read_records

    sweep = tmp_path / "sweep"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    process = subprocess.Popen([TRAIN, "-m", *SLURM, *LONG, "logger=wandb", "model.code_size=8",
                                f"hydra.sweep.dir={sweep}"], cwd=tmp_path, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    job = sweep / "0"
    wait_for(lambda: (read_json(job / "status.json") or {}).get("epoch", 0) >= 1, "epoch 1", process=process)
    ids = slurm_ids(job)
    task = f"{ids['array_job_id']}_{ids['array_task_id']}" if ids["array_job_id"] else ids["job_id"]
    subprocess.run(["scancel", "--signal=USR2", task], check=True, timeout=30)
    out, err = process.communicate(timeout=SWEEP_TIMEOUT_S)
    assert process.returncode == 0, err[-3000:]

    provenance = json.loads((job / "provenance.json").read_text())
    attempts = provenance["attempts"]
    assert len(attempts) == 2, attempts
    assert attempts[0]["outcome"] == "interrupted" and attempts[1]["outcome"] == "finished"
    assert attempts[1]["slurm"]["job_id"] == attempts[0]["slurm"]["job_id"]
    assert attempts[1]["slurm"]["restart_count"] == 1
    assert json.loads((job / "status.json").read_text())["status"] == "finished"
    wandb_ids = {next(r.run.run_id for r in read_records(p) if r.WhichOneof("record_type") == "run")
                 for p in job.glob("wandb/offline-run-*/run-*.wandb")}
    assert len(list(job.glob("wandb/offline-run-*"))) == 2 and len(wandb_ids) == 1  # the same W&B run, twice

    full = tmp_path / "full"  # the same run, uninterrupted, outside SLURM
    baseline = subprocess.run([TRAIN, *LONG, "logger=none", "model.code_size=8", f"hydra.run.dir={full}"], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=SWEEP_TIMEOUT_S)
    assert baseline.returncode == 0, baseline.stderr[-2000:]
    import jax

    last = 8 * json.loads((full / "status.json").read_text())["steps_per_epoch"]  # checkpoints are numbered by steps
    restored = [jax.tree.leaves(PopulationCheckpointer(r / "checkpoints").manager.restore(last)) for r in (job, full)]
    for a, b in zip(*restored):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    steps = [json.loads(l)["step"] for l in (job / "metrics.jsonl").read_text().splitlines()]
    assert steps == [json.loads(l)["step"] for l in (full / "metrics.jsonl").read_text().splitlines()]
