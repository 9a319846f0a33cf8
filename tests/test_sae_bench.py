"""experiment=sae_bench: its six populations parse, and the analysis reads a known table right."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aejax.config import parse_run
from aejax.families.sae import ARCHITECTURES
from aejax.studies.sae_bench import at_l0
from tests.conftest import REPO, compose


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_architecture_of_the_study_is_one_valid_population(architecture):
    spec = parse_run(compose(["experiment=sae_bench", f"sae_architecture={architecture}"]))
    assert spec.model.family_settings.sae == architecture
    control = "model.k" if architecture in ("topk", "batchtopk", "matryoshka") else "model.sparsity_coefficient"
    assert list(spec.population.grid) == [control] and len(spec.population.grid[control]) == 6
    sweep = (REPO / "conf" / "experiment" / "sae_bench.yaml").read_text()
    assert architecture in sweep.split("sae_architecture:")[-1]


def table(rows):
    return pd.DataFrame([{"architecture": a, "control": c, "l0": l0, "test/mcc": m} for a, c, l0, m in rows])


def test_metrics_at_an_l0_are_interpolated_in_log_l0_and_never_extrapolated():
    t = table([("topk", 10, 10.0, 0.5), ("topk", 40, 40.0, 0.9), ("relu", 1, 30.0, 0.4), ("relu", 2, 60.0, 0.2)])
    got = at_l0(t, 20.0, metrics=("mcc",))
    np.testing.assert_allclose(got.loc["topk", "mcc"], 0.5 + 0.4 * np.log(2) / np.log(4), rtol=1e-9)
    assert np.isnan(got.loc["relu", "mcc"])  # 20 lies below relu's members: no extrapolation


def test_seeds_are_averaged_before_interpolating():
    t = table([("topk", 10, 10.0, 0.4), ("topk", 10, 10.0, 0.6), ("topk", 40, 40.0, 0.9)])
    np.testing.assert_allclose(at_l0(t, 10.0, metrics=("mcc",)).loc["topk", "mcc"], 0.5)
