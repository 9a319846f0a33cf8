"""Every experiment config composes and runs end to end, shrunk to a few steps on tiny data."""

import json
from pathlib import Path

import pytest

from aejax.tasks import load_task
from conftest import REPO, compose

EXPERIMENTS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))
SHRINK = ["trainer.epochs=1", "data.train_size=64", "data.test_size=50", "trainer.batch_size=32",
          "logger=none", "trainer.progress=off", "trainer.checkpoint_every=0"]
STUDIES = {"single_vector_similarity"}  # not aejax-train runs: tested in their own files
# Experiments with more to shrink: the disentanglement study's first objective at 2 members (conv VAEs) and
# metric sizes of a few hundred points (its six jobs are listed in tests/test_disentanglement_runs.py).
MORE_SHRINK = {"disentanglement": ["population.seeds=1", "population.grid.model.beta=[1,16]", "metrics.mode=fast",
                                         "++metrics.sizes={num_train:100,num_test:50,num_eval:10,batch_size:8,"
                                         "num_variance_estimate:100,beta_vae:{num_train:20},factor_vae:{num_train:20}}"]}


@pytest.mark.parametrize("name", [e for e in EXPERIMENTS if e not in STUDIES])
def test_experiment_runs(name, tmp_path):
    config = compose([f"experiment={name}", *SHRINK, *MORE_SHRINK.get(name, [])])
    assert config["name"] == name
    summary = load_task(config["task"])(config, tmp_path)
    assert (tmp_path / "summary.json").exists()
    for member in summary["members"]:
        assert member["test"]["mse"] > 0
    assert json.loads((tmp_path / "summary.json").read_text())["num_members"] == summary["num_members"]


def test_there_are_experiments():
    assert len(EXPERIMENTS) >= 4
