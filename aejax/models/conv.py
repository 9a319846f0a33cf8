"""Convolutional encoder and decoder for images stored as flat vectors.

Encoder: conv layers (per-layer channels, kernel sizes, strides; SAME padding), flatten, dense
layers, a linear head. Decoder, mirrored: dense layers, a dense layer to the last feature map,
transposed conv layers back to the image (its last layer has the image's channels, no
activation). Inputs are `(..., H*W*C)`; image sides must be divisible by the product of the strides.

The convolutions are written as matmuls (`aejax.models.conv_matmul`, whose docstring gives the reasons),
except for the strided convolutions of functions traced inside `xla_convolutions()`.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from aejax.models import conv_matmul

LECUN = nnx.initializers.lecun_normal()  # flax's default; the study preset uses glorot_uniform (TensorFlow's)


_XLA_CONVOLUTIONS = [False]  # read when a function is traced: see xla_convolutions()


@contextlib.contextmanager
def xla_convolutions():
    """Functions traced inside this block use XLA's own forward convolution in the encoder's layers: the
    fast path for a forward pass that is neither in a loop body nor under `vmap` (aejax.disentanglement's
    metrics encoder). Tracing is what reads the flag, and `jax.jit` traces at a call, not when it
    wraps: call the jitted function inside the block every time (a retrace for new shapes then
    reads it too), and never call it outside (its cached trace keeps XLA's convolutions)."""
    _XLA_CONVOLUTIONS.append(True)
    try:
        yield
    finally:
        _XLA_CONVOLUTIONS.pop()


class _ConvLayer(nnx.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, transpose: bool, init: Callable, *,
                 rngs: nnx.Rngs):
        self.kernel = nnx.Param(init(rngs.params(), (kernel, kernel, c_in, c_out)))
        self.bias = nnx.Param(jnp.zeros((c_out,)))
        self.stride = stride
        self.transpose = transpose

    def __call__(self, x):
        kernel, bias, s = self.kernel[...], self.bias[...], self.stride
        if self.transpose:  # a SubPixel: the next layer reads it as an image or, where cheaper, as blocks
            return conv_matmul.sub_pixel_conv(x, kernel, bias, s)
        if _XLA_CONVOLUTIONS[-1]:
            return lax.conv_general_dilated(x, kernel, (s, s), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias
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
        for i, conv in enumerate(self.convs):
            # Named so a profile can charge each compiled op to its layer (scripts/profile_conv_step.py).
            with jax.named_scope(f"encoder_conv{i}"):
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
            with jax.named_scope(f"decoder_deconv{i}"):
                y = deconv(y)
                if i < len(self.deconvs) - 1:
                    y = y._replace(activation=self.activation)
                else:
                    y = y.image()
        return conv_matmul.materialized(y).reshape(*lead, -1)
