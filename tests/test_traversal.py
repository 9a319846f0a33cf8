"""Latent traversals of VAE runs: the arrays from `load_run(...).traverse`, the KL per latent that
orders them, and the two figures every VAE run draws."""

import numpy as np
import pytest

from aejax.errors import ConfigError
from aejax.run import train_and_evaluate
from aejax.trained import TRAVERSAL_VALUES, load_run
from conftest import TINY, compose

LATENTS = 5


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    """A finished 2-member VAE run on the digits (8x8 images) and the figure paths its run reported."""
    import aejax.run

    workdir = tmp_path_factory.mktemp("vae")
    overrides = TINY + ["model=vae", "population.seeds=2", "model.hidden=[16]", f"model.code_size={LATENTS}",
                        "trainer.epochs=1", "trainer.figure_formats=[png,svg]"]
    reported = {}
    make_figures = aejax.run.make_figures
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aejax.run, "make_figures", lambda *a: reported.update(make_figures(*a)) or reported)
        train_and_evaluate(compose(overrides), workdir)
    return workdir, reported


def test_a_vae_run_draws_traversals_and_kl_bars_for_each_member(vae_run):
    workdir, reported = vae_run
    names = {p.name for p in (workdir / "figures").iterdir()}
    for name in ("latent_traversal", "kl_per_latent"):
        assert {f"{name}.png", f"{name}.svg"} <= names, name
        assert reported[name] == workdir / "figures" / f"{name}.png"  # the paths that go to W&B
        text = (workdir / "figures" / f"{name}.svg").read_text()
        assert ">s0</text>" in text and ">s1</text>" in text, name  # both members, labelled by seed
    assert "largest first" in (workdir / "figures" / "latent_traversal.svg").read_text()


def _numpy_kl(mean, logvar):
    """KL(N(m, s^2) || N(0, 1)) = -log s + (s^2 + m^2) / 2 - 1/2, averaged over images."""
    s = np.exp(0.5 * logvar.astype(np.float64))
    return np.mean(-np.log(s) + (s ** 2 + mean.astype(np.float64) ** 2) / 2 - 0.5, axis=0)


def test_traverse_sets_each_latent_in_kl_order(vae_run):
    workdir, _ = vae_run
    run = load_run(workdir, member=1)
    x = run.data.test[:3]
    grid = run.traverse(x)
    assert grid.shape == (3, LATENTS, len(TRAVERSAL_VALUES), run.data.dim)

    mean_all, logvar_all = run.posterior(run.data.test)
    kl = _numpy_kl(mean_all, logvar_all)
    np.testing.assert_allclose(run.kl_per_latent(run.data.test), kl, rtol=1e-4, atol=1e-6)
    order = np.argsort(-kl)
    assert len(set(np.round(kl, 5))) == LATENTS  # distinct: the order is well defined
    mean = run.posterior(x)[0]
    for r, d in enumerate(order):  # row r sets latent order[r] to each value; the rest stay at the mean
        z = np.repeat(mean[:, None, :], len(TRAVERSAL_VALUES), axis=1)
        z[:, :, d] = TRAVERSAL_VALUES
        expected = run.decode(z.reshape(-1, LATENTS)).reshape(3, len(TRAVERSAL_VALUES), -1)
        np.testing.assert_allclose(grid[:, r], expected, atol=1e-5)
    assert not np.allclose(grid[:, 0, 0], grid[:, 0, -1])  # the largest-KL latent changes the image


def test_setting_a_latent_to_its_own_mean_gives_the_reconstruction(vae_run):
    workdir, _ = vae_run
    run = load_run(workdir, member=0)
    x = run.data.test[:1]
    mean = run.posterior(x)[0][0]
    for d in range(LATENTS):
        out = run.traverse(x, values=[mean[d], 2.0], dims=[d])
        assert out.shape == (1, 1, 2, run.data.dim)
        np.testing.assert_allclose(out[0, 0, 0], run.reconstruct(x)[0], atol=1e-5)


def test_bad_traversal_requests_raise_one_line(vae_run):
    workdir, _ = vae_run
    run = load_run(workdir, member=0)
    x = run.data.test[:2]
    expected = rf"dims=\[{LATENTS}\] is not allowed; expected latent indices 0 to {LATENTS - 1}$"
    with pytest.raises(ConfigError, match=expected):
        run.traverse(x, dims=[LATENTS])
    with pytest.raises(ConfigError, match=r"values of shape \(2, 2\) is not allowed"):
        run.traverse(x, values=np.zeros((2, 2)))


def test_an_autoencoder_run_has_no_traversal(finished_digits_run):
    run = load_run(finished_digits_run)
    for method, call in [("traverse", lambda: run.traverse(run.data.test[:2])),
                         ("kl_per_latent", lambda: run.kl_per_latent(run.data.test))]:
        with pytest.raises(ConfigError) as err:
            call()
        assert str(err.value) == (f"{method} needs a VAE run (model.family=vae); this run has "
                                  "model.family=autoencoder, which has no posterior q(z|x)")


def test_a_vae_on_flat_data_gets_the_kl_bars_only(tmp_path):
    config = compose(["data=synthetic", "data.num_samples=300", "trainer.epochs=1", "trainer.batch_size=64",
                      "logger=none", "trainer.progress=off", "model=vae", "model.likelihood=gaussian",
                      "model.hidden=[16]", "model.code_size=3"])
    train_and_evaluate(config, tmp_path)
    names = {p.name for p in (tmp_path / "figures").iterdir()}
    assert "kl_per_latent.png" in names and "latent_traversal.png" not in names
