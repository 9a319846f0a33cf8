"""Run directories written before the families were declared in their own modules (aejax at 389d629, whose
config.yaml lists every family's settings in one flat model section) still load, still collect, and still
resume. The two runs in tests/data/runs_before_families were made by that version on the bundled digits:
a 2-member sparse autoencoder and a DIP-VAE-I population sweeping lambda_od."""

import shutil

import numpy as np
import pytest
import yaml

from conftest import REPO

OLD = REPO / "tests" / "data" / "runs_before_families"


@pytest.mark.parametrize("name, member", [("sparse", 1), ("dip_vae_i", 1)])
def test_an_old_run_loads_and_reproduces_its_test_error(name, member):
    from aejax.trained import load_run

    run = load_run(OLD / name, member=member)
    test = run.data.test
    mse = float(np.mean((run.reconstruct(test) - test) ** 2))
    recorded = yaml.safe_load((OLD / name / "summary.json").read_text())["members"][member]["test"]["mse"]
    assert mse == pytest.approx(recorded, rel=1e-5)  # the same model, rebuilt from the old config.yaml


def test_an_old_runs_settings_keep_their_meaning():
    from aejax.config import parse_run

    spec = parse_run(yaml.safe_load((OLD / "dip_vae_i" / "config.yaml").read_text()))
    assert (spec.model.family, spec.model.objective) == ("vae", "dip_vae_i")
    assert spec.model.objective_settings.lambda_d_factor == 10.0
    spec = parse_run(yaml.safe_load((OLD / "sparse" / "config.yaml").read_text()))
    assert spec.model.family_settings.sparsity == "l1" and spec.model.family_settings.sparsity_weight == 0.01


def test_old_runs_collect_into_one_table():
    from aejax.results import collect

    table = collect([OLD / "sparse", OLD / "dip_vae_i"])
    assert len(table) == 4 and set(table["model.family"]) == {"autoencoder", "vae"}
    assert table["test/mse"].notna().all()


def test_an_old_run_resumes_to_train_longer(tmp_path):
    from aejax.run import train_and_evaluate

    run = tmp_path / "sparse"
    shutil.copytree(OLD / "sparse", run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["trainer"] = {**config["trainer"], "epochs": 2, "resume": True}
    summary = train_and_evaluate(config, run)
    assert summary["steps"] == 4 and all(m["status"] == "finished" for m in summary["members"])
    assert yaml.safe_load((run / "status.json").read_text())["epoch"] == 2
