"""Convolutions written as matmuls: the CPU lowering of `aejax.nets.conv`'s layers (`impl="matmul"`).

The functions take and return NHWC images and HWIO kernels with the usual parameters: `conv2d` equals
`lax.conv_general_dilated(..., padding="SAME")` and `conv_transpose2d` equals
`lax.conv_transpose(..., padding="SAME")` (flax's `nnx.ConvTranspose`) with the same kernel
(tests/test_conv.py). The reasons below are CPU measurements; their figures, and the commands that
measured them, are in the README (Speed, "Why the CPU lowers convolutions to matmuls (measured)").
On a GPU or TPU the layers use XLA's own convolutions (`aejax.nets.conv.resolve_conv_impl`).

Why convolutions are written as matmuls on a CPU:
- XLA's CPU backend runs a convolution's gradients inside a loop body (the engine's `lax.scan` over
  steps) on a slow path, tens of times slower than the same step alone: in the loop body it folds
  the transposes of the gradient convolutions into their dimension labels (`f01b_i01o->01bf`),
  a form neither its YNNPACK nor its Eigen convolution takes, so they become naive loops
  (seen in the compiled HLO); outside a loop the same convolutions are canonical. A dot is not affected.
- A transposed convolution (`lhs_dilation`) and the input gradient of a strided convolution (itself
  a transposed convolution) take XLA's slow path on CPU and GPU (jax #23783, openxla/xla #34273).
- Under `vmap` (a population), a convolution becomes a grouped convolution, another slow path;
  a matmul becomes a batched matmul. (On a CPU, conv populations loop over their members instead:
  `aejax.train.population_block`.)
- Outside a loop and outside `vmap`, XLA's own forward convolution (oneDNN) is fast: the
  disentanglement metrics' encoder builds its model with `impl="xla"` (faster than the vmapped matmul
  form below, scripts/bench_metric_encoder.py). Training on a CPU never does.
So every layer is a VALID stride-1 convolution written as matmuls (`valid_conv`: im2col, or one
matmul per input pixel followed by a sum of shifted outputs, whichever moves less memory):
- a strided convolution is padded and reshaped space-to-depth by its stride (an s x s block of
  pixels becomes one pixel of s*s*C channels), with its kernel regrouped to match: a 4x4 kernel of
  stride 2 becomes a 2x2 kernel of stride 1 over 4x the channels (a kernel that is not a multiple
  of its stride is im2col of strided windows instead);
- a transposed convolution of stride s is the same in reverse ("sub-pixel"): a stride-1 convolution of
  the undilated input to s*s*C_out channels, one per pixel of an output block, then depth-to-space.
Between two transposed layers the output stays in its blocks (`SubPixel`) where the next layer can read
them as they are, and the decoder's output is computed once for all the loss's loops (`materialized`).
No zero of a dilated input is multiplied. FLOPs are those of the direct convolution, times a border
block's worth where the blocks overhang the image (`conv_transpose2d`, `valid_conv`'s scatter form), plus
the zero taps of a transposed kernel that is not a multiple of its stride.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """Output size and (low, high) padding of a SAME convolution, as TensorFlow and XLA define it."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def conv2d(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """SAME convolution of `(B, H, W, C_in)` with an HWIO kernel.

    A kernel that is a multiple of the stride: padded, space-to-depth by the stride, then a VALID
    stride-1 convolution with the kernel regrouped into `(k/s, k/s, s*s*C_in, C_out)` blocks. Any other
    kernel: im2col of strided windows (regrouping it would pad the kernel with zero taps: a 3x3 kernel
    of stride 2 becomes 2x2 blocks of 4x4 taps, 1.8x the FLOPs; `model=conv`'s second layer was slower
    that way: README, Speed, "Why the CPU lowers convolutions to matmuls (measured)")."""
    k_h, k_w, c_in, c_out = kernel.shape
    s = stride
    out_h, lo_h, hi_h = same_padding(x.shape[1], k_h, s)
    out_w, lo_w, hi_w = same_padding(x.shape[2], k_w, s)
    if k_h % s or k_w % s:
        x = jnp.pad(x, ((0, 0), (lo_h, hi_h), (lo_w, hi_w), (0, 0)))
        return _matmul(_im2col(x, k_h, k_w, out_h, out_w, s), kernel.reshape(-1, c_out))
    b_h, b_w = k_h // s, k_w // s
    x = jnp.pad(x, ((0, 0), (lo_h, s * (out_h - 1 + b_h) - x.shape[1] - lo_h),
                    (lo_w, s * (out_w - 1 + b_w) - x.shape[2] - lo_w), (0, 0)))
    kernel = kernel.reshape(b_h, s, b_w, s, c_in, c_out).transpose(0, 2, 1, 3, 4, 5).reshape(b_h, b_w, -1, c_out)
    # Materialised once: without the barrier XLA fuses the space-to-depth shuffle into each consumer,
    # and the weight gradient's transposed copy of it is a slow strided gather (measured on the encoder's
    # second layer: README, Speed, "Why the CPU lowers convolutions to matmuls (measured)").
    return valid_conv(lax.optimization_barrier(space_to_depth(x, s)), kernel)


def conv_transpose2d(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """`lax.conv_transpose(x, kernel, (s, s), "SAME")` (HWIO kernel, output s*H x s*W) without dilation:
    a VALID stride-1 convolution of the undilated input to s*s*C_out channels, one per output pixel of
    an s x s block ("sub-pixel"), then depth-to-space. The blocks are aligned (`_output_blocks`) so the
    window is as narrow as possible: 2x2 input pixels for a 4x4 kernel of stride 2, whose 16 taps all
    land in the regrouped kernel; FLOPs are those of the direct convolution times (H+1)(W+1)/(HW)."""
    return sub_pixel_conv(x, kernel, None, stride).image()


class SubPixel(NamedTuple):
    """A transposed convolution layer's output as its matmul wrote it: the image is
    `epilogue(depth_to_space(blocks, stride)[:, top:top + height, left:left + width])`, where the epilogue
    (`bias`, then `activation`) is elementwise and so can be applied in either layout.

    The next transposed convolution reads the blocks directly where its matmul is row by row (the
    scatter form of `valid_conv`, whose rows may come in any order) and its zero padding is exactly the
    blocks' overhang beyond the image: the study decoder's last layer. There the shuffle to the image
    and its gradient's shuffle back are never computed, which made a study VAE step faster. A gather-form
    next layer reads the image: its gradient computed straight into the blocks' layout was slower than the
    image's gradient shuffled. (The same hand-off in the encoder, its first layer writing its output in the
    second layer's space-to-depth order, gained nothing.) The measurements: README, Speed, "Why the CPU
    lowers convolutions to matmuls (measured)"."""
    blocks: jax.Array
    stride: int
    top: int
    left: int
    height: int
    width: int
    bias: jax.Array | None
    activation: Callable | None = None

    def image(self) -> jax.Array:
        y = depth_to_space(self.blocks, self.stride)
        return self._epilogue(y[:, self.top:self.top + self.height, self.left:self.left + self.width])

    def _epilogue(self, y: jax.Array) -> jax.Array:
        y = y if self.bias is None else y + self.bias
        return y if self.activation is None else self.activation(y)

    def padded_blocks(self, pads: tuple[int, int, int, int]) -> jax.Array | None:
        """The image padded with zeros by (top, bottom, left, right), space-to-depth by the stride, when
        that padding is exactly the blocks' overhang beyond the image; else None."""
        s, (n_h, n_w) = self.stride, self.blocks.shape[1:3]
        if pads != (self.top, s * n_h - self.top - self.height, self.left, s * n_w - self.left - self.width):
            return None
        c = self.blocks.shape[-1] // (s * s)
        y = self._epilogue(self.blocks.reshape(*self.blocks.shape[:3], s, s, c))  # [B, a, b, i, j, channel]
        rows = (np.arange(s * n_h) >= self.top) & (np.arange(s * n_h) < self.top + self.height)
        cols = (np.arange(s * n_w) >= self.left) & (np.arange(s * n_w) < self.left + self.width)
        inside = rows.reshape(n_h, 1, s, 1, 1) & cols.reshape(1, n_w, 1, s, 1)  # the overhang is zeroed
        return jnp.where(inside, y, 0).reshape(self.blocks.shape)  # where, not a product: 0 * inf is NaN


