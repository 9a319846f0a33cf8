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
5. The conv VAE of Locatello et al.'s study (conf/model/locatello_conv_vae.yaml: 64x64x1, conv
   32-32-64-64, kernels 4, 4, 2, 2, stride 2, dense 256, 10 latents, Bernoulli logits), Adam 1e-4,
   batch 64, on random binary images: aejax's engine with E = 1, 4 and 16 members in one program
   (member-samples/s) against torch eager training the same model (samples/s). The line gives E = 4
   and 16 against torch's single model (the target at E = 16 is 1.5) and ends with E = 1's ratio.
6. aejax's `model=conv` (28x28x1, conv 16-32, 3x3, stride 2, linear code 32, sigmoid output,
   squared error), Adam 1e-3, batch 64, on the first 12,800 MNIST images (random binary images
   without --data-root): aejax's engine against torch eager training the same model.
   In 5 and 6 torch uses every core (torch.set_num_threads(os.cpu_count())) and PyTorch's default
   initialisation (speed does not depend on it); both sides train on 12,800 examples, reshuffled
   every epoch. The sides' timing rounds alternate (torch, aejax E=1, torch, aejax E=4, ...), each
   round at least ROUND_SECONDS, each side's rate its total samples over its total time, so both see
   the same conditions. One aejax call trains CHUNK_STEPS steps (one compiled call, compiled before
   the timing); a torch chunk is as many steps in a Python loop. They need torch (the `bench`
   dependency group): `uv sync --locked --group bench`.

7. Sparse autoencoders (model=sae) against SAELens's trainer (torch, CPU) on the same synthetic rows:
   one SAE, a population of 16, the cost of TopK's selection, MCC and FVU at equal steps
   (scripts/bench_sae.py has the details and its own size options). Only on request (`--figures 7`
   or `sae`); needs the `bench` dependency group (torch, sae-lens).

8. IWAE with k = 50 importance samples (Burda et al.'s one-stochastic-layer network: 784-200-200 tanh to
   50 latents, the decoder mirrored, Bernoulli logits; model=iwae), Adam 1e-3, batch 64, on the first 12,800
   MNIST images binarised once (random binary images without --data-root): aejax's engine with E = 1 and
   4 members (each k = 50) against torch eager training the same model, whose loss is the same bound
   -log (1/k) sum_j w_j. The line gives E = 4 against torch's single model and ends with E = 1's ratio
   (goal 1.5). Timing as in 5 and 6; needs torch (the `bench` group). `--figures 8` or `iwae`.

`--figures 4` (or `1,2,3`, or `conv` for 5 and 6) runs only those figures (1 and 2 always go together).
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
import numpy as np

PEAK_SAMPLES = 4  # 2048^3 matmuls between two epochs (about 0.5 s)
CONV_BATCH, CONV_STEPS_PER_EPOCH = 64, 200  # figures 5 and 6: batch 64, epochs of 200 steps (12,800 examples)
CHUNK_STEPS = 20     # steps one aejax call (and one torch chunk) trains: seconds, not minutes, at conv rates;
                     # it divides the epoch, so no call crosses an epoch's end
