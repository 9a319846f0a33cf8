"""Denoising (Vincent et al. 2008): error against the clean input as a function of noise level.
Report: experiments/denoising.

Task `denoising` (`run`, conf/experiment/denoising.yaml): trains a population whose grid is
`model.noise_level` (level 0 is the plain autoencoder, each other level a denoising autoencoder
trained at that level), then measures, at every level, the MSE against the clean test images of
(1) the corrupted input itself, (2) the plain autoencoder applied to the corrupted input, (3) the
denoising autoencoder trained at that level: summary.json's "study", and figures/denoising_curve.png.

Task `denoising_field` (`field`, conf/experiment/denoising_field.yaml): a 2-D toy: points near a
curve in the plane; draws the trained denoising autoencoder's vector field r(x) - x over a grid
(figures/vector_field.png) and measures whether it points back to the data (summary.json's "study").
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from aejax.config import ConfigError, parse_run
from aejax.evaluate import evaluate_population
from aejax.figures import save
from aejax.objectives import corrupt
from aejax.population import hyperparameter_arrays, members
from aejax.run import train_and_evaluate
from aejax.train import member_keys


def run(config: dict, workdir: Path) -> dict:
    if all(r["model.noise_level"] != 0.0 for r in members(parse_run(config))):
        raise ConfigError("population.grid.model.noise_level is not allowed without 0.0; expected the plain "
                          "autoencoder (level 0) among the levels")
    return train_and_evaluate({**config, "task": "train"}, workdir, analyse=analyse_curve)


def analyse_curve(spec, data, graph, params, summaries: list[dict], workdir: Path):
    """The three errors at every level (the hook of `train_and_evaluate`): nothing per member."""
    rows = members(spec)
    keys = member_keys([r["seed"] for r in rows])
    levels = sorted({r["model.noise_level"] for r in rows} - {0.0})
    plain = [i for i, r in enumerate(rows) if r["model.noise_level"] == 0.0]
    x = jnp.asarray(data.test)
    out = {"corruption": spec.model.corruption, "levels": []}
    for level in levels:
        # The plain autoencoders, evaluated as if their noise level were `level`.
        hp = hyperparameter_arrays([{**rows[i], "model.noise_level": level} for i in plain])
        sub = jax.tree.map(lambda a: a[jnp.asarray(plain)], params)
        plain_mse = evaluate_population(spec.model, graph, sub, x, keys[jnp.asarray(plain)], hp)["denoise_mse"]
        dae = [m["test"]["denoise_mse"] for m, r in zip(summaries, rows)
               if r["model.noise_level"] == level and m["status"] == "finished"]
        noisy = corrupt(x, jax.random.key(1234), spec.model.corruption, level)
        out["levels"].append({"level": level, "corrupted_input_mse": float(jnp.mean((noisy - x) ** 2)),
                              "plain_ae_mse": float(np.mean(plain_mse)), "denoising_ae_mse": float(np.mean(dae)),
                              "members_per_level": len(dae)})
    figure = _plot_curve(out, workdir / "figures" / "denoising_curve.png")
    return [{} for _ in rows], {"denoising_curve": figure}, out


def _plot_curve(out: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [r["level"] for r in out["levels"]]
    fig, ax = plt.subplots(figsize=(4.5, 3.3))
    for key, label in (("corrupted_input_mse", "corrupted input"), ("plain_ae_mse", "plain autoencoder"),
                       ("denoising_ae_mse", "denoising AE trained at that level")):
        ax.plot(levels, [r[key] for r in out["levels"]], "o-", label=label)
    ax.set_xlabel("noise level (sigma)" if out["corruption"] == "gaussian" else f"{out['corruption']} fraction")
    ax.set_ylabel("MSE against the clean test image")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(exist_ok=True)
    return save(fig, path, dpi=110)


def field(config: dict, workdir: Path) -> dict:
    return train_and_evaluate({**config, "task": "train"}, workdir, analyse=analyse_field)


def analyse_field(spec, data, graph, params, summaries: list[dict], workdir: Path):
    """The vector field of the first member over a grid (the hook of `train_and_evaluate`)."""
    from aejax.models import member_model

    model = member_model(graph, params)
    lo, hi = data.train.min(0) - 0.3, data.train.max(0) + 0.3
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 15), np.linspace(lo[1], hi[1], 15))
    grid = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)
    step = np.asarray(model.decode(model.encode(jnp.asarray(grid)))) - grid
    # Does the field point back to the data? Compare the distance to the nearest training point
    # before and after one application of r.
    def nearest(p):
        return np.sqrt(((p[:, None, :] - data.train[None, :2000, :]) ** 2).sum(-1)).min(1)
    before, after = nearest(grid), nearest(grid + step)
    result = {"grid_points": len(grid), "mean_distance_before": float(before.mean()),
              "mean_distance_after": float(after.mean()), "fraction_closer": float(np.mean(after < before))}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(data.train[:, 0], data.train[:, 1], s=2, color="tab:grey", alpha=0.5, label="training data")
    ax.quiver(grid[:, 0], grid[:, 1], step[:, 0], step[:, 1], angles="xy", scale_units="xy", scale=1,
              color="tab:red", width=0.004, headwidth=4, alpha=0.8, label="r(x) - x (true length)")
    ax.set_aspect("equal")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    (workdir / "figures").mkdir(exist_ok=True)
    figure = save(fig, workdir / "figures" / "vector_field.png", dpi=110)
    return [{} for _ in summaries], {"vector_field": figure}, result
