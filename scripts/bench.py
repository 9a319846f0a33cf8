"""Throughput benchmark: every figure is measured in this run and reported against a baseline
measured in the same run on the same machine.

    uv run python scripts/bench.py --data-root ../shared/data/mnist [--quick]

1. Matmul peak (float32 GFLOP/s, 2048^3): the baseline for (2).
2. MNIST, MLP 784-1000-500-250-30 with a mirrored decoder, batch 256, Adam: training
   samples/s and the fraction of the matmul peak reached, counting 6 x (weights) FLOPs per
   sample (forward 2, backward 4).
   A shared 2-core host drifts by +-15% over seconds, so (1) and (2) are sampled in
   alternation -- peak, epoch, peak, epoch, ... -- and each is the total work over the total
   time of its own samples: both see the same conditions.
3. 4096 single-vector autoencoders (d=64, code 8, tanh, Adam) trained together for 500 steps:
   member-steps/s, against the same members trained one at a time (a Python loop over a
   jitted single-member program), the baseline a notebook would use.
4. The price of masking divergence (trainer.on_divergence=mask, the default for populations):
   16 members of a small (64-256-32) and of the MNIST-sized MLP (784-1000-500-250-32), batch 128,
   member-steps/s with the per-step select against the same program without it.

`--figures 4` (or `1,2,3`) runs only those figures (1 and 2 always go together).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Callable


def _cpu_devices_from_argv(default: int) -> int:
    """--cpu-devices must act before JAX starts, so it is read here, ahead of argparse."""
    if "--cpu-devices" in sys.argv:
        return int(sys.argv[sys.argv.index("--cpu-devices") + 1])
    return default


# One XLA CPU device per core: the population's member axis is split across them (aejax.train).
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           f" --xla_force_host_platform_device_count={_cpu_devices_from_argv(os.cpu_count())}")

import jax
import jax.numpy as jnp

PEAK_SAMPLES = 4  # 2048^3 matmuls between two epochs (about 0.5 s)


def timed(fn) -> float:
    tic = time.perf_counter()
    fn()
    return time.perf_counter() - tic


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up: compilation is not throughput
    return min(timed(fn) for _ in range(repeats))


def matmul(n: int = 2048) -> tuple[Callable, float]:
    """A jitted n x n float32 matmul, and its FLOPs."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    f = jax.jit(lambda a, b: a @ b)
    return lambda: f(a, b).block_until_ready(), 2 * n**3


def build(model_overrides: dict, data_dim: int, n_train: int, batch: int, seeds, per_member_data: bool,
          mask_divergence: bool = False):
    from aejax.config import ModelSpec, OptimSpec
    from aejax.models import init_params, model_graph
    from aejax.objectives import make_loss
    from aejax.optim import make_optimizer
    from aejax.train import compile_population, init_population, make_member_program, make_step, member_keys

    spec = ModelSpec(**model_overrides)
    graph = model_graph(spec, data_dim)
    optimizer = make_optimizer(OptimSpec(learning_rate=1e-3), 10_000)
    # Norms every 100 steps, as `aejax-train` computes them for trainer.log_every=100.
    program = compile_population(make_member_program(make_step(make_loss(spec, graph), optimizer), n_train, batch,
                                                     norms_every=100, mask_divergence=mask_divergence),
                                 shared_data=not per_member_data)
    keys = member_keys(seeds)
    state = init_population(lambda k: init_params(spec, data_dim, None, k), optimizer, keys)
    hp = {k: jnp.full((len(seeds),), v, jnp.float32) for k, v in
          dict(learning_rate=1e-3, sparsity_weight=0.0, noise_level=0.0, beta=1.0, contractive_weight=0.0).items()}
    return program, state, keys, hp


