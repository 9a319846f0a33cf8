"""The single-vector study on a tiny configuration: a broken pipeline must fail here."""

import json

import numpy as np
import pytest

from aejax.data.mnist import load_mnist
from aejax.studies.single_vector_similarity import run
from aejax.studies.single_vector_similarity.pairs import mnist_pairs
from aejax.studies.single_vector_similarity.similarity import cosine, linear_cka, spearman_with_ci
from conftest import compose

TINY_STUDY = ["experiment=single_vector_similarity", "logger=none", "study.pairs_per_level=12",
              "study.similarities=[0.0,0.5,0.9,1.0]", "study.steps=200", "study.dataset_steps=400",
              "study.seeds=[0]", "study.mnist=false", "study.bootstrap=50", "study.probes=8"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("study")
    results = run(compose(TINY_STUDY), workdir)
    return results, dict(np.load(workdir / "pairs.npz")), workdir


def test_shared_init_at_identical_inputs_gives_identical_codes(tiny):
    _, pairs, _ = tiny
    same = pairs["synthetic/input_cos"] == 1.0
    assert same.sum() == 12
    np.testing.assert_allclose(pairs["synthetic/dist_b_shared_init"][same], 0.0, atol=1e-5)
    np.testing.assert_allclose(pairs["synthetic/b_shared_init"][same], 1.0, atol=1e-5)
    # ... which independent initialisation does not give.
    assert np.nanmean(pairs["synthetic/a_independent"][same]) < 0.5


def test_dataset_autoencoder_codes_follow_input_similarity(tiny):
    results, _, _ = tiny
    control = results["synthetic"]["conditions"]["c_dataset_ae"]["pooled"]
    assert control["rho"] > 0.5 and control["lo"] > 0.2


def test_every_single_vector_autoencoder_fits_its_vector(tiny):
    results, pairs, _ = tiny
    # A unit vector in 64-d has mean square 1/64; a fitted autoencoder is far below it.
    assert results["synthetic"]["fit"]["max_mse"] < 0.1 / 64
    assert {"mse_a1", "mse_a2_independent", "mse_a2_shared"} <= {k.split("/")[1] for k in pairs}


def test_outputs_written(tiny):
    _, _, workdir = tiny
    assert json.loads((workdir / "results.json").read_text())["settings"]["model.code_size"] == 8
    assert (workdir / "figures" / "code_vs_input.png").stat().st_size > 10_000


def test_mnist_pairs_have_the_requested_kinds(mnist_root):
    data = load_mnist(str(mnist_root), download=False)
    v1, v2, kind = mnist_pairs(np.random.default_rng(0), data["test_images"], data["test_labels"], 20, 0.05)
    assert v1.shape == v2.shape == (60, 784)
    lookup = {img.tobytes(): lab for img, lab in zip(data["test_images"], data["test_labels"])}
    labels1 = np.array([lookup[v.tobytes()] for v in v1[:40]])
    labels2 = np.array([lookup[v.tobytes()] for v in v2[:40]])
    assert (labels1[:20] == labels2[:20]).all() and (labels1[20:] != labels2[20:]).all()
    assert np.abs(v2[40:] - v1[40:]).max() > 0 and np.mean(cosine(v1[40:], v2[40:])) > 0.95


def test_linear_cka_is_basis_invariant_and_spearman_interval_covers():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6))
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert linear_cka(x, 3.0 * x @ q) == pytest.approx(1.0, abs=1e-9)
    assert linear_cka(x, rng.normal(size=(50, 6))) < 0.5
    a = rng.normal(size=300)
    stats = spearman_with_ci(a, a + 0.5 * rng.normal(size=300), rng, n_boot=200)
    assert 0.7 < stats["lo"] < stats["rho"] < stats["hi"] < 1.0


def test_the_study_called_from_python_applies_trainer_cpu_devices(tmp_path):
    """Not only through aejax-train: a count other than the one JAX runs with here is refused, before the run
    directory holds anything."""
    import jax

    from aejax.errors import ConfigError

    other = len(jax.devices("cpu")) + 1
    with pytest.raises(ConfigError, match=f"trainer.cpu_devices={other} is not allowed in this process"):
        run(compose([*TINY_STUDY, f"trainer.cpu_devices={other}"]), tmp_path / "run")
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