def sub_pixel_conv(x: jax.Array | SubPixel, kernel: jax.Array, bias: jax.Array | None, stride: int) -> SubPixel:
    """`conv_transpose2d(x, kernel, stride) + bias` as a `SubPixel`; `x` is an image or the previous layer's
    `SubPixel`, read from its blocks where that saves shuffles (see `SubPixel`)."""
    if isinstance(x, SubPixel):
        h, w, c_in = x.height, x.width, x.blocks.shape[-1] // x.stride**2
    else:
        _, h, w, c_in = x.shape
    k_h, k_w, _, c_out = kernel.shape
    s = stride
    (g_h, lo_h, taps_h), (g_w, lo_w, taps_w) = _output_blocks(k_h, s), _output_blocks(k_w, s)
    n_h, n_w = h + (g_h > 0), w + (g_w > 0)            # blocks; a shifted grid needs one more
    span_h, span_w = len(taps_h[0]), len(taps_w[0])
    # The window reads input rows lo_h .. lo_h + n_h + span_h - 2: zeros where they fall outside.
    pads = (max(0, -lo_h), max(0, n_h + lo_h + span_h - 1 - h), max(0, -lo_w), max(0, n_w + lo_w + span_w - 1 - w))
    # The regrouped kernel by one gather from the k*k taps and a zero: [u_h, u_w, C_in, q_h, q_w, C_out].
    flat = jnp.concatenate([kernel.reshape(k_h * k_w, c_in, c_out), jnp.zeros((1, c_in, c_out), kernel.dtype)])
    t_h, t_w = np.array(taps_h).T[:, None, :, None], np.array(taps_w).T[None, :, None, :]  # [u_h, u_w, q_h, q_w]
    index = np.where((t_h < 0) | (t_w < 0), k_h * k_w, t_h * k_w + t_w)
    blocks = flat[index].transpose(0, 1, 4, 2, 3, 5).reshape(span_h, span_w, c_in, s * s * c_out)
    padded = (n_h + span_h - 1, n_w + span_w - 1)      # the size of the window's input, padded and sliced
    form = _form(c_in, s * s * c_out, padded, (n_h, n_w))
    if (isinstance(x, SubPixel) and form == "scatter" and lo_h <= 0 and lo_w <= 0
            and padded == (h + pads[0] + pads[1], w + pads[2] + pads[3])):
        from_blocks = x.padded_blocks(pads)
        if from_blocks is not None:
            return SubPixel(valid_conv(from_blocks, blocks, form, block=x.stride), s, g_h, g_w, s * h, s * w, bias)
    x = x.image() if isinstance(x, SubPixel) else x
    x = jnp.pad(x, ((0, 0), pads[:2], pads[2:], (0, 0)))
    x = x[:, max(0, lo_h):max(0, lo_h) + n_h + span_h - 1, max(0, lo_w):max(0, lo_w) + n_w + span_w - 1]
    return SubPixel(valid_conv(x, blocks, form), s, g_h, g_w, s * h, s * w, bias)


