"""Network bodies every family builds on: an encoder stack and its mirrored decoder (`model.architecture`).

`backbone(spec, input_dim, image_shape, encoder_out, rngs, tied=False)` reads the network settings of
a `ModelSpec` (hidden, channels, kernel sizes, strides, dense, init, activation, conv_impl) and returns
`(encoder, decoder)`: the encoder maps `(..., input_dim)` to `(..., encoder_out)`, the decoder
`(..., code_size)` back to `(..., input_dim)` (pre-activation). This package knows no family.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from aejax.errors import ConfigError
from aejax.nets.conv import CONV_IMPLS, ConvDecoder, ConvEncoder, resolve_conv_impl
from aejax.nets.mlp import MLPDecoder, MLPEncoder

ACTIVATIONS = {
    "relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid, "linear": lambda x: x,
    "elu": jax.nn.elu, "gelu": jax.nn.gelu, "softplus": jax.nn.softplus,
}

# model.init: kernel initialisers by name (biases start at 0 either way)
INITS = {"lecun_normal": nnx.initializers.lecun_normal(), "glorot_uniform": nnx.initializers.glorot_uniform()}
ARCHITECTURES = ("mlp", "conv")


def backbone(spec, input_dim: int, image_shape, encoder_out: int, rngs: nnx.Rngs, tied: bool = False):
    """The encoder and decoder stacks of `spec.architecture`; `tied` (MLP only): decoder kernels are the
    encoder's, transposed."""
    act = ACTIVATIONS[spec.activation]
    if spec.architecture == "mlp":
        encoder = MLPEncoder(input_dim, spec.hidden, encoder_out, act, rngs=rngs, kernel_init=INITS[spec.init])
        decoder = MLPDecoder(spec.code_size, spec.hidden, input_dim, act, rngs=rngs, tied=tied,
                             kernel_init=INITS[spec.init])
        return encoder, decoder
    check_conv_fits(spec, image_shape)
    kernels, strides, decoder_kernels = spec.conv_layers()
    if tied:
        raise ConfigError("model.tied_weights=True is not allowed; expected False with model.architecture=conv")
    impl = resolve_conv_impl(spec.conv_impl)  # auto: the matmul lowering on a CPU, XLA's convolutions elsewhere
    encoder = ConvEncoder(image_shape, spec.channels, kernels, strides, spec.dense, encoder_out, act, INITS[spec.init],
                          impl=impl, rngs=rngs)
    decoder = ConvDecoder(spec.code_size, image_shape, spec.channels, decoder_kernels, strides, spec.dense, act,
                          INITS[spec.init], impl=impl, rngs=rngs)
    return encoder, decoder


def check_conv_fits(spec, image_shape) -> None:
    """Conv layers need images whose sides the product of the strides divides."""
    if image_shape is None:
        raise ConfigError("model.architecture='conv' is not allowed; expected mlp for data without an image shape")
    strides = spec.conv_layers()[1]
    scale = math.prod(strides)
    if image_shape[0] % scale or image_shape[1] % scale:
        raise ConfigError(f"model.channels={list(spec.channels)} is not allowed; expected at most as many "
                          f"layers as divide the image sides {image_shape[:2]} exactly by their strides "
                          f"{list(strides)}")