ROUND_SECONDS = 12.0  # a timing round repeats its side's chunks until at least this long
TORCH_MISSING = ("figures 5, 6 and 8 need torch: uv sync --locked --group bench (on this machine: uv pip install "
                 "/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl)")


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
          mask_divergence: bool = False, image_shape: tuple | None = None, learning_rate: float = 1e-3):
    """The compiled population program, its initial state, member keys and per-member hyperparameters."""
    from aejax.config import OptimSpec, member_hyperparameters, model_spec
    from aejax.models import init_params, model_graph
    from aejax.models import make_loss
    from aejax.optim import make_optimizer
    from aejax.train import (compile_population, init_population, make_member_program, make_step, member_keys,
                             population_block)

    spec = model_spec(**model_overrides)
    graph = model_graph(spec, data_dim, image_shape)
    optimizer = make_optimizer(OptimSpec(learning_rate=learning_rate), 10_000)
    # Norms every 100 steps, as `aejax-train` computes them for trainer.log_every=100.
    program = compile_population(make_member_program(make_step(make_loss(spec, graph), optimizer), n_train, batch,
                                                     norms_every=100, mask_divergence=mask_divergence),
                                 shared_data=not per_member_data, block=population_block(spec.architecture))
    keys = member_keys(seeds)
    state = init_population(lambda k: init_params(spec, data_dim, image_shape, k), optimizer, keys)
    # Every member hyperparameter at the spec's value (the learning rate: the optimiser's).
    names = [key.split(".")[-1] for key in member_hyperparameters(spec)]
    hp = {name: jnp.full((len(seeds),), learning_rate if name == "learning_rate" else spec.get(name), jnp.float32)
          for name in names}
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
        state["now"], terms = program(state["now"], keys, x, hp, 0, 1, len(x) // 256)
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
    seconds = best_of(lambda: jax.block_until_ready(program(initial, keys, vectors, hp, 0, steps, 1)), repeats)
    return members * steps / seconds


def single_vector_loop(members: int, steps: int) -> float:
    """Baseline: the same members trained one after another, each by its own jitted call."""
    vectors = jax.random.normal(jax.random.key(0), (members, 1, 64))
    model = dict(hidden=(), code_size=8, activation="tanh", code_activation="tanh", output_activation="linear")
    program, initial, keys, hp = build(model, 64, 1, 1, [0], True)
    jax.block_until_ready(program(initial, keys, vectors[:1], hp, 0, steps, 1))  # compile
    tic = time.perf_counter()
    for m in range(members):
        jax.block_until_ready(program(initial, keys, vectors[m:m + 1], hp, 0, steps, 1))
    return members * steps / (time.perf_counter() - tic)


def masking_cost(repeats: int, dim: int, hidden: tuple, members: int = 16, epochs: int = 20) -> tuple[float, float]:
    """Member-steps/s of a population with and without the divergence mask (figure 4)."""
    x = jax.random.uniform(jax.random.key(0), (1280, dim))
    rates = []
    for mask in (False, True):
        program, initial, keys, hp = build({"hidden": hidden}, dim, len(x), 128, list(range(members)), False,
                                           mask_divergence=mask)
        seconds = best_of(lambda: jax.block_until_ready(program(initial, keys, x, hp, 0, epochs, len(x) // 128)),
                          repeats)
        rates.append(members * epochs * (len(x) // 128) / seconds)
    return rates[0], rates[1]


# ----------------------------------------------------------------------------- figures 5 and 6: conv against torch
STUDY_VAE = dict(family="vae", architecture="conv", channels=(32, 32, 64, 64), kernel_sizes=(4, 4, 2, 2), strides=(2,),
                 dense=(256,), decoder_kernel_sizes=(4,), code_size=10, init="glorot_uniform")
MNIST_CONV = dict(architecture="conv", channels=(16, 32), kernel_sizes=(3,), strides=(2,), code_size=32)


def random_binary(n: int, dim: int):
    return (np.random.default_rng(0).random((n, dim), dtype=np.float32) < 0.5).astype(np.float32)


def aejax_chunk(model: dict, image_shape: tuple | None, x, members: int, learning_rate: float, chunk_steps: int,
                batch: int = CONV_BATCH) -> Callable:
    """A call that trains every member `chunk_steps` steps (one compiled call) and returns the member-samples.
    Calls follow each other through the epochs; none crosses an epoch's end. `x`: `(N, H*W*C)`, a jax array."""
    n = len(x)
    # The same steps a call for every population: each member shuffles its epoch once a call (a
    # permutation of the 12,800 examples, 4.1 ms on 2 cores: scripts/bench_conv_pieces.py), 0.5% of a
    # 20-step call. With fewer steps a call for larger populations (2 for E = 16, as before) it was 5%.
    program, state, keys, hp = build(model, x.shape[1], n, batch, list(range(members)), False,
                                     image_shape=image_shape, learning_rate=learning_rate)
    # Compiled ahead of the first call, as `aejax-train` runs it (aejax.run). Called through `jax.jit`
    # instead, the second call would compile again: the state it gets back is sharded over the member
    # axis, the initial state is not, and jit's cache tells them apart (the first timed round of E = 4
    # and 16 then held a recompilation).
    program = program.lower(state, keys, x, hp, 0, 1, chunk_steps).compile()
    steps_per_epoch = n // batch
    per_epoch = steps_per_epoch // chunk_steps
    now = {"state": state, "calls": 0}

    def chunk() -> int:
        calls = now["calls"]
        first_step = (calls // per_epoch) * steps_per_epoch + (calls % per_epoch) * chunk_steps
        now["state"], terms = program(now["state"], keys, x, hp, first_step)
        jax.block_until_ready(terms)
        now["calls"] += 1
        return members * chunk_steps * batch

    return chunk


def torch_chunk(model, loss, x, learning_rate: float, chunk_steps: int) -> Callable:
    """The torch side of `aejax_chunk`: `chunk_steps` eager Adam steps of batch 64, reshuffled every epoch."""
    import torch

    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(0)
    steps_per_epoch = len(x) // CONV_BATCH
    now = {"step": 0, "perm": None}

    def chunk() -> int:
        for _ in range(chunk_steps):
            i = now["step"] % steps_per_epoch
            if i == 0:
                now["perm"] = torch.randperm(len(x), generator=generator)
            batch = x[now["perm"][i * CONV_BATCH:(i + 1) * CONV_BATCH]]
            optimizer.zero_grad(set_to_none=True)
            loss(model, batch).backward()
            optimizer.step()
            now["step"] += 1
        return chunk_steps * CONV_BATCH

    return chunk


def torch_study_vae():
    """Figure 5's model in torch (NCHW): SAME padding of a 4x4 stride-2 conv on an even side is 1 on
    each side, of a 2x2 stride-2 conv 0; a SAME 4x4 stride-2 transposed conv is ConvTranspose2d(padding=1)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    encoder = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(),
                            nn.Conv2d(32, 64, 2, 2), nn.ReLU(), nn.Conv2d(64, 64, 2, 2), nn.ReLU(), nn.Flatten(),
                            nn.Linear(1024, 256), nn.ReLU(), nn.Linear(256, 20))
    decoder = nn.Sequential(nn.Linear(10, 256), nn.ReLU(), nn.Linear(256, 1024), nn.ReLU(), nn.Unflatten(1, (64, 4, 4)),
                            nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(64, 32, 4, 2, 1),
                            nn.ReLU(), nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1))
    model = nn.ModuleDict(dict(encoder=encoder, decoder=decoder))

    def loss(model, x):  # the negative ELBO (beta = 1), as aejax's beta_vae: sums over pixels and latents, batch mean
        mean, logvar = model["encoder"](x).chunk(2, dim=1)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        nll = F.binary_cross_entropy_with_logits(model["decoder"](z), x, reduction="none").sum((1, 2, 3))
        kl = 0.5 * (torch.exp(logvar) + mean ** 2 - 1.0 - logvar).sum(1)
        return (nll + kl).mean()

    return model, loss


def torch_mnist_conv():
    """Figure 6's model in torch: SAME 3x3 stride-2 convs (padding 1: the same output sides as TensorFlow's
    SAME), and SAME 3x3 stride-2 transposed convs = ConvTranspose2d(padding=1, output_padding=1)."""
    from torch import nn

    model = nn.Sequential(nn.Conv2d(1, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(7 * 7 * 32, 32),
                          nn.Linear(32, 7 * 7 * 32), nn.ReLU(), nn.Unflatten(1, (32, 7, 7)),
                          nn.ConvTranspose2d(32, 16, 3, 2, 1, output_padding=1), nn.ReLU(),
                          nn.ConvTranspose2d(16, 1, 3, 2, 1, output_padding=1), nn.Sigmoid())
    return model, lambda model, x: ((model(x) - x) ** 2).sum((1, 2, 3)).mean()


IWAE_K = 50
# Figure 8's model (the setting names are aejax/families/iwae.py's).
IWAE = dict(family="iwae", hidden=(200, 200), activation="tanh", code_size=50, init="glorot_uniform", k=IWAE_K)


def torch_iwae(k: int = IWAE_K):
    """Figure 8's model in torch: 784-200-200-(50 + 50) tanh encoder, 50-200-200-784 decoder (Bernoulli logits);
    the loss is the negative IWAE bound with k samples, batch mean, as aejax's."""
    import math

    import torch
    from torch import nn
    from torch.nn import functional as F

    encoder = nn.Sequential(nn.Linear(784, 200), nn.Tanh(), nn.Linear(200, 200), nn.Tanh(), nn.Linear(200, 100))
    decoder = nn.Sequential(nn.Linear(50, 200), nn.Tanh(), nn.Linear(200, 200), nn.Tanh(), nn.Linear(200, 784))
    model = nn.ModuleDict(dict(encoder=encoder, decoder=decoder))
    log_2pi = math.log(2 * math.pi)

    def loss(model, x):
        mean, logvar = model["encoder"](x).chunk(2, dim=1)
        eps = torch.randn(k, *mean.shape)
        z = mean + torch.exp(0.5 * logvar) * eps                                   # (k, B, 50)
        logits = model["decoder"](z)                                               # (k, B, 784)
        log_px = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
        log_pz = -0.5 * (z ** 2 + log_2pi).sum(-1)
        log_qz = -0.5 * (eps ** 2 + log_2pi + logvar).sum(-1)
        bound = torch.logsumexp(log_px + log_pz - log_qz, dim=0) - math.log(k)
        return -bound.mean()

    return model, loss


def figure_8(data_root: str | None, rounds: int, round_seconds: float, chunk_steps: int, results: dict) -> None:
    import torch

    torch.manual_seed(0)
    n = CONV_BATCH * CONV_STEPS_PER_EPOCH
    if data_root:
        from aejax.data.mnist import load_mnist

        pixels = load_mnist(data_root, download=False)["train_images"][:n]
        x = (np.random.default_rng(0).random(pixels.shape, dtype=np.float32) < pixels).astype(np.float32)
        data = "MNIST binarised once"
    else:
        x, data = random_binary(n, 28 * 28), "random binary images"
    model, loss = torch_iwae()
    sides = {"torch": torch_chunk(model, loss, torch.from_numpy(x), 1e-3, chunk_steps)}
    populations = (1, 4)
    for members in populations:
        sides[members] = aejax_chunk(IWAE, None, jnp.asarray(x), members, 1e-3, chunk_steps)
    peaks = matmul_peaks(torch)  # before and after the rounds: the host drifts
    rates, single, ratios = populations_against_torch(sides, populations, rounds, round_seconds, "iwae", results)
    peaks = {side: before + after for (side, before), after in zip(peaks.items(), matmul_peaks(torch).values())}
    alone = iwae_matmuls_alone(torch, CONV_BATCH, IWAE_K)
    step = iwae_step_flops(CONV_BATCH, IWAE_K)
    gflops = {"torch": single / CONV_BATCH * step / 1e9, "aejax": rates[1][0] / CONV_BATCH * step / 1e9}
    peak = {side: float(np.mean(v)) / 1e9 for side, v in peaks.items()}
    results.update({"iwae_step_gflop": step / 1e9, "iwae_gflops": gflops, "matmul_peak_gflops": peak,
                    "matmul_peak_samples_gflops": {k: [p / 1e9 for p in v] for k, v in peaks.items()},
                    "iwae_matmuls_alone_ms": {k: v * 1e3 for k, v in alone.items()}})
    print(f"8. IWAE k={IWAE_K} (784-200-200 tanh, 50 latents, Bernoulli), batch {CONV_BATCH}, Adam 1e-3, {data}: "
          f"torch {torch.__version__} eager ({torch.get_num_threads()} threads) {single:,.0f} samples/s; "
          f"aejax E=4 {rates[4][0]:,.0f} member-samples/s ({ratios[4]:.2f}x torch single); "
          f"aejax E=1 {rates[1][0]:,.0f} samples/s: ratio {ratios[1]:.2f}")
    print(f"   the step's matmuls are {step / 1e9:.2f} GFLOP: torch {gflops['torch']:.0f} GFLOP/s, aejax "
          f"{gflops['aejax']:.0f}; a 2048^3 float32 matmul in the same run: XLA {peak['xla']:.0f} GFLOP/s, torch "
          f"{peak['torch']:.0f} (mean of {len(peaks['xla'])} samples); 1.5x torch would need "
          f"{1.5 * gflops['torch']:.0f} GFLOP/s, {1.5 * gflops['torch'] / peak['xla']:.0%} of XLA's matmul rate")
    step_ms = {"torch": CONV_BATCH / single * 1e3, "aejax": CONV_BATCH / rates[1][0] * 1e3}
    print(f"   a step: torch {step_ms['torch']:.1f} ms, aejax {step_ms['aejax']:.1f} ms; its matmuls alone (the "
          f"step's shapes, best of 8): XLA {alone['xla'] * 1e3:.1f} ms, torch {alone['torch'] * 1e3:.1f} ms; "
          f"1.5x torch allows {step_ms['torch'] / 1.5:.1f} ms a step for everything")


def iwae_step_flops(batch: int, k: int, encoder=(784, 200, 200, 100), decoder=(50, 200, 200, 784)) -> int:
    """Matmul FLOPs of one IWAE training step (figure 8's network): the forward pass (the decoder on k x batch
    rows), and backward the weight gradients of every layer and the input gradients of every layer but the
    first (x needs none). Elementwise work (tanh, the Bernoulli log-likelihood, Adam) is not counted."""
    layers = lambda dims: sum(a * b for a, b in zip(dims[:-1], dims[1:]))  # noqa: E731
    forward = batch * layers(encoder) + k * batch * layers(decoder)
    return 2 * (3 * forward - batch * encoder[0] * encoder[1])


def iwae_matmul_layers(batch: int, k: int, encoder=(784, 200, 200, 100), decoder=(50, 200, 200, 784)):
    """(rows, fan_in, fan_out, needs the input's gradient) of every dense layer of figure 8's step."""
    layers = [(batch, a, b, i > 0) for i, (a, b) in enumerate(zip(encoder[:-1], encoder[1:]))]
    return layers + [(k * batch, a, b, True) for a, b in zip(decoder[:-1], decoder[1:])]


def iwae_matmuls_alone(torch, batch: int, k: int, samples: int = 8) -> dict:
    """Seconds (best of `samples`) of the step's matmuls alone, each side's own: for every layer the forward
    x @ W, the weight gradient x^T @ G and the input gradient G @ W^T, on random arrays of the step's shapes,
    all in one jitted function (XLA) or one after another (torch). What a step costs with no elementwise work."""
    rng = np.random.default_rng(0)
    arrays = [tuple(rng.standard_normal(shape, dtype=np.float32) for shape in ((r, a), (a, b), (r, b)))
              for r, a, b, _ in iwae_matmul_layers(batch, k)]
    needs = [n for *_, n in iwae_matmul_layers(batch, k)]

    def products(mm, transpose, arrays):
        out = []
        for (x, w, g), need in zip(arrays, needs):
            out += [mm(x, w), mm(transpose(x), g)] + ([mm(g, transpose(w))] if need else [])
        return out

    on_xla = jax.jit(lambda arrays: products(jnp.matmul, jnp.transpose, arrays))
    xla_arrays = jax.tree.map(jnp.asarray, arrays)
    torch_arrays = [tuple(torch.from_numpy(a) for a in layer) for layer in arrays]
    xla = lambda: jax.block_until_ready(on_xla(xla_arrays))  # noqa: E731
    on_torch = lambda: products(torch.mm, torch.t, torch_arrays)  # noqa: E731
    xla(), on_torch()
    return {"xla": min(timed(xla) for _ in range(samples)), "torch": min(timed(on_torch) for _ in range(samples))}


def matmul_peaks(torch, samples: int = 8, n: int = 2048) -> dict:
    """FLOP/s of `samples` n x n float32 matmuls each, XLA's (jitted) and torch's, alternated."""
    xla, flops = matmul(n)
    a, b = torch.randn(n, n), torch.randn(n, n)
    on_torch = lambda: torch.mm(a, b)  # noqa: E731
    xla(), on_torch()
    out = {"xla": [], "torch": []}
    for _ in range(samples):
        out["xla"].append(flops / timed(xla))
        out["torch"].append(flops / timed(on_torch))
    return out


def populations_against_torch(sides: dict, populations: tuple, rounds: int, round_seconds: float, prefix: str,
                              results: dict) -> tuple[dict, float, dict]:
    """Alternate torch's rounds with each population's; record `<prefix>_*` in `results`. Returns the rates,
    torch's samples/s and each population's ratio to it (figures 5 and 8)."""
    rates = alternate(sides, [name for _ in range(rounds) for e in populations for name in ("torch", e)], round_seconds)
    single = rates["torch"][0]
    ratios = {e: rates[e][0] / single for e in populations}
    results.update({f"{prefix}_torch_samples_per_s": single, f"{prefix}_torch_per_round": rates["torch"][1],
                    f"{prefix}_member_samples_per_s": {str(e): rates[e][0] for e in populations},
                    f"{prefix}_per_round": {str(e): rates[e][1] for e in populations},
                    f"{prefix}_ratio": {str(e): ratios[e] for e in populations}})
    return rates, single, ratios


def alternate(sides: dict, order: list, round_seconds: float) -> dict:
    """Run the sides' rounds in `order` (names of `sides`, each a chunk call returning its samples); a round
    repeats its chunk until `round_seconds` have passed. Each side is called once first (compilation,
    warm-up). Returns name -> (samples/s over all its rounds, each round's samples/s)."""
    for chunk in sides.values():
        chunk()
    done = {name: [] for name in sides}
    for name in order:
        samples, tic = 0, time.perf_counter()
        while time.perf_counter() - tic < round_seconds or not samples:
            samples += sides[name]()
        done[name].append((samples, time.perf_counter() - tic))
    return {name: (sum(s for s, _ in rounds) / sum(t for _, t in rounds), [s / t for s, t in rounds])
            for name, rounds in done.items()}


def figure_5(rounds: int, round_seconds: float, chunk_steps: int, results: dict) -> None:
    import torch

    torch.manual_seed(0)
    x = random_binary(CONV_BATCH * CONV_STEPS_PER_EPOCH, 64 * 64)
    model, loss = torch_study_vae()
    sides = {"torch": torch_chunk(model, loss, torch.from_numpy(x).view(-1, 1, 64, 64), 1e-4, chunk_steps)}
    populations = (1, 4, 16)
    x_jax = jnp.asarray(x)
    for members in populations:
        sides[members] = aejax_chunk(STUDY_VAE, (64, 64, 1), x_jax, members, 1e-4, chunk_steps)
    rates, single, ratios = populations_against_torch(sides, populations, rounds, round_seconds, "conv_vae", results)
    print(f"5. conv VAE of Locatello et al. (64x64x1, conv 32-32-64-64, dense 256, 10 latents), batch 64, Adam 1e-4, "
          f"random binary images: torch {torch.__version__} eager ({torch.get_num_threads()} threads) "
          f"{single:,.0f} samples/s; aejax E=4 {rates[4][0]:,.0f} member-samples/s ({ratios[4]:.2f}x torch single), "
          f"E=16 {rates[16][0]:,.0f} member-samples/s ({ratios[16]:.2f}x torch single; target 1.5); "
          f"aejax E=1 {rates[1][0]:,.0f} samples/s: ratio {ratios[1]:.2f}")


def figure_6(data_root: str | None, rounds: int, round_seconds: float, chunk_steps: int, results: dict) -> None:
    import torch

    torch.manual_seed(0)
    n = CONV_BATCH * CONV_STEPS_PER_EPOCH
    if data_root:
        from aejax.data.mnist import load_mnist

        x, data = load_mnist(data_root, download=False)["train_images"][:n], "MNIST"
    else:
        x, data = random_binary(n, 28 * 28), "random binary images"
    model, loss = torch_mnist_conv()
    sides = {"torch": torch_chunk(model, loss, torch.from_numpy(x).view(-1, 1, 28, 28), 1e-3, chunk_steps),
             "aejax": aejax_chunk(MNIST_CONV, (28, 28, 1), jnp.asarray(x), 1, 1e-3, chunk_steps)}
    rates = alternate(sides, ["torch", "aejax"] * rounds, round_seconds)
    ratio = rates["aejax"][0] / rates["torch"][0]
    print(f"6. model=conv (28x28x1, conv 16-32 3x3 stride 2, code 32), batch 64, Adam 1e-3, {data}: "
          f"torch {torch.__version__} eager ({torch.get_num_threads()} threads) {rates['torch'][0]:,.0f} samples/s; "
          f"aejax {rates['aejax'][0]:,.0f} samples/s; ratio {ratio:.2f}")
    results.update(mnist_conv_torch_samples_per_s=rates["torch"][0], mnist_conv_torch_per_round=rates["torch"][1],
                   mnist_conv_samples_per_s=rates["aejax"][0], mnist_conv_per_round=rates["aejax"][1],
                   mnist_conv_ratio=ratio)


def conv_figures(args, wanted: set, results: dict) -> None:
    try:
        import torch
    except ImportError:
        print(TORCH_MISSING)
        return
    torch.set_num_threads(os.cpu_count())
    # Denormal floats flushed to zero, as XLA's CPU code does: without it torch's IWAE slowed round after round
    # (742 to 407 samples/s) as its tanh network's small values turned denormal.
    torch.set_flush_denormal(True)
    # --quick: one chunk of 2 steps a round (a smoke test of the code, not a measurement).
    rounds, round_seconds, chunk_steps = (2, 0.0, 2) if args.quick else (3, ROUND_SECONDS, CHUNK_STEPS)
    if "5" in wanted:
        figure_5(rounds, round_seconds, chunk_steps, results)
    if "6" in wanted:
        figure_6(args.data_root, rounds, round_seconds, chunk_steps, results)
    if "8" in wanted:
        figure_8(args.data_root, rounds, round_seconds, chunk_steps, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=os.environ.get("AEJAX_DATA_ROOT"))
    parser.add_argument("--quick", action="store_true", help="fewer repeats (for a smoke test)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--cpu-devices", type=int, default=os.cpu_count(),
                        help="XLA CPU devices to split populations across (default: one per core)")
    parser.add_argument("--figures", default="1,2,3,4,5,6",
                        help="which figures to measure, e.g. 4 (conv: 5 and 6; sae: 7 and iwae: 8, only on request)")
    import bench_sae  # figure 7 (scripts/ is on the path when this file runs as a script)

    bench_sae.add_arguments(parser)
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    wanted = set(args.figures.replace("conv", "5,6").replace("sae", "7").replace("iwae", "8").split(","))
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
    if wanted & {"5", "6", "8"}:
        conv_figures(args, wanted, results)
    if "7" in wanted:
        bench_sae.figure_7(args, results)
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
