"""Forward and backward time of each conv layer of the study's VAE, in each lowering, inside `lax.scan`.

    uv run --locked python scripts/bench_conv_layers.py

Each layer of Locatello et al.'s conv VAE (batch 64) is differentiated in a 4-step `lax.scan`, as the
engine runs steps: by `aejax.nets.conv_matmul` (`auto`, the form `valid_conv` picks), by each of its two
matmul forms forced (`gather`: im2col; `scatter`: a matmul per input pixel, then shifted sums), and by
XLA's own convolution (`xla`, `lax.conv_general_dilated` / `lax.conv_transpose`). Milliseconds per
step, the best of 3 calls. The per-layer table in README Speed ("Why the convolutions are matmuls") comes from
this script.
"""

from __future__ import annotations

import functools
import time
from unittest import mock

import jax
import jax.numpy as jnp
from jax import lax

from aejax.nets import conv_matmul

BATCH, STEPS, REPEATS = 64, 4, 3
DN = ("NHWC", "HWIO", "NHWC")
VALID_CONV = conv_matmul.valid_conv
ENCODER = [(64, 1, 32, 4), (32, 32, 32, 4), (16, 32, 64, 2), (8, 64, 64, 2)]  # input side, C_in, C_out, kernel
DECODER = [(4, 64, 64, 4), (8, 64, 32, 4), (16, 32, 32, 4), (32, 32, 1, 4)]


def ms_per_step(layer, x, w) -> float:
    """One scanned step: the gradient of sum(tanh(layer(x, w))) with respect to both, w updated."""
    grad = jax.grad(lambda w, x: jnp.sum(jnp.tanh(layer(x, w))), (0, 1))

    def steps(w, x):
        def step(w, _):
            dw, dx = grad(w, x)
            return w - 1e-3 * dw - 1e-9 * jnp.sum(dx), None
        return lax.scan(step, w, None, length=STEPS)[0]

    return best_ms_per_step(steps, STEPS, REPEATS, w, x)


def best_ms_per_step(steps, n_steps: int, repeats: int, *args) -> float:
    """Milliseconds a step of `steps(*args)` (a jitted scan of `n_steps`), the best of `repeats` calls after one
    that compiles."""
    run = jax.jit(steps)
    jax.block_until_ready(run(*args))
    best = float("inf")
    for _ in range(repeats):
        tic = time.perf_counter()
        jax.block_until_ready(run(*args))
        best = min(best, time.perf_counter() - tic)
    return best / n_steps * 1e3


def lowerings(transpose: bool) -> dict:
    ours = conv_matmul.conv_transpose2d if transpose else conv_matmul.conv2d
    xla = ((lambda x, w: lax.conv_transpose(x, w, (2, 2), "SAME", dimension_numbers=DN)) if transpose else
           (lambda x, w: lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=DN)))

    def forced(form):
        def layer(x, w):
            with mock.patch.object(conv_matmul, "valid_conv", functools.partial(VALID_CONV, form=form)):
                return ours(x, w, 2)
        return layer

    return {"auto": lambda x, w: ours(x, w, 2), "gather": forced("gather"), "scatter": forced("scatter"), "xla": xla}


def main() -> None:
    print(f"ms per step (forward + backward), batch {BATCH}, {jax.devices()[0].device_kind}, jax {jax.__version__}")
    print(f"{'layer':<28}" + "".join(f"{name:>9}" for name in ("auto", "gather", "scatter", "xla")))
    key = jax.random.key(0)
    for transpose, layers in ((False, ENCODER), (True, DECODER)):
        for side, c_in, c_out, k in layers:
            x = jax.random.normal(key, (BATCH, side, side, c_in))
            w = 0.1 * jax.random.normal(key, (k, k, c_in, c_out))
            name = f"{'deconv' if transpose else 'conv'} {side}x{side} {c_in}->{c_out} k{k}"
            times = {form: ms_per_step(layer, x, w) for form, layer in lowerings(transpose).items()}
            print(f"{name:<28}" + "".join(f"{t:9.1f}" for t in times.values()), flush=True)


if __name__ == "__main__":
    main()
