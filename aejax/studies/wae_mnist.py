"""WAE-MMD against the VAE on MNIST (task `wae_mnist`, report experiments/wae_mnist): sample quality.

Trains the configured model (the WAE by default; `model=vae` for the VAE at the same network and code
size) and adds to each member's test metrics:
- `frechet_distance`: between `study.samples` images decoded from z ~ N(0, I) and the test images, in the
  feature space of an MLP classifier trained here on the training images (`aejax.frechet`; not the
  Inception FID, whose numbers it cannot be compared with);
- `sample_mmd`: the unbiased MMD (`aejax.families.wae.mmd`, imq kernel) between `study.mmd_images`
  samples and as many test images, in pixel space, sigma^2 = the test images' mean per-pixel variance.
The study record holds the classifier's test accuracy and two floors measured the same way: the training
images against the test images (what a perfect sampler would score), and each member's reconstructions.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from aejax.config import require
from aejax.errors import ConfigError
from aejax.families import FAMILIES
from aejax.families.wae import mmd
from aejax.frechet import features, frechet_distance, train_classifier
from aejax.models import member_model
from aejax.run import train_and_evaluate

DEFAULTS = {"samples": 10000, "mmd_images": 2000, "classifier_epochs": 5}


def run(config: dict, workdir: Path) -> dict:
    study = {**DEFAULTS, **(config.get("study") or {})}
    for key, value in study.items():
        if key not in DEFAULTS:
            raise ConfigError(f"study.{key} is not a setting; allowed study.* keys: {', '.join(DEFAULTS)}")
        require(isinstance(value, int) and not isinstance(value, bool) and value >= (2 if key != "classifier_epochs"
                                                                                       else 1),
                f"study.{key}", value, "an integer >= 2" if key != "classifier_epochs" else "an integer >= 1")
    require(study["samples"] >= max(study["mmd_images"], 40), "study.samples", study["samples"],
            f"an integer >= study.mmd_images={study['mmd_images']} and >= 40 (the MMD's samples and the sample grids)")
    family = (config.get("model") or {}).get("family", "autoencoder")
    samplers = [name for name, declared in FAMILIES.items() if declared.gaussian_latent or name == "wae"]
    require(family in samplers, "model.family", family,
            f"{' or '.join(samplers)} for task=wae_mnist (models with a prior to sample from)")
    return train_and_evaluate({**config, "task": "train"}, workdir, analyse=partial(analyse, **study))


def analyse(spec, data, graph, params, summaries: list[dict], workdir: Path, samples: int = 10000,
            mmd_images: int = 2000, classifier_epochs: int = 5):
    from aejax.figures import image_grid

    if data.train_labels is None or data.image_shape is None:
        raise ConfigError(f"data.name={data.name!r} is not allowed; expected labelled images (mnist) for task=wae_mnist")
    classifier, accuracy = train_classifier(data.train, data.train_labels, data.test, data.test_labels,
                                            epochs=classifier_epochs)
    feats = jax.jit(partial(features, classifier))
    test_feats = np.asarray(feats(jnp.asarray(data.test)))
    n_mmd = min(mmd_images, len(data.test))
    test_mmd = jnp.asarray(data.test[:n_mmd])
    bandwidth = float(np.mean(np.var(data.test, axis=0)))
    pixel_mmd = jax.jit(lambda a: mmd(a, test_mmd, "imq", bandwidth))
    floor = data.train[:len(data.test)]
    study = {"classifier": f"MLP {data.train.shape[1]}-256-128-10, features: the 128 ReLU units",
             "classifier_test_accuracy": accuracy, "samples": samples, "mmd_images": n_mmd,
             "mmd_bandwidth": bandwidth, "classifier_epochs": classifier_epochs,
             "train_vs_test_frechet": frechet_distance(np.asarray(feats(jnp.asarray(floor))), test_feats),
             "train_vs_test_mmd": float(pixel_mmd(jnp.asarray(data.train[-n_mmd:])))}
    extra, grids, titles = [], [], []
    for member, summary in enumerate(summaries):
        if summary["status"] != "finished":
            extra.append({})
            continue
        model = member_model(graph, params, member)
        images = model.sample(jax.random.key(1000 + member), samples)
        recon = model.decode(model.encode(jnp.asarray(data.test)))
        extra.append({"frechet_distance": frechet_distance(np.asarray(feats(images)), test_feats),
                      "sample_mmd": float(pixel_mmd(images[:n_mmd])),
                      "reconstruction_frechet": frechet_distance(np.asarray(feats(recon)), test_feats)})
        grids += [np.asarray(images[k * 10:(k + 1) * 10]) for k in range(4)]
        titles += [f"member {member} samples"] + [""] * 3
    figures = {"sample_grid": image_grid(grids, data.image_shape, workdir / "figures" / "sample_grid.png", titles)}
    return extra, figures, study
