"""The figures of a finished run: training curves of every member, and reconstructions (for a family with a
Gaussian latent: samples, latent traversals, KL per latent) of up to SHOWN healthy members side by side."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from aejax import figures
from aejax.config import RunSpec
from aejax.data import Dataset
from aejax.latents import TRAVERSAL_VALUES, kl_per_latent, latent_order, traverse
from aejax.models import member_model, member_settings
from aejax.population import member_label, members, varied_settings

SHOWN = 4  # members side by side in the reconstruction and sample figures


def make_figures(spec: RunSpec, data: Dataset, graph, params, workdir: Path, diverged_at) -> dict:
    """Training curves (train and validation, the variant's terms, a line per member labelled
    by its values), and reconstructions (VAE: samples, latent traversals, KL per latent) of up to
    SHOWN healthy members side by side."""
    out_dir = workdir / "figures"
    out_dir.mkdir(exist_ok=True)
    figures.FORMATS[:] = list(spec.trainer.figure_formats)
    rows = members(spec)
    varied = varied_settings(rows)
    labels = {r["member"]: member_label(r, varied) for r in rows}
    shown = [i for i in range(len(rows)) if diverged_at[i] == 0][:SHOWN]
    paths = {"training_curves": figures.training_curves(workdir / "metrics.jsonl", out_dir / "training_curves.png",
                                                        labels)}
    if not shown:
        return paths
    models = [member_model(graph, params, i, member_settings(spec.model, rows[i])) for i in shown]
    titles = [labels[rows[i]["member"]] for i in shown]
    x = data.test[:10]
    recons = [np.asarray(m.decode(m.encode(jnp.asarray(x)))) for m in models]
    if data.image_shape:
        paths["reconstructions"] = figures.image_grid([x, *recons], data.image_shape, out_dir / "reconstructions.png",
                                                      ["test input", *(f"reconstruction: {t}" for t in titles)])
    else:
        paths["reconstructions"] = figures.vectors_plot([x[:4], *(r[:4] for r in recons)],
                                                        out_dir / "reconstructions.png", ["input", *titles])
    if spec.model.code_size == 2:
        codes = np.asarray(models[0].encode(jnp.asarray(data.test)))
        paths["latent_scatter"] = figures.latent_scatter(codes, data.test_labels, out_dir / "latent_scatter.png")
    if spec.model.declaration.gaussian_latent and data.image_shape:
        samples = [np.asarray(m.sample(jax.random.key(0), 10)) for m in models]
        paths["samples"] = figures.image_grid(samples, data.image_shape, out_dir / "samples.png",
                                              [f"samples: {t}" for t in titles])
    if spec.model.declaration.gaussian_latent:
        kls = [kl_per_latent(m, data.test) for m in models]
        paths["kl_per_latent"] = figures.kl_per_latent(kls, out_dir / "kl_per_latent.png", titles)
        if data.image_shape:
            dims = [latent_order(kl)[:figures.TRAVERSAL_ROWS] for kl in kls]
            grids = [traverse(m, x[:figures.TRAVERSAL_IMAGES], TRAVERSAL_VALUES, d) for m, d in zip(models, dims)]
            paths["latent_traversal"] = figures.latent_traversal(grids, dims, kls, TRAVERSAL_VALUES, data.image_shape,
                                                                 out_dir / "latent_traversal.png", titles)
    return paths
