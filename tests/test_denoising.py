"""Denoising studies on small data: the denoising autoencoder must beat the plain one on noisy input."""

import json

import pytest

from aejax.errors import ConfigError
from aejax.studies.denoising import field, run
from conftest import compose


def test_denoising_autoencoder_beats_plain_on_corrupted_digits(tmp_path):
    config = compose(["experiment=denoising", "data=digits", "model.corruption=mask", "model.hidden=[128]",
                      "model.code_size=64", "population.grid.model.noise_level=[0.0,0.4]", "trainer.epochs=40",
                      "trainer.batch_size=64", "logger=none", "trainer.progress=off"])
    summary = run(config, tmp_path)
    (level,) = summary["study"]["levels"]
    assert level["level"] == 0.4
    assert level["denoising_ae_mse"] < 0.8 * level["plain_ae_mse"]
    assert level["denoising_ae_mse"] < level["corrupted_input_mse"]
    assert (tmp_path / "figures" / "denoising_curve.png").exists()
    assert json.loads((tmp_path / "summary.json").read_text())["study"] == summary["study"]


def test_vector_field_points_back_to_the_curve(tmp_path):
    config = compose(["experiment=denoising_field", "trainer.epochs=60", "logger=none", "trainer.progress=off"])
    result = field(config, tmp_path)["study"]
    assert result["fraction_closer"] > 0.9
    assert result["mean_distance_after"] < 0.3 * result["mean_distance_before"]


def test_a_curve_without_the_plain_autoencoder_is_refused_before_training(tmp_path):
    config = compose(["experiment=denoising", "data=digits", "population.grid.model.noise_level=[0.1,0.4]",
                      "logger=none", "trainer.progress=off"])
    with pytest.raises(ConfigError, match="population.grid.model.noise_level is not allowed without 0.0"):
        run(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