def _output_blocks(kernel: int, stride: int) -> tuple[int, int, list[list[int]]]:
    """How a SAME transposed convolution's output splits into blocks of `stride` pixels read by one window.

    Block m holds outputs s*m - g + q (q = 0..s-1) and reads inputs m + lo + u (u = 0..span-1);
    `taps[q][u]` is the kernel tap joining them, -1 where none does. The shift g is chosen for the
    narrowest window (for k = 4, s = 2: span 2 with g = 1, against 3 with g = 0)."""
    best = None
    for g in range(stride):
        reads = []
        for q in range(stride):
            phase, carry = divmod(q - g, stride)[::-1]
            taps, offsets = _transpose_taps(kernel, stride, phase)
            reads.append({o + carry: t for t, o in zip(taps, offsets)})
        lo = min(o for r in reads for o in r)
        span = max(o for r in reads for o in r) - lo + 1
        if best is None or span < best[0]:
            best = (span, g, lo, [[r.get(lo + u, -1) for u in range(span)] for r in reads])
    return best[1], best[2], best[3]


def space_to_depth(x: jax.Array, s: int) -> jax.Array:
    """`(B, s*H, s*W, C)` -> `(B, H, W, s*s*C)`, each s x s block's pixels on the channel axis (row-major)."""
    b, h, w, c = x.shape
    return x.reshape(b, h // s, s, w // s, s, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, h // s, w // s, s * s * c)


def depth_to_space(x: jax.Array, s: int) -> jax.Array:
    """The inverse of `space_to_depth`."""
    b, h, w, c = x.shape
    return x.reshape(b, h, w, s, s, c // (s * s)).transpose(0, 1, 3, 2, 4, 5).reshape(b, h * s, w * s, c // (s * s))


def valid_conv(x: jax.Array, kernel: jax.Array, form: str | None = None, *, block: int = 1) -> jax.Array:
    """VALID stride-1 convolution (`(B, H, W, C_in)`, HWIO kernel) as matmuls, in whichever of two exact
    forms moves less memory; each is one matmul in each direction.
    - gather (im2col): the k*k shifted windows concatenated, `(B*OH*OW, k*k*C_in) @ (k*k*C_in, C_out)`;
      it writes k*k*C_in numbers per output pixel, with the convolution's FLOPs.
    - scatter: every input pixel times every tap, `(B*H*W, C_in) @ (C_in, k*k*C_out)`, then the taps'
      shifted outputs summed; it writes k*k*C_out numbers per input pixel, with (H*W)/(OH*OW) times the FLOPs.
    `form` forces one ("gather" or "scatter"; scripts/bench_conv_layers.py times both). On the study's
    layers (forward and backward in a scan, batch 64, 2 cores) the pick was the faster form or within
    run-to-run noise of it (README, Speed, "Why the CPU lowers convolutions to matmuls (measured)").

    `block` > 1: x is the input space-to-depth by `block` (`SubPixel.padded_blocks`). The scatter form's
    matmul is row by row, so it runs on the blocks as they are and only its output is shuffled, inside
    the shifted sum's loop; the gather form reads its windows from the depth-to-space of x."""
    batch, h, w, c_in = x.shape
    if block > 1:
        h, w, c_in = h * block, w * block, c_in // (block * block)
    k_h, k_w, _, c_out = kernel.shape
    out_h, out_w = h - k_h + 1, w - k_w + 1
    form = form or _form(c_in, c_out, (h, w), (out_h, out_w))
    if k_h * k_w == 1 or form == "gather":
        x = depth_to_space(x, block) if block > 1 else x
        return _matmul(_im2col(x, k_h, k_w, out_h, out_w), kernel.reshape(-1, c_out))
    rows = x.reshape(batch, *x.shape[1:3], block * block, c_in)       # a pixel a row, in the blocks' order
    taps = _matmul(rows, kernel.transpose(2, 0, 1, 3).reshape(c_in, -1)).reshape(batch, *x.shape[1:3], -1)
    taps = (depth_to_space(taps, block) if block > 1 else taps).reshape(batch, h, w, k_h * k_w, c_out)
    # Split into taps before shifting, so that the gradient (autodiff's transpose) pads each tap's own
    # slice and concatenates them. Slicing the whole `taps` array instead makes the gradient pad every
    # tap to the size of all of them and add those up: one fused loop with a select per tap per
    # element, twice as slow (README, Speed, "Why the CPU lowers convolutions to matmuls (measured)").
    shifted = [tap[:, t // k_w:t // k_w + out_h, t % k_w:t % k_w + out_w, 0]
               for t, tap in enumerate(jnp.split(taps, k_h * k_w, axis=3))]
    return functools.reduce(jnp.add, shifted)


def _form(c_in: int, c_out: int, size: tuple[int, int], out: tuple[int, int]) -> str:
    """The form of `valid_conv` that writes less: gather writes k*k*C_in numbers an output pixel,
    scatter k*k*C_out an input pixel."""
    return "gather" if c_in * out[0] * out[1] <= c_out * size[0] * size[1] else "scatter"


def _im2col(x: jax.Array, k_h: int, k_w: int, out_h: int, out_w: int, stride: int = 1) -> jax.Array:
    """The k_h*k_w windows x[:, stride*o + i, stride*o' + j] concatenated on the channel axis (tap-major)."""
    span_h, span_w = stride * (out_h - 1) + 1, stride * (out_w - 1) + 1
    return jnp.concatenate([x[:, i:i + span_h:stride, j:j + span_w:stride] for i in range(k_h) for j in range(k_w)],
                           axis=-1)


def materialized(x: jax.Array) -> jax.Array:
    """`x`, computed once and kept in memory for all its consumers.

    XLA:CPU fuses an elementwise producer into each of its consumers, recomputing it in every one, and
    removes `lax.optimization_barrier` before it fuses. The decoder's output (the last layer's tap sum,
    depth-to-space, crop and bias) was so recomputed in three loops of the loss and its gradient. A value
    that leaves a conditional is the one boundary XLA keeps, so `x` passes through one whose two branches
    both return it: the second also maps NaN to NaN, so that XLA cannot merge the branches (which would
    remove the conditional). What it saves a study VAE step: README, Speed, "Why the CPU lowers
    convolutions to matmuls (measured)"."""
    if jax.default_backend() != "cpu" or x.size == 0:
        return x  # XLA:GPU reads a conditional's predicate on the host: a sync every step, for a CPU-only cost
    flat = x.reshape(-1)
    return lax.cond(jnp.isnan(flat[0]), lambda v: jnp.where(jnp.isnan(v), jnp.nan, v), lambda v: v, x)


def _matmul(x: jax.Array, matrix: jax.Array) -> jax.Array:
    """`x @ matrix` over x's last axis, through a 2-D matmul: XLA:CPU lowers a dot of a 4-D operand to
    a slower kernel (README, Speed, "Why the CPU lowers convolutions to matmuls (measured)")."""
    return (x.reshape(-1, x.shape[-1]) @ matrix).reshape(*x.shape[:-1], matrix.shape[-1])


def _transpose_taps(kernel: int, stride: int, phase: int) -> tuple[list[int], list[int]]:
    """Taps of a SAME transposed convolution that reach output phase `phase`, and the input offset
    each reads: out[s*m + phase] = sum_t x[m + offset_t] * w[t].

    `lax.conv_transpose` is a stride-1 convolution of the input dilated by s (x_d[s*i] = x[i],
    zeros between) padded by `lo`: out[o] = sum_t x_d[o + t - lo] w[t]. Only taps with
    o + t - lo divisible by s meet a real input, at i = (o + t - lo) / s."""
    lo = _conv_transpose_low(kernel, stride)
    taps = [t for t in range(kernel) if (phase + t - lo) % stride == 0]
    return taps, [(phase + t - lo) // stride for t in taps]


def _conv_transpose_low(kernel: int, stride: int) -> int:
    """The low padding `lax.conv_transpose(padding="SAME")` gives the dilated input (as jax computes it)."""
    return kernel - 1 if stride > kernel - 1 else math.ceil((kernel + stride - 2) / 2)

