"""How fast the disentanglement metrics encode observations for a population of conv VAEs.

    uv run --locked python scripts/bench_metric_encoder.py [--members 12] [--images 4096]

The study's conv VAE (model=locatello_conv_vae), M members with their own initial weights, on
random binary 64x64 images (the speed does not depend on the weights or the pixels). Baseline: the
encoder vmapped over the member axis with aejax's matmul convolutions (what training uses), 682
rows a call (8,192 member-images). Against it: `aejax.disentanglement.population_encoder`, the
metrics' encoder. Both run in this process, alternated, best of 3; the last line ends in `ratio R`.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from flax import nnx

from aejax.config import model_spec
from aejax.disentanglement import population_encoder
from aejax.models import init_params, model_graph
from bench import STUDY_VAE  # the study's conv VAE, as figure 5 trains it


def matmul_vmapped(spec, graph, params, rows: int):
    """The baseline: every member at once, vmapped, with the matmul convolutions training uses."""
    one = lambda p, x: nnx.merge(graph, p).posterior(x)  # noqa: E731
    fn = jax.jit(jax.vmap(one, in_axes=(0, None)))

    def encode(x):
        return np.concatenate([np.asarray(fn(params, x[i:i + rows])[0]) for i in range(0, len(x), rows)], axis=1)

    return encode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=12)
    parser.add_argument("--images", type=int, default=4096)
    args = parser.parse_args()
    spec = model_spec(**STUDY_VAE)
    graph = model_graph(spec, 64 * 64, (64, 64, 1))
    params = jax.vmap(lambda k: init_params(spec, 64 * 64, (64, 64, 1), k))(
        jax.random.split(jax.random.key(0), args.members))
    x = (np.random.default_rng(0).random((args.images, 64 * 64)) < 0.1).astype(np.float32)
    sides = {"vmapped matmul convs (baseline)": matmul_vmapped(spec, graph, params, 8192 // args.members),
             "population_encoder": (lambda encode: lambda x: encode(x)[0])(
                 population_encoder(spec, graph, params, {}, image_shape=(64, 64, 1)))}
    encoders = {name: (fn, fn(x[:1024])) for name, fn in sides.items()}  # compile, outside the timings
    a, b = (out for _, out in encoders.values())
    assert np.allclose(a, b, atol=1e-3), "the two encoders disagree"
    best = {name: float("inf") for name in sides}
    for _ in range(3):
        for name, (fn, _) in encoders.items():
            tic = time.perf_counter()
            fn(x)
            best[name] = min(best[name], time.perf_counter() - tic)
    rates = {name: args.members * args.images / seconds for name, seconds in best.items()}
    for name, rate in rates.items():
        print(f"{name}: {rate:,.0f} member-images/s ({args.members} members, {args.images} images, best of 3)")
    base, new = rates.values()
    print(f"metrics encoder against vmapped matmul convs, {args.members} study conv VAEs: ratio {new / base:.2f}")


if __name__ == "__main__":
    main()
