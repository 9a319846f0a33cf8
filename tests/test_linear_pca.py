"""Autoencoder against PCA: principal angles, and a linear autoencoder reaching PCA on digits."""

import json

import numpy as np
import pytest

from aejax.studies.linear_pca import principal_angles_deg, run
from conftest import compose


def test_principal_angles_known_cases():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 3))
    mix = rng.normal(size=(3, 3))
    np.testing.assert_allclose(principal_angles_deg(a, a @ mix), 0.0, atol=1e-5)  # same span, other basis
    e = np.eye(4)
    np.testing.assert_allclose(principal_angles_deg(e[:, :2], e[:, 2:]), [90.0, 90.0])
    b = np.stack([e[:, 0], np.cos(0.3) * e[:, 1] + np.sin(0.3) * e[:, 2]], 1)
    np.testing.assert_allclose(principal_angles_deg(e[:, :2], b), [0.0, np.degrees(0.3)], atol=1e-6)


def test_linear_autoencoder_reaches_pca_on_digits(tmp_path):
    config = compose(["experiment=linear_pca", "data=digits", "model.code_size=5", "trainer.epochs=300", "optim.learning_rate=0.03",
                      "trainer.batch_size=64", "logger=none", "trainer.progress=off"])
    summary = run(config, tmp_path)
    member = summary["members"][0]["test"]
    assert member["ratio_to_pca"] == pytest.approx(1.0, abs=0.01)
    assert member["largest_principal_angle_deg"] < 3.0
    assert member["sse_per_image"] / member["ratio_to_pca"] == pytest.approx(summary["study"]["pca_sse_per_image"])
    assert json.loads((tmp_path / "summary.json").read_text())["study"] == summary["study"] == {
        "code_size": 5, "pca_sse_per_image": summary["study"]["pca_sse_per_image"]}
