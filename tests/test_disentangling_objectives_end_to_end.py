"""Every VAE objective trains a short population on dSprites (aejax's rendering, a small subset) through
`aejax-train`'s code path, with its own terms logged per member and its weight varied inside the program."""

import json

import numpy as np
import pytest

from aejax.run import train_and_evaluate
from conftest import compose

COMMON = ["data=dsprites", "data.train_size=256", "data.test_size=64", "trainer.epochs=1", "trainer.batch_size=32",
          "logger=none", "trainer.progress=off", "model.hidden=[64]", "model.code_size=4", "trainer.log_every=4",
          "metrics.disentanglement=false"]  # the metrics in runs: tests/test_disentanglement_runs.py

# objective preset -> (its per-member weight swept in the population, the terms it must log)
OBJECTIVES = {
    "vae": ("model.beta", [1.0, 4.0], ["kl", "nll", "neg_elbo"]),
    "beta_tc_vae": ("model.beta", [1.0, 6.0], ["kl", "tc"]),
    "factor_vae": ("model.gamma", [10.0, 40.0], ["kl", "tc", "disc_loss", "disc_acc"]),
    "dip_vae_i": ("model.lambda_od", [1.0, 10.0], ["kl", "dip_od", "dip_d"]),
    "dip_vae_ii": ("model.lambda_od", [1.0, 10.0], ["kl", "dip_od", "dip_d"]),
    "annealed_vae": ("model.c_max", [5.0, 25.0], ["kl", "capacity"]),
}


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_each_objective_trains_a_population_on_dsprites(objective, tmp_path):
    setting, values, terms = OBJECTIVES[objective]
    grid = f"+population.grid.{setting}=[{','.join(map(str, values))}]"
    summary = train_and_evaluate(compose(COMMON + [f"model={objective}", grid]), tmp_path)
    assert summary["num_members"] == 2 and summary["diverged_members"] == 0
    assert [m["hyperparameters"][setting] for m in summary["members"]] == values
    assert all(np.isfinite(m["test"]["neg_elbo"]) for m in summary["members"])
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    last = {r["member"]: r for r in rows if "train/loss" in r}
    for term in terms:
        assert all(np.isfinite(last[m][f"train/{term}"]) for m in (0, 1)), term
    # The weight is a per-member value: the two members' losses differ although their seeds are equal.
    assert last[0]["train/loss"] != last[1]["train/loss"]
    figures = {p.name for p in (tmp_path / "figures").iterdir()}
    assert {"latent_traversal.png", "kl_per_latent.png"} <= figures
