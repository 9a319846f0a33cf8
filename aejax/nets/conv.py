"""Convolutional encoder and decoder for images stored as flat vectors.

Encoder: conv layers (per-layer channels, kernel sizes, strides; SAME padding), flatten, dense
layers, a linear head. Decoder, mirrored: dense layers, a dense layer to the last feature map,
transposed conv layers back to the image (its last layer has the image's channels, no
activation). Inputs are `(..., H*W*C)`; image sides must be divisible by the product of the strides.

The conv layers' implementation is a static attribute of the modules, `impl`, chosen when they are built:
- `"matmul"`: the convolutions written as matmuls (`aejax.nets.conv_matmul`, whose docstring gives the
  reasons): XLA:CPU's own convolutions take slow paths inside a loop body and under `vmap`;
- `"xla"`: XLA's own convolutions, `lax.conv_general_dilated` and `lax.conv_transpose` (SAME padding),
  for a GPU or TPU, and on a CPU for a forward pass outside any loop (the disentanglement metrics' encoder).
Both have the same parameters (`kernel` in HWIO, `bias`) and compute the same function (tests/test_conv.py).
A setting `auto | matmul | xla` becomes an `impl` by `resolve_conv_impl`.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from aejax.nets import conv_matmul

LECUN = nnx.initializers.lecun_normal()  # flax's default; the study preset uses glorot_uniform (TensorFlow's)
CONV_IMPLS = ("auto", "matmul", "xla")  # the settings `resolve_conv_impl` takes
DN = ("NHWC", "HWIO", "NHWC")           # XLA's dimension numbers for the layers' images and kernels


def resolve_conv_impl(setting: str, backend: str | None = None) -> str:
    """The conv layers' `impl` for a setting in `CONV_IMPLS`: "matmul" and "xla" are themselves; "auto" is
    "matmul" on a CPU (where the matmul lowering's reasons were measured) and "xla" on any other backend
    (`backend`, by default `jax.default_backend()`: "gpu", "tpu", ...)."""
    if setting not in CONV_IMPLS:
        raise ValueError(f"conv implementation {setting!r}: expected one of {', '.join(CONV_IMPLS)}")
    if setting != "auto":
        return setting
    return "matmul" if (jax.default_backend() if backend is None else backend) == "cpu" else "xla"


def _check_impl(impl: str) -> str:
    if impl not in ("matmul", "xla"):
        raise ValueError(f"conv layers' impl {impl!r}: expected 'matmul' or 'xla' (resolve_conv_impl turns "
                         f"a setting such as 'auto' into one)")
    return impl


class _ConvLayer(nnx.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, transpose: bool, init: Callable, *,
                 impl: str = "matmul", rngs: nnx.Rngs):
        self.kernel = nnx.Param(init(rngs.params(), (kernel, kernel, c_in, c_out)))
        self.bias = nnx.Param(jnp.zeros((c_out,)))
        self.stride = stride
        self.transpose = transpose
        self.impl = _check_impl(impl)

    def __call__(self, x):
        kernel, bias, s = self.kernel[...], self.bias[...], self.stride
        if self.impl == "xla":
            if self.transpose:
                return lax.conv_transpose(x, kernel, (s, s), "SAME", dimension_numbers=DN) + bias
            return lax.conv_general_dilated(x, kernel, (s, s), "SAME", dimension_numbers=DN) + bias
        if self.transpose:  # a SubPixel: the next layer reads it as an image or, where cheaper, as blocks
            return conv_matmul.sub_pixel_conv(x, kernel, bias, s)
        return conv_matmul.conv2d(x, kernel, s) + bias


def _dense(a: int, b: int, init: Callable, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(a, b, kernel_init=init, rngs=rngs)


def feature_shape(image_shape: Sequence[int], channels: Sequence[int], strides: Sequence[int]) -> tuple:
    h, w, _ = image_shape
    scale = math.prod(strides)
    return h // scale, w // scale, channels[-1]


class ConvEncoder(nnx.Module):
    def __init__(self, image_shape: Sequence[int], channels: Sequence[int], kernel_sizes: Sequence[int],
                 strides: Sequence[int], dense: Sequence[int], out_dim: int, activation: Callable,
                 init: Callable = LECUN, *, impl: str = "matmul", rngs: nnx.Rngs):
        self.image_shape = tuple(image_shape)
        self.impl = _check_impl(impl)
        self.convs = conv_layers(self.image_shape[-1], channels, kernel_sizes, strides, init, impl, rngs)
        sizes = [math.prod(feature_shape(self.image_shape, channels, strides)), *dense]
        self.dense = nnx.List(_dense(a, b, init, rngs) for a, b in zip(sizes[:-1], sizes[1:]))
        self.head = _dense(sizes[-1], out_dim, init, rngs)
        self.activation = activation

    def __call__(self, x):
        lead = x.shape[:-1]
        y = apply_convs(self.convs, x.reshape((-1, *self.image_shape)), self.activation)
        y = y.reshape(y.shape[0], -1)
        for layer in self.dense:
            y = self.activation(layer(y))
        return self.head(y).reshape(*lead, -1)


class ConvDecoder(nnx.Module):
    def __init__(self, in_dim: int, image_shape: Sequence[int], channels: Sequence[int],
                 kernel_sizes: Sequence[int], strides: Sequence[int], dense: Sequence[int],
                 activation: Callable, init: Callable = LECUN, *, impl: str = "matmul", rngs: nnx.Rngs):
        self.image_shape = tuple(image_shape)
        self.impl = _check_impl(impl)
        self.feature_shape = feature_shape(self.image_shape, channels, strides)
        sizes = [in_dim, *reversed(dense), math.prod(self.feature_shape)]
        self.dense = nnx.List(_dense(a, b, init, rngs) for a, b in zip(sizes[:-1], sizes[1:]))
        self.deconvs = deconv_layers(self.image_shape[-1], channels, kernel_sizes, strides, init, impl, rngs)
        self.activation = activation

    def __call__(self, h):
        lead = h.shape[:-1]
        y = h.reshape(-1, h.shape[-1])
        for layer in self.dense:
            y = self.activation(layer(y))
        y = apply_deconvs(self.deconvs, y.reshape((-1, *self.feature_shape)), self.activation, self.impl)
        return y.reshape(*lead, -1)


def conv_layers(c_in: int, channels: Sequence[int], kernel_sizes: Sequence[int], strides: Sequence[int],
                init: Callable, impl: str, rngs: nnx.Rngs) -> nnx.List:
    """The encoder's conv layers, image channels `c_in` to `channels[-1]` (a ConvEncoder's, and VQ-VAE's stack
    without the dense head)."""
    ins = [c_in, *channels[:-1]]
    return nnx.List(_ConvLayer(a, b, k, s, False, init, impl=impl, rngs=rngs)
                    for a, b, k, s in zip(ins, channels, kernel_sizes, strides))


def deconv_layers(c_out: int, channels: Sequence[int], kernel_sizes: Sequence[int], strides: Sequence[int],
                  init: Callable, impl: str, rngs: nnx.Rngs) -> nnx.List:
    """The decoder's transposed conv layers, mirroring `channels` (encoder order) back to `c_out` image channels;
    `kernel_sizes` in decoder order."""
    rev = list(reversed(channels))
    return nnx.List(_ConvLayer(a, b, k, s, True, init, impl=impl, rngs=rngs)
                    for a, b, k, s in zip(rev, [*rev[1:], c_out], kernel_sizes, reversed(strides)))


def apply_convs(convs, y, activation: Callable):
    """`(N, H, W, C)` images through the conv layers, each followed by `activation`."""
    for i, conv in enumerate(convs):
        # Named so a profile can charge each compiled op to its layer (scripts/profile_conv_step.py).
        with jax.named_scope(f"encoder_conv{i}"):
            y = activation(conv(y))
    return y


def apply_deconvs(deconvs, y, activation: Callable, impl: str):
    """A feature map `(N, h, w, C)` through the transposed conv layers (`activation` after all but the last)
    to the image `(N, H, W, C_image)`."""
    for i, deconv in enumerate(deconvs):
        last = i == len(deconvs) - 1
        with jax.named_scope(f"decoder_deconv{i}"):
            y = deconv(y)
            if impl == "xla":
                y = y if last else activation(y)
            else:  # a SubPixel: its activation applied in whichever layout the next layer reads
                y = y.image() if last else y._replace(activation=activation)
    return conv_matmul.materialized(y) if impl == "matmul" else y
