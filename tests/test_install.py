"""The built wheel works outside the checkout: build it, install it into a fresh virtual environment (the
lock's versions), and run the default job from another folder (the Hydra configs come from the wheel)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def uv_binary() -> str:
    found = os.environ.get("UV") or shutil.which("uv")  # `uv run` sets $UV to itself
    if not found:
        pytest.skip("uv is not on PATH (the README's commands install it: pip install uv==0.13.9)")
    return found


def run(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    uv = uv_binary()
    dist, venv, elsewhere = tmp_path / "dist", tmp_path / "venv", tmp_path / "elsewhere"
    elsewhere.mkdir()
    run([uv, "build", "--wheel", "--quiet", "--out-dir", dist], cwd=REPO, timeout=300)
    (wheel,) = dist.glob("aejax-*.whl")
    requirements = tmp_path / "requirements.txt"
    run([uv, "export", "--locked", "--no-dev", "--no-hashes", "--no-emit-project", "--no-header", "--quiet",
         "--output-file", requirements], cwd=REPO, timeout=120)
    run([uv, "venv", "--quiet", "--python", Path(sys.executable), venv], cwd=tmp_path, timeout=120)
    python = venv / "bin" / "python"
    install = [uv, "pip", "install", "--quiet", "--python", python, "-r", requirements, wheel]
    # from uv's cache when it holds every package (no network), else from the index
    if subprocess.run([str(c) for c in [*install, "--offline"]], capture_output=True, cwd=tmp_path, timeout=600).returncode:
        run(install, cwd=tmp_path, timeout=600)

    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    # the package and its configs are the installed ones, not the checkout's
    where = run([python, "-c", "import aejax, aejax.paths; print(aejax.__file__); print(aejax.paths.conf_dir())"],
                cwd=elsewhere, env=env, timeout=120).stdout.split()
    assert all(Path(p).resolve().is_relative_to(venv.resolve()) for p in where), where
    assert Path(where[1], "config.yaml").is_file() and Path(where[1], "hydra", "launcher", "slurm.yaml").is_file()

    run_dir = tmp_path / "run"
    run([venv / "bin" / "aejax-train", "logger=none", "trainer.epochs=1", "data.train_size=256", "trainer.progress=off",
         f"hydra.run.dir={run_dir}"], cwd=elsewhere, env=env, timeout=600)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["num_members"] == 1
    assert not any(elsewhere.iterdir()), "the run wrote into the current folder"