def mnist_mlp(data_root: str) -> tuple[Callable, int, int]:
    """A call that trains one epoch of MNIST (234 steps of 256), the weight count, samples an epoch."""
    from aejax.data.mnist import load_mnist

    x = jnp.asarray(load_mnist(data_root, download=False)["train_images"])
    hidden = (1000, 500, 250)
    program, initial, keys, hp = build(
        dict(hidden=hidden, code_size=30, activation="relu", code_activation="linear"), 784, len(x), 256, [0], False)
    sizes = [784, *hidden, 30]
    weights = 2 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    state = {"now": initial}

    def one_epoch():
        state["now"], terms = program(state["now"], keys, x, hp, 0, 1)
        jax.block_until_ready(terms)

    return one_epoch, weights, (len(x) // 256) * 256


def mlp_against_peak(data_root: str, rounds: int) -> dict:
    """Alternate peak samples and MNIST epochs; see the module docstring."""
    peak_call, peak_flops = matmul()
    epoch, weights, samples_per_epoch = mnist_mlp(data_root)
    peak_call(), epoch()  # compile
    peak_times, epoch_times = [timed(peak_call) for _ in range(PEAK_SAMPLES)], []
    for _ in range(rounds):
        epoch_times.append(timed(epoch))
        peak_times += [timed(peak_call) for _ in range(PEAK_SAMPLES)]
    peak = len(peak_times) * peak_flops / sum(peak_times) / 1e9
    samples = rounds * samples_per_epoch / sum(epoch_times)
    flops_per_sample = 6 * weights
    # Per round: the epoch against the peak samples just before and just after it.
    around = [2 * PEAK_SAMPLES * peak_flops / sum(peak_times[i * PEAK_SAMPLES:(i + 2) * PEAK_SAMPLES]) / 1e9
              for i in range(rounds)]
    per_round = [samples_per_epoch * flops_per_sample / t / 1e9 / p for t, p in zip(epoch_times, around)]
    fastest_peak = peak_flops / min(peak_times) / 1e9
    fastest_epoch = samples_per_epoch * flops_per_sample / min(epoch_times) / 1e9
    return dict(peak=peak, samples=samples, weights=weights, fraction=samples * flops_per_sample / 1e9 / peak,
                per_round=per_round, fastest_peak=fastest_peak, best_against_best=fastest_epoch / fastest_peak)


def single_vector_population(members: int, steps: int, repeats: int) -> float:
    vectors = jax.random.normal(jax.random.key(0), (members, 1, 64))
    model = dict(hidden=(), code_size=8, activation="tanh", code_activation="tanh", output_activation="linear")
    program, initial, keys, hp = build(model, 64, 1, 1, list(range(members)), True)
    seconds = best_of(lambda: jax.block_until_ready(program(initial, keys, vectors, hp, 0, steps)), repeats)
    return members * steps / seconds


def single_vector_loop(members: int, steps: int) -> float:
    """Baseline: the same members trained one after another, each by its own jitted call."""
    vectors = jax.random.normal(jax.random.key(0), (members, 1, 64))
    model = dict(hidden=(), code_size=8, activation="tanh", code_activation="tanh", output_activation="linear")
    program, initial, keys, hp = build(model, 64, 1, 1, [0], True)
    jax.block_until_ready(program(initial, keys, vectors[:1], hp, 0, steps))  # compile
    tic = time.perf_counter()
    for m in range(members):
        jax.block_until_ready(program(initial, keys, vectors[m:m + 1], hp, 0, steps))
    return members * steps / (time.perf_counter() - tic)


def masking_cost(repeats: int, dim: int, hidden: tuple, members: int = 16, epochs: int = 20) -> tuple[float, float]:
    """Member-steps/s of a population with and without the divergence mask (figure 4)."""
    x = jax.random.uniform(jax.random.key(0), (1280, dim))
    rates = []
    for mask in (False, True):
        program, initial, keys, hp = build({"hidden": hidden}, dim, len(x), 128, list(range(members)), False,
                                           mask_divergence=mask)
        seconds = best_of(lambda: jax.block_until_ready(program(initial, keys, x, hp, 0, epochs)), repeats)
        rates.append(members * epochs * (len(x) // 128) / seconds)
    return rates[0], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=os.environ.get("AEJAX_DATA_ROOT"))
    parser.add_argument("--quick", action="store_true", help="fewer repeats (for a smoke test)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--cpu-devices", type=int, default=os.cpu_count(),
                        help="XLA CPU devices to split populations across (default: one per core)")
    parser.add_argument("--figures", default="1,2,3,4", help="which figures to measure, e.g. 4")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    wanted = set(args.figures.split(","))
    results = {}

    print(f"devices: {jax.device_count()} x {jax.devices()[0].device_kind}, jax {jax.__version__}, cpus {os.cpu_count()}")
    if wanted & {"1", "2"}:
        figures_1_and_2(args, results)
    if "3" in wanted:
        figure_3(repeats, results)
    if "4" in wanted:
        for dim, hidden, epochs in ((64, (256,), 20), (784, (1000, 500, 250), 2)):
            plain, masked = masking_cost(repeats + 2, dim, hidden, epochs=epochs)
            shape = "-".join(map(str, (dim, *hidden, 32)))
            print(f"4. 16 members {shape} (mirrored), batch 128: divergence masked {masked:,.0f} member-steps/s; "
                  f"without the mask {plain:,.0f}; ratio {masked / plain:.2f}")
            results[f"masked_over_unmasked_{shape}"] = masked / plain
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


def figures_1_and_2(args, results: dict) -> None:
    rounds = 2 if args.quick else 8
    mlp = mlp_against_peak(args.data_root, rounds)
    print(f"1. matmul peak (float32, 2048^3): {mlp['peak']:.1f} GFLOP/s "
          f"(mean of {PEAK_SAMPLES * (rounds + 1)} samples taken around the epochs of 2.; "
          f"fastest sample {mlp['fastest_peak']:.0f})")
    print(f"2. MNIST MLP 784-1000-500-250-30 (x2 mirrored, {mlp['weights']:,} weights), batch 256, Adam: "
          f"{mlp['samples']:,.0f} samples/s = {mlp['samples'] * 6 * mlp['weights'] / 1e9:.1f} GFLOP/s = "
          f"{mlp['fraction']:.0%} of matmul peak "
          f"(each epoch against the peak samples around it: {', '.join(f'{r:.0%}' for r in mlp['per_round'])}; "
          f"fastest epoch against fastest peak sample: {mlp['best_against_best']:.0%})")
    results.update(matmul_gflops=mlp["peak"], mnist_samples_per_s=mlp["samples"], mnist_fraction_of_peak=mlp["fraction"],
                   mnist_fraction_per_epoch=mlp["per_round"],
                   mnist_fastest_epoch_against_fastest_peak=mlp["best_against_best"])


def figure_3(repeats: int, results: dict) -> None:
    members, steps = 4096, 500
    rate = single_vector_population(members, steps, repeats)
    loop_members = 32
    loop_rate = single_vector_loop(loop_members, steps)
    print(f"3. {members} single-vector autoencoders (64-8-64 tanh, Adam, {steps} steps): "
          f"{rate:,.0f} member-steps/s; one-at-a-time loop ({loop_members} members): "
          f"{loop_rate:,.0f} member-steps/s; ratio {rate / loop_rate:.0f}x")
    results.update(population_member_steps_per_s=rate, loop_member_steps_per_s=loop_rate)


if __name__ == "__main__":
    main()
