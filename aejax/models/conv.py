"""Convolutional encoder and decoder for images stored as flat vectors, built from matmuls.

Encoder: conv layers (per-layer channels, kernel sizes, strides; SAME padding), flatten, dense
layers, a linear head. Decoder, mirrored: dense layers, a dense layer to the last feature map,
transposed conv layers back to the image (its last layer has the image's channels, no
activation). Inputs are `(..., H*W*C)`; image sides must be divisible by the product of the strides.

Why convolutions are written as matmuls here (measured, scripts/bench.py figure 5):
- XLA's CPU backend runs a convolution inside a loop body (the engine's `lax.scan` over steps)
  on a slow path, tens of times slower than the same convolution alone; a dot is not affected.
- A transposed convolution (`lhs_dilation`) and the input gradient of a strided convolution (itself
  a transposed convolution) take XLA's slow path on CPU and GPU (jax #23783, openxla/xla #34273).
- Under `vmap` (a population), a convolution becomes a grouped convolution, another slow path;
  a matmul becomes a batched matmul.
- Outside a loop and outside `vmap`, XLA's own forward convolution (oneDNN) is fast: the
  disentanglement metrics' encoder uses it (`xla_convolutions()`; 6.7x the vmapped matmul form
  for 12 study VAEs, scripts/bench_metric_encoder.py). Training never does.
So a strided convolution is im2col (k*k strided slices concatenated on the channel axis) times
the kernel as a `(k*k*C_in, C_out)` matrix, and a transposed convolution of stride s is split
into its s*s output phases ("sub-pixel"): each phase is a stride-1 convolution of the
undilated input with the kernel taps that reach it, and the phases are interleaved
(depth-to-space). FLOPs are those of the direct convolution; no zero of a dilated input is
ever multiplied. The parameters are the usual ones (`kernel` in HWIO, `bias`): `conv2d` equals
`lax.conv_general_dilated(..., padding="SAME")` and `conv_transpose2d` equals
`lax.conv_transpose(..., padding="SAME")` (flax's `nnx.ConvTranspose`) with the same kernel
(tests/test_conv.py).
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

LECUN = nnx.initializers.lecun_normal()  # flax's default; the study preset uses glorot_uniform (TensorFlow's)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """Output size and (low, high) padding of a SAME convolution, as TensorFlow and XLA define it."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def _patches(x, offsets_h, offsets_w, out_h, out_w, stride):
    """Concatenate the strided windows x[:, oh + stride*i, ow + stride*j] over the given offsets."""
    span_h, span_w = stride * (out_h - 1) + 1, stride * (out_w - 1) + 1
    return jnp.concatenate([x[:, i:i + span_h:stride, j:j + span_w:stride, :]
                            for i in offsets_h for j in offsets_w], axis=-1)


_XLA_CONVOLUTIONS = [False]  # read when a function is traced: see xla_convolutions()


@contextlib.contextmanager
def xla_convolutions():
    """Functions traced inside this block use XLA's own forward convolution in `conv2d`: the fast path
    for a forward pass that is neither in a loop body nor under `vmap` (aejax.disentanglement's
    metrics encoder). Tracing is what reads the flag, and `jax.jit` traces at a call, not when it
    wraps: call the jitted function inside the block every time (a retrace for new shapes then
    reads it too), and never call it outside (its cached trace keeps XLA's convolutions)."""
    _XLA_CONVOLUTIONS.append(True)
    try:
        yield
    finally:
        _XLA_CONVOLUTIONS.pop()


