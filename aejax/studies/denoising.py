"""Denoising (Vincent et al. 2008): error against the clean input as a function of noise level.
Report: experiments/denoising.

Task `denoising` (`run`, conf/experiment/denoising.yaml): trains a population whose grid is
`model.noise_level` (level 0 is the plain autoencoder, each other level a denoising autoencoder
trained at that level), then measures, at every level, the MSE against the clean test images of
(1) the corrupted input itself, (2) the plain autoencoder applied to the corrupted input, (3) the
denoising autoencoder trained at that level. Writes denoising_curve.json and
figures/denoising_curve.png.

Task `denoising_field` (`field`, conf/experiment/denoising_field.yaml): a 2-D toy: points near a
curve in the plane; draws the trained denoising autoencoder's vector field r(x) - x over a grid
(figures/vector_field.png).
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from aejax.figures import save
from aejax.config import parse_run
from aejax.data import load_dataset
from aejax.evaluate import evaluate_population
from aejax.objectives import corrupt
from aejax.run import train_and_evaluate


def run(config: dict, workdir: Path) -> dict:
    workdir = Path(workdir)
    spec = parse_run(config)
    summary, params = train_and_evaluate({**config, "task": "train"}, workdir, return_params=True)
    data = load_dataset(spec.data)
    from aejax.models import model_graph
    from aejax.population import hyperparameter_arrays, members
    from aejax.train import member_keys

    rows = members(spec)
    graph = model_graph(spec.model, data.dim, data.image_shape)
    keys = member_keys([r["seed"] for r in rows])
    levels = sorted({r["model.noise_level"] for r in rows} - {0.0})
    plain = [i for i, r in enumerate(rows) if r["model.noise_level"] == 0.0]
    if not plain:
        from aejax.errors import ConfigError
        raise ConfigError("population.grid.model.noise_level is not allowed without 0.0; expected the plain "
                          "autoencoder (level 0) among the levels")
    x = jnp.asarray(data.test)
    out = {"corruption": spec.model.corruption, "levels": []}
    for level in levels:
        # The plain autoencoders, evaluated as if their noise level were `level`.
        hp = hyperparameter_arrays([{**rows[i], "model.noise_level": level} for i in plain])
        sub = jax.tree.map(lambda a: a[jnp.asarray(plain)], params)
        plain_mse = evaluate_population(spec.model, graph, sub, x, keys[jnp.asarray(plain)], hp)["denoise_mse"]
        dae = [m["test"]["denoise_mse"] for m, r in zip(summary["members"], rows) if r["model.noise_level"] == level]
        noisy = corrupt(x, jax.random.key(1234), spec.model.corruption, level)
        out["levels"].append({"level": level, "corrupted_input_mse": float(jnp.mean((noisy - x) ** 2)),
                              "plain_ae_mse": float(np.mean(plain_mse)), "denoising_ae_mse": float(np.mean(dae)),
                              "members_per_level": len(dae)})
    (workdir / "denoising_curve.json").write_text(json.dumps(out, indent=1))
    _plot_curve(out, workdir / "figures" / "denoising_curve.png")
    return {**summary, "denoising_curve": out}


def _plot_curve(out: dict, path: Path) -> None:
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
    save(fig, path, dpi=110)


def field(config: dict, workdir: Path) -> dict:
    workdir = Path(workdir)
    spec = parse_run(config)
    summary, params = train_and_evaluate({**config, "task": "train"}, workdir, return_params=True)
    data = load_dataset(spec.data)
    from aejax.models import member_model, model_graph

    model = member_model(model_graph(spec.model, data.dim), params)
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
    (workdir / "vector_field.json").write_text(json.dumps(result, indent=1))
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
    save(fig, workdir / "figures" / "vector_field.png", dpi=110)
    return {**summary, "vector_field": result}
