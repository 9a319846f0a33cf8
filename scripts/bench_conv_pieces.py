"""Four pieces of the study VAE's training step, each timed alone inside a `lax.scan` (as the engine runs
steps), batch 64; milliseconds per step, best of 5 calls of 8 steps. README Speed quotes them.

    uv run --locked python scripts/bench_conv_pieces.py

1. The gradient of the scatter form's shifted sum (the encoder's second layer: 17x17 blocks, 2x2 taps,
   32 channels): the taps sliced out of one array (autodiff pads every tap to the size of all of them and
   adds) against the taps split apart first (`aejax.nets.conv_matmul.valid_conv`: each padded alone, concatenated);
   each followed by the weight-gradient-sized matmul (18,496 x 128 x 128), the same in both.
2. Space-to-depth of that layer's input, fused with the padding and the previous layer's bias and ReLU (as
   XLA fuses it in the step), against the same shuffle of an input already padded; each followed by the
   layer's matmul (18,496 x 128 x 128), the same in both.
3. One member's epoch shuffle: `jax.random.permutation` of 12,800 examples (once per compiled call).
4. That layer's weight gradient, (18,496 x 128)^T (18,496 x 128): a contraction over the first axis of both
   operands, which XLA gives to Eigen (YNNPACK takes only a left operand contracted on its last axis),
   against a matmul of the same FLOPs in the forward's shape (18,496 x 128) (128 x 128), which YNNPACK runs.
Each figure is the piece's time less that of the same scan passing its input through.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from aejax.nets.conv_matmul import space_to_depth
from bench_conv_layers import best_ms_per_step

BATCH, STEPS, REPEATS = 64, 8, 5


def ms_per_step(piece, x) -> float:
    """Scan STEPS steps of `piece` on x scaled by the carry (so nothing is hoisted out of the loop)."""
    def steps(w, x):
        return lax.scan(lambda w, _: (w + 1e-9 * jnp.sum(piece(x * w)), None), w, None, length=STEPS)[0]

    return best_ms_per_step(steps, STEPS, REPEATS, jnp.ones(()), x)


def shifted_sum_sliced(taps, k, out):
    return sum(taps[:, i:i + out, j:j + out, i * k + j] for i in range(k) for j in range(k))


def shifted_sum_split(taps, k, out):
    parts = jnp.split(taps, k * k, axis=3)
    return sum(p[:, t // k:t // k + out, t % k:t % k + out, 0] for t, p in enumerate(parts))


def main() -> None:
    key = jax.random.key(0)
    passthrough = lambda x: ms_per_step(lambda y: y, x)

    # Each piece is consumed by its layer's matmul, as in the step: a plain sum of it would let XLA
    # simplify the piece away. The matmul is the same in both forms of a piece.
    k, side, channels = 2, 17, 32
    out = side - k + 1
    dy = jax.random.normal(key, (BATCH, out, out, channels))
    taps = jnp.zeros((BATCH, side, side, k * k, channels))
    weights = jax.random.normal(key, (k * k * channels, 128))
    for name, form in (("sliced", shifted_sum_sliced), ("split", shifted_sum_split)):
        gradient = lambda g, form=form: jax.linear_transpose(lambda t: form(t, k, out), taps)(g)[0]
        with_matmul = lambda g, gradient=gradient: gradient(g).reshape(-1, k * k * channels) @ weights
        print(f"1. shifted-sum gradient, taps {name}, then the matmul: "
              f"{ms_per_step(with_matmul, dy) - passthrough(dy):.2f} ms")

    conv_out = jax.random.normal(key, (BATCH * 32 * 32, 32))
    padded = jnp.pad(conv_out.reshape(BATCH, 32, 32, 32), ((0, 0), (1, 1), (1, 1), (0, 0)))
    bias, kernel = jnp.full((32,), 0.1), jax.random.normal(key, (128, 128))
    matmul = lambda z: z.reshape(-1, 128) @ kernel
    fused = lambda y: matmul(space_to_depth(jnp.pad(jax.nn.relu(y + bias).reshape(BATCH, 32, 32, 32),
                                                    ((0, 0), (1, 1), (1, 1), (0, 0))), 2))
    print(f"2. space-to-depth with bias, ReLU and padding fused, then the matmul: "
          f"{ms_per_step(fused, conv_out) - passthrough(conv_out):.2f} ms")
    print(f"2. space-to-depth of the padded input, then the matmul: "
          f"{ms_per_step(lambda y: matmul(space_to_depth(y, 2)), padded) - passthrough(padded):.2f} ms")

    seed = jax.random.normal(key, (2,))  # scaled by the carry: a new permutation every step
    shuffle = lambda s: jax.random.permutation(jax.random.fold_in(key, (s[0] * 1e3).astype(jnp.int32)), 12_800)
    print(f"3. one epoch shuffle of 12,800 examples: {ms_per_step(shuffle, seed) - passthrough(seed):.2f} ms")

    rows = space_to_depth(padded, 2).reshape(-1, 128)                          # the layer's input, 18,496 x 128
    output_gradient = jax.random.normal(key, rows.shape)
    weight_gradient = lambda x: lax.dot_general(x, output_gradient, (((0,), (0,)), ((), ())))
    for name, piece in (("weight gradient (Eigen)", weight_gradient), ("forward-shaped (YNNPACK)", lambda x: x @ kernel)):
        print(f"4. 18,496 x 128 x 128 matmul, {name}: {ms_per_step(piece, rows) - passthrough(rows):.2f} ms")


if __name__ == "__main__":
    main()
