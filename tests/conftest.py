"""Shared fixtures. Tests read the real MNIST files from $AEJAX_DATA_ROOT, else ../shared/data/mnist
(next to the checkout), else the user cache folder that aejax's own downloader fills (SHA-256
checked): `aejax.data.cache.cache_dir("mnist")`, the folder `data=mnist` itself falls back to."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# The suite compiles the same small programs many times over (every run builds its own step, in this
# process or in an `aejax-train` subprocess, which inherits these variables). JAX's persistent compilation
# cache lets every compile after the first read the executable back: the same program, the same results.
# One folder per pytest invocation, made by the first process (xdist's workers inherit it) and removed
# when that process ends; set before JAX is imported. A user's own JAX_COMPILATION_CACHE_DIR wins.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _jax_cache = tempfile.mkdtemp(prefix="aejax-tests-jax-cache-")
    atexit.register(shutil.rmtree, _jax_cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _jax_cache
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # the default, 1 s, skips most of ours

import pytest  # noqa: E402

from aejax.data.cache import cache_dir  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"
MNIST_CACHE = cache_dir("mnist")  # ~/.cache/aejax/mnist: the one training uses too

if "AEJAX_DATA_ROOT" not in os.environ:
    os.environ["AEJAX_DATA_ROOT"] = str(SHARED_MNIST if (SHARED_MNIST / "SHA256SUMS").exists() else MNIST_CACHE)
os.environ.setdefault("WANDB_SILENT", "true")


def ensure_mnist(root: Path) -> Path:
    """The four IDX files in `root`, fetched by aejax's downloader if missing; every one SHA-256 checked.
    Raises ConfigError with one line when they are neither there nor downloadable."""
    from aejax.data.mnist import FILES, verified_path
    from aejax.errors import ConfigError

    try:
        for key in FILES:
            verified_path(root, key, download=True)
    except ConfigError as err:
        raise ConfigError(f"MNIST files are not in AEJAX_DATA_ROOT={root} and could not be downloaded there "
                          f"({str(err).split(';')[0]}); set AEJAX_DATA_ROOT to a folder with the four IDX files") from None
    return root


@pytest.fixture
def mnist_root() -> Path:
    from aejax.errors import ConfigError

    try:
        return ensure_mnist(Path(os.environ["AEJAX_DATA_ROOT"]))
    except ConfigError as err:
        pytest.fail(str(err), pytrace=False)


def compose(overrides: list[str]) -> dict:
    """The resolved config `aejax-train` would run with these overrides (no Hydra run dir)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = hydra_compose("config", overrides=overrides)
    config = OmegaConf.to_container(cfg, resolve=False)
    config["name"] = config.get("name") if "${" not in str(config.get("name")) else "test"
    return OmegaConf.to_container(OmegaConf.create(config), resolve=True)


def trained(config: dict, workdir: Path) -> tuple[dict, dict]:
    """Train a run and read back what it left: its summary and its members' final parameters, from its
    last checkpoint (leading axis = member), as a user's `load_run` would."""
    from aejax.restore import restore_population
    from aejax.run import train_and_evaluate

    summary = train_and_evaluate(config, workdir)
    return summary, restore_population(workdir).params


def pretend_killed(run: Path, epoch: int) -> None:
    """Make a finished run directory look like one killed (kill -9) after its checkpoint at
    `epoch`: no summary, later checkpoints gone, status.json still "running"."""
    import json
    import shutil

    (run / "summary.json").unlink()
    status = json.loads((run / "status.json").read_text())
    step = epoch * status["steps_per_epoch"]  # checkpoints are numbered by steps done
    for checkpoint in (run / "checkpoints").iterdir():
        if checkpoint.name.isdigit() and int(checkpoint.name) > step:
            shutil.rmtree(checkpoint)
    (run / "status.json").write_text(json.dumps({**status, "status": "running", "epoch": epoch, "step": step}))


TINY = ["data=digits", "data.train_size=256", "data.test_size=100", "trainer.epochs=2",
        "trainer.batch_size=64", "logger=none", "trainer.progress=off"]


@pytest.fixture(scope="session")
def finished_digits_run(tmp_path_factory) -> Path:
    """A finished TINY run on the digits (labelled 8x8 images, 8-unit code), shared by the report tests."""
    from aejax.run import train_and_evaluate

    workdir = tmp_path_factory.mktemp("digits_run")
    train_and_evaluate(compose(TINY + ["model.code_size=8"]), workdir)
    return workdir


def run_report(name: str, args: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    """Run experiments/<name>/make_report.py in this process (as `python make_report.py ARGS`):
    (exit status, stdout, stderr)."""
    import runpy
    import sys

    script = REPO / "experiments" / name / "make_report.py"
    monkeypatch.setattr(sys, "argv", [str(script), *args])
    try:
        runpy.run_path(str(script), run_name="__main__")
        status = 0
    except SystemExit as exit_:
        status = exit_.code or 0
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_each_is_one_config_line(cases) -> None:
    """Each (description, case, setting): a DataSpec to check and load, or a callable, must raise one
    ConfigError line that names `setting` and what is allowed."""
    from aejax.data import load_dataset
    from aejax.config import DataSpec
    from aejax.errors import ConfigError

    for description, case, setting in cases:
        with pytest.raises(ConfigError) as err:
            if isinstance(case, DataSpec):
                case.check()
                load_dataset(case)
            else:
                case()
        message = str(err.value)
        assert message.startswith(setting + "=") and "\n" not in message, (description, message)
        assert "not allowed" in message and "expected" in message, (description, message)