def conv2d(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """SAME convolution of `(B, H, W, C_in)` with an HWIO kernel, as im2col and one matmul."""
    if _XLA_CONVOLUTIONS[-1]:
        return lax.conv_general_dilated(x, kernel, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    k_h, k_w, c_in, c_out = kernel.shape
    out_h, lo_h, hi_h = same_padding(x.shape[1], k_h, stride)
    out_w, lo_w, hi_w = same_padding(x.shape[2], k_w, stride)
    x = jnp.pad(x, ((0, 0), (lo_h, hi_h), (lo_w, hi_w), (0, 0)))
    columns = _patches(x, range(k_h), range(k_w), out_h, out_w, stride)
    return columns @ kernel.reshape(k_h * k_w * c_in, c_out)


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


def conv_transpose2d(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """`lax.conv_transpose(x, kernel, (s, s), "SAME")` (HWIO kernel, output s*H x s*W) without dilation.

    Two exact forms with the same FLOPs; the one whose matmul is wider is taken (measured per layer
    of the study's decoder: a 32 -> 1 channel layer takes 31 ms by scatter against 198 ms by phases,
    forward and backward, batch 64; a 32 -> 32 layer 114 ms by phases against 232 ms by scatter)."""
    k_h, k_w, c_in, c_out = kernel.shape
    if c_out * k_h * k_w <= c_in:
        return _conv_transpose_by_scatter(x, kernel, stride)
    return _conv_transpose_by_phases(x, kernel, stride)


def _conv_transpose_by_scatter(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """Every input pixel times the whole kernel in one matmul `(B*H*W, C_in) @ (C_in, k*k*C_out)`, then
    each tap's contribution added at its output pixel o = s*i + lo - t (overlap-add, "col2im")."""
    batch, h, w, c_in = x.shape
    k_h, k_w, _, c_out = kernel.shape
    lo_h, lo_w = _conv_transpose_low(k_h, stride), _conv_transpose_low(k_w, stride)
    taps = (x.reshape(-1, c_in) @ kernel.transpose(2, 0, 1, 3).reshape(c_in, -1)).reshape(batch, h, w, k_h, k_w, c_out)
    pad = max(k_h, k_w) // stride + 2  # room for every tap's shift, in input pixels
    out = jnp.zeros((batch, h + 2 * pad, stride, w + 2 * pad, stride, c_out), x.dtype)
    for t_h in range(k_h):
        shift_h, phase_h = divmod(lo_h - t_h, stride)
        for t_w in range(k_w):
            shift_w, phase_w = divmod(lo_w - t_w, stride)
            out = out.at[:, pad + shift_h:pad + shift_h + h, phase_h, pad + shift_w:pad + shift_w + w, phase_w].add(
                taps[:, :, :, t_h, t_w])
    return out[:, pad:pad + h, :, pad:pad + w].reshape(batch, h * stride, w * stride, c_out)


def _conv_transpose_by_phases(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """Each of the s*s output phases is a VALID stride-1 convolution (im2col + matmul) of the padded
    input with the taps that reach it; the phases are then interleaved (depth-to-space)."""
    batch, h, w, c_in = x.shape
    k_h, k_w, _, c_out = kernel.shape
    phases_h = [_transpose_taps(k_h, stride, p) for p in range(stride)]
    phases_w = [_transpose_taps(k_w, stride, p) for p in range(stride)]
    reach = [o for _, offsets in phases_h + phases_w for o in offsets]
    pad_lo, pad_hi = max(0, -min(reach)), max(0, max(reach))
    x = jnp.pad(x, ((0, 0), (pad_lo, pad_hi), (pad_lo, pad_hi), (0, 0)))
    rows = []
    for taps_h, offsets_h in phases_h:
        row = []
        for taps_w, offsets_w in phases_w:
            columns = _patches(x, [o + pad_lo for o in offsets_h], [o + pad_lo for o in offsets_w], h, w, 1)
            taps = kernel[jnp.asarray(taps_h)][:, jnp.asarray(taps_w)]
            row.append(columns @ taps.reshape(-1, c_out))
        rows.append(jnp.stack(row, axis=3))              # (B, H, W, s_w, C)
    y = jnp.stack(rows, axis=2)                           # (B, H, s_h, W, s_w, C)
    return y.reshape(batch, h * stride, w * stride, c_out)


class _ConvLayer(nnx.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, transpose: bool, init: Callable, *,
                 rngs: nnx.Rngs):
        self.kernel = nnx.Param(init(rngs.params(), (kernel, kernel, c_in, c_out)))
        self.bias = nnx.Param(jnp.zeros((c_out,)))
        self.stride = stride
        self.transpose = transpose

    def __call__(self, x):
        op = conv_transpose2d if self.transpose else conv2d
        return op(x, self.kernel[...], self.stride) + self.bias[...]


def _dense(a: int, b: int, init: Callable, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(a, b, kernel_init=init, rngs=rngs)


def feature_shape(image_shape: Sequence[int], channels: Sequence[int], strides: Sequence[int]) -> tuple:
    h, w, _ = image_shape
    scale = math.prod(strides)
    return h // scale, w // scale, channels[-1]


class ConvEncoder(nnx.Module):
    def __init__(self, image_shape: Sequence[int], channels: Sequence[int], kernel_sizes: Sequence[int],
                 strides: Sequence[int], dense: Sequence[int], out_dim: int, activation: Callable,
                 init: Callable = LECUN, *, rngs: nnx.Rngs):
        self.image_shape = tuple(image_shape)
        ins = [self.image_shape[-1], *channels[:-1]]
        self.convs = nnx.List(_ConvLayer(a, b, k, s, False, init, rngs=rngs)
                              for a, b, k, s in zip(ins, channels, kernel_sizes, strides))
        sizes = [math.prod(feature_shape(self.image_shape, channels, strides)), *dense]
        self.dense = nnx.List(_dense(a, b, init, rngs) for a, b in zip(sizes[:-1], sizes[1:]))
        self.head = _dense(sizes[-1], out_dim, init, rngs)
        self.activation = activation

    def __call__(self, x):
        lead = x.shape[:-1]
        y = x.reshape((-1, *self.image_shape))
        for conv in self.convs:
            y = self.activation(conv(y))
        y = y.reshape(y.shape[0], -1)
        for layer in self.dense:
            y = self.activation(layer(y))
        return self.head(y).reshape(*lead, -1)


class ConvDecoder(nnx.Module):
    def __init__(self, in_dim: int, image_shape: Sequence[int], channels: Sequence[int],
                 kernel_sizes: Sequence[int], strides: Sequence[int], dense: Sequence[int],
                 activation: Callable, init: Callable = LECUN, *, rngs: nnx.Rngs):
        self.image_shape = tuple(image_shape)
        self.feature_shape = feature_shape(self.image_shape, channels, strides)
        sizes = [in_dim, *reversed(dense), math.prod(self.feature_shape)]
        self.dense = nnx.List(_dense(a, b, init, rngs) for a, b in zip(sizes[:-1], sizes[1:]))
        rev = list(reversed(channels))
        outs = [*rev[1:], self.image_shape[-1]]
        self.deconvs = nnx.List(_ConvLayer(a, b, k, s, True, init, rngs=rngs)
                                for a, b, k, s in zip(rev, outs, kernel_sizes, reversed(strides)))
        self.activation = activation

    def __call__(self, h):
        lead = h.shape[:-1]
        y = h.reshape(-1, h.shape[-1])
        for layer in self.dense:
            y = self.activation(layer(y))
        y = y.reshape((-1, *self.feature_shape))
        for i, deconv in enumerate(self.deconvs):
            y = deconv(y)
            if i < len(self.deconvs) - 1:
                y = self.activation(y)
        return y.reshape(*lead, -1)
