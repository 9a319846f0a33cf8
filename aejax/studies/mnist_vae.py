"""VAE test likelihood (task `mnist_vae`, report experiments/mnist_vae): negative ELBO and the
importance-sampled negative log-likelihood (Burda et al. 2016) with K samples per test image,
computed in-graph.

    log p(x) ~= log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x),   z_k ~ q(z|x)

p(z) is the model's own prior, `model.log_prior(z)`: N(0, I) for the VAE, the mixture over the
pseudo-inputs' posteriors for the VampPrior (`aejax.families.vamp`, Tomczak & Welling 2018, whose
NLL is this estimator with K = 5000).

Each member's NLL joins its test metrics in summary.json (`iwae_nll`, nats, beside `neg_elbo`);
K, the test images and the binarisation are summary.json's "study". Also draws the first
member's latent traversals and, when model.code_size=2, its 2-D latent manifold (figures/).
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from aejax.config import require
from aejax.errors import ConfigError
from aejax.families import FAMILIES
from aejax.models import member_model
from aejax.objectives import bernoulli_nll, gaussian_nll
from aejax.run import train_and_evaluate

LOG_2PI = math.log(2 * math.pi)


def iwae_nll(model, x: jax.Array, key: jax.Array, samples: int, image_chunk: int = 50,
             sample_chunk: int = 250) -> jax.Array:
    """-log p(x) for every row of `x` `(N, D)`, estimated with `samples` importance samples.

    Images go through in chunks (lax.map) and samples in chunks (lax.scan with a running
    logsumexp), so memory stays at image_chunk x sample_chunk x D whatever K is.
    """
    n, d = x.shape
    pad = (-n) % image_chunk
    xs = jnp.pad(x, ((0, pad), (0, 0))).reshape(-1, image_chunk, d)
    steps = samples // sample_chunk

    def per_chunk(args):
        xb, i = args
        mean, logvar = model.posterior(xb)
        std = jnp.exp(0.5 * logvar)

        def body(running, j):
            eps = jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, i), j), (sample_chunk, *mean.shape))
            z = mean + std * eps
            out = model.decoder(z)
            if model.likelihood == "bernoulli":
                log_px = -bernoulli_nll(out, xb)
            else:
                log_px = -gaussian_nll(out, model.log_scale[...], xb)
            log_pz = model.log_prior(z)
            log_qz = -0.5 * jnp.sum(eps**2 + LOG_2PI + logvar, axis=-1)
            return jnp.logaddexp(running, jax.nn.logsumexp(log_px + log_pz - log_qz, axis=0)), None

        total, _ = jax.lax.scan(body, jnp.full((image_chunk,), -jnp.inf), jnp.arange(steps))
        return -(total - jnp.log(steps * sample_chunk))

    return jax.lax.map(per_chunk, (xs, jnp.arange(xs.shape[0]))).reshape(-1)[:n]


def run(config: dict, workdir: Path) -> dict:
    study = {"samples": 5000, **(config.get("study") or {})}
    if set(study) != {"samples"}:
        raise ConfigError(f"study.{min(set(study) - {'samples'})} is not a setting; allowed study.* keys: samples")
    # iwae_nll draws its samples 250 at a time: any other count would be rounded down, silently.
    samples = study["samples"]
    family = (config.get("model") or {}).get("family", "autoencoder")
    with_posterior = [name for name, declared in FAMILIES.items() if declared.gaussian_latent]
    require(family in with_posterior, "model.family", family,
            f"{' or '.join(with_posterior)} for task={config.get('task')} (the NLL needs q(z|x) and a prior)")
    require(isinstance(samples, int) and not isinstance(samples, bool) and samples > 0 and samples % 250 == 0,
            "study.samples", samples, "a positive multiple of 250 (importance samples per test image)")
    return train_and_evaluate({**config, "task": "train"}, workdir, analyse=partial(analyse, samples=samples))


def analyse(spec, data, graph, params, summaries: list[dict], workdir: Path, samples: int = 5000):
    """Each member's importance-sampled test NLL, and the figures (the hook of `train_and_evaluate`)."""
    nll_fn = jax.jit(lambda p, x, k: iwae_nll(nnx.merge(graph, p), x, k, samples))
    extra = []
    for member, summary in enumerate(summaries):
        if summary["status"] != "finished":
            extra.append({})
            continue
        nll = nll_fn(jax.tree.map(lambda a: a[member], params), jnp.asarray(data.test), jax.random.key(7))
        extra.append({"iwae_nll": float(np.mean(np.asarray(nll)))})
    figures = _figures(member_model(graph, params), data, spec, workdir / "figures")
    study = {"importance_samples": samples, "test_images": len(data.test), "binarize": spec.data.binarize}
    return extra, figures, study


def _figures(model, data, spec, out: Path) -> dict:
    from aejax.figures import image_grid

    shape = data.image_shape
    # Latent traversals: from a test image's posterior mean, vary one latent unit from -3 to 3 prior
    # standard deviations about its prior mean (N(0, I): -3 to 3; the VampPrior's marginals are not).
    z0 = np.asarray(model.encode(jnp.asarray(data.test[:1])))[0]
    loc, scale = (np.asarray(a) for a in model.prior_marginals())
    units = np.argsort(-np.asarray(jnp.var(model.encode(jnp.asarray(data.test[:500])), axis=0)))[:8]
    rows = []
    for u in units:
        zs = np.repeat(z0[None], 9, 0)
        zs[:, u] = loc[u] + scale[u] * np.linspace(-3, 3, 9)
        rows.append(np.asarray(model.generate(jnp.asarray(zs))))
    paths = {"latent_traversals": image_grid(rows, shape, out / "latent_traversals.png", [f"unit {u}" for u in units])}
    if spec.model.code_size == 2:
        grid = np.linspace(-2.5, 2.5, 15)
        zs = loc + scale * np.array([[a, b] for b in grid[::-1] for a in grid], np.float32)  # in prior stds
        images = np.asarray(model.generate(jnp.asarray(zs)))
        paths["latent_manifold"] = image_grid([images[i * 15:(i + 1) * 15] for i in range(15)], shape,
                                              out / "latent_manifold.png")
    return paths
