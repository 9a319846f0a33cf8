"""Shared fixtures. Tests read the real MNIST files from ../shared/data/mnist (next to the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"

os.environ.setdefault("AEJAX_DATA_ROOT", str(SHARED_MNIST))
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture
def mnist_root() -> Path:
    root = Path(os.environ["AEJAX_DATA_ROOT"])
    if not (root / "train-images-idx3-ubyte.gz").exists():
        pytest.fail(f"MNIST files not found in {root}; set AEJAX_DATA_ROOT")
    return root


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


TINY = ["data=digits", "data.train_size=256", "data.test_size=100", "trainer.epochs=2",
        "trainer.batch_size=64", "logger=none", "trainer.progress=off"]
