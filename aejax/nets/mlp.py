"""Fully connected encoder and decoder stacks.

Shapes: inputs are flat vectors `(..., in_dim)`. Hidden layers use `activation`;
the last layer of each stack is affine (its non-linearity is the caller's choice:
the code activation for an encoder, the output activation for a decoder).
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax.numpy as jnp
from flax import nnx

LECUN = nnx.initializers.lecun_normal()  # flax's default


class MLPEncoder(nnx.Module):
    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int,
                 activation: Callable, *, rngs: nnx.Rngs, kernel_init: Callable = LECUN):
        sizes = [in_dim, *hidden, out_dim]
        self.layers = nnx.List(nnx.Linear(a, b, kernel_init=kernel_init, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:]))
        self.activation = activation

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)


class MLPDecoder(nnx.Module):
    """Mirror of an encoder: `hidden` is given in the encoder's order and reversed here.

    With `tied=True` the decoder owns only its biases and is called with the encoder,
    whose kernels it uses transposed: the autoencoder has roughly half the parameters.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int,
                 activation: Callable, *, rngs: nnx.Rngs, tied: bool = False, kernel_init: Callable = LECUN):
        sizes = [in_dim, *reversed(hidden), out_dim]
        self.activation = activation
        self.tied = tied
        if tied:
            self.biases = nnx.List(nnx.Param(jnp.zeros((b,))) for b in sizes[1:])
        else:
            self.layers = nnx.List(nnx.Linear(a, b, kernel_init=kernel_init, rngs=rngs)
                                   for a, b in zip(sizes[:-1], sizes[1:]))

    def __call__(self, h, encoder: MLPEncoder | None = None):
        if not self.tied:
            for layer in self.layers[:-1]:
                h = self.activation(layer(h))
            return self.layers[-1](h)
        kernels = [layer.kernel[...].T for layer in reversed(encoder.layers)]
        for i, (kernel, bias) in enumerate(zip(kernels, self.biases)):
            h = h @ kernel + bias[...]
            if i < len(kernels) - 1:
                h = self.activation(h)
        return h
