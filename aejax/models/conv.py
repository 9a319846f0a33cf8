"""Convolutional encoder and decoder for images stored as flat vectors.

Each conv layer halves height and width (3x3 kernel, stride 2, SAME padding); the
decoder mirrors it with stride-2 transposed convolutions, so image sides must be
divisible by 2 ** len(channels). Inputs are `(..., H*W*C)` in [0, 1].
"""

from __future__ import annotations

from typing import Callable, Sequence

import math
from flax import nnx


def _feature_shape(image_shape, channels):
    h, w, _ = image_shape
    scale = 2 ** len(channels)
    return h // scale, w // scale, channels[-1]


class ConvEncoder(nnx.Module):
    def __init__(self, image_shape: Sequence[int], channels: Sequence[int], out_dim: int,
                 activation: Callable, *, rngs: nnx.Rngs):
        self.image_shape = tuple(image_shape)
        ins = [self.image_shape[-1], *channels[:-1]]
        self.convs = nnx.List(nnx.Conv(a, b, (3, 3), strides=2, padding="SAME", rngs=rngs)
                              for a, b in zip(ins, channels))
        fh, fw, fc = _feature_shape(self.image_shape, channels)
        self.head = nnx.Linear(fh * fw * fc, out_dim, rngs=rngs)
        self.activation = activation

    def __call__(self, x):
        lead = x.shape[:-1]
        y = x.reshape((-1, *self.image_shape))
        for conv in self.convs:
            y = self.activation(conv(y))
        return self.head(y.reshape(y.shape[0], -1)).reshape(*lead, -1)


class ConvDecoder(nnx.Module):
    def __init__(self, in_dim: int, image_shape: Sequence[int], channels: Sequence[int],
                 activation: Callable, *, rngs: nnx.Rngs):
        self.image_shape = tuple(image_shape)
        self.feature_shape = _feature_shape(self.image_shape, channels)
        self.stem = nnx.Linear(in_dim, math.prod(self.feature_shape), rngs=rngs)
        rev = list(reversed(channels))
        outs = [*rev[1:], self.image_shape[-1]]
        self.deconvs = nnx.List(nnx.ConvTranspose(a, b, (3, 3), strides=2, padding="SAME", rngs=rngs)
                                for a, b in zip(rev, outs))
        self.activation = activation

    def __call__(self, h):
        lead = h.shape[:-1]
        y = self.activation(self.stem(h)).reshape((-1, *self.feature_shape))
        for i, deconv in enumerate(self.deconvs):
            y = deconv(y)
            if i < len(self.deconvs) - 1:
                y = self.activation(y)
        return y.reshape(*lead, -1)
