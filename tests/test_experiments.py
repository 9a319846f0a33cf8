"""Every experiment config composes and runs end to end, shrunk to a few steps on tiny data."""

import json
from pathlib import Path

import pytest

from aejax.rundir import RUN_FILES
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
                                         "num_variance_estimate:100,beta_vae:{num_train:20},factor_vae:{num_train:20}}"],
               # The VampPrior's 500 pseudo-inputs and 5,000 importance samples, at a size of seconds.
               "vampprior_mnist": ["model.pseudo_inputs=10", "model.hidden=[32]", "study.samples=250"],
               # the WAE study: 200 prior samples for its Frechet distance, its classifier trained one pass
               "wae_mnist": ["study.samples=200", "study.mmd_images=50", "study.classifier_epochs=1"],
               "iwae_mnist": ["data.val_fraction=0.001"]}  # 60 validation images for its per-epoch curve


@pytest.mark.parametrize("name", [e for e in EXPERIMENTS if e not in STUDIES])
def test_experiment_runs(name, tmp_path):
    """A study's results are in summary.json ("study", and each member's test metrics), the last
    result file it writes (after it only the run directory's own files change)."""
    config = compose([f"experiment={name}", *SHRINK, *MORE_SHRINK.get(name, [])])
    assert config["name"] == name
    summary = load_task(config["task"])(config, tmp_path)
    assert (tmp_path / "summary.json").exists()
    for member in summary["members"]:
        assert member["test"]["mse"] > 0
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["num_members"] == summary["num_members"]
    assert ("study" in written) == (config["task"] != "train") and written.get("study") == summary.get("study")
    last = (tmp_path / "summary.json").stat().st_mtime_ns
    later = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
             if p.is_file() and p.name not in (*RUN_FILES, ".lock") and p.stat().st_mtime_ns > last]
    assert not later, f"written after summary.json: {later}"


def test_a_study_has_one_name():
    """conf/experiment/<name>.yaml with a study's task names the task after itself, and the study's
    report is experiments/<name>/ (denoising_field is the denoising study's second experiment)."""
    import yaml

    from aejax.config import parse_run
    from aejax.tasks import FORMER_NAMES

    second = {"denoising_field": "denoising"}
    for name in EXPERIMENTS:
        task = yaml.safe_load((REPO / "conf" / "experiment" / f"{name}.yaml").read_text()).get("task", "train")
        assert task in ("train", name), f"conf/experiment/{name}.yaml: task {task}, expected {name}"
        assert task == "train" or (REPO / "experiments" / second.get(name, name) / "README.md").exists(), name
    assert not set(FORMER_NAMES) & set(EXPERIMENTS)
    for old, new in FORMER_NAMES.items():  # a run directory's config.yaml written under the old name still loads
        assert load_task(old) is load_task(new) and parse_run(compose([f"task={old}"])).name


def test_there_are_experiments():
    assert len(EXPERIMENTS) >= 4
