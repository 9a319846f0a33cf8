"""Model zoo. `build_model(spec, data_shape, key)` is the one entry point.

Families (`model.family`): autoencoder, vae. Backbones (`model.architecture`): mlp, conv.
Every model has `encode(x) -> h`, `decode(h) -> r` and `__call__(x, key) -> (r, aux)`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from aejax.config import ConfigError, ModelSpec
from aejax.models.autoencoder import Autoencoder, keep_top_k
from aejax.models.conv import ConvDecoder, ConvEncoder
from aejax.models.mlp import MLPDecoder, MLPEncoder
from aejax.models.vae import VAE

ACTIVATIONS = {
    "relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid, "linear": lambda x: x,
    "elu": jax.nn.elu, "gelu": jax.nn.gelu, "softplus": jax.nn.softplus,
}

# model.init: kernel initialisers by name (biases start at 0 either way)
INITS = {"lecun_normal": nnx.initializers.lecun_normal(), "glorot_uniform": nnx.initializers.glorot_uniform()}

__all__ = ["Autoencoder", "VAE", "build_model", "keep_top_k", "ACTIVATIONS"]


def _backbone(spec: ModelSpec, input_dim: int, image_shape, encoder_out: int, rngs: nnx.Rngs):
    act = ACTIVATIONS[spec.activation]
    if spec.architecture == "mlp":
        encoder = MLPEncoder(input_dim, spec.hidden, encoder_out, act, rngs=rngs, kernel_init=INITS[spec.init])
        decoder = MLPDecoder(spec.code_size, spec.hidden, input_dim, act, rngs=rngs,
                             tied=spec.tied_weights, kernel_init=INITS[spec.init])
        return encoder, decoder
    if image_shape is None:
        raise ConfigError("model.architecture='conv' is not allowed; expected mlp for data without an image shape")
    kernels, strides, decoder_kernels = spec.conv_layers()
    scale = math.prod(strides)
    if image_shape[0] % scale or image_shape[1] % scale:
        raise ConfigError(f"model.channels={list(spec.channels)} is not allowed; expected at most as many "
                          f"layers as divide the image sides {image_shape[:2]} exactly by their strides "
                          f"{list(strides)}")
    if spec.tied_weights:
        raise ConfigError("model.tied_weights=True is not allowed; expected False with model.architecture=conv")
    encoder = ConvEncoder(image_shape, spec.channels, kernels, strides, spec.dense, encoder_out, act, INITS[spec.init],
                          rngs=rngs)
    decoder = ConvDecoder(spec.code_size, image_shape, spec.channels, decoder_kernels, strides, spec.dense, act,
                          INITS[spec.init], rngs=rngs)
    return encoder, decoder


def build_model(spec: ModelSpec, input_dim: int, image_shape=None, *, key: jax.Array):
    """Build one model with parameters drawn from `key`."""
    rngs = nnx.Rngs(params=key)
    if spec.family == "vae":
        encoder, decoder = _backbone(spec, input_dim, image_shape, 2 * spec.code_size, rngs)
        model = VAE(encoder, decoder, spec.code_size, spec.likelihood)
    else:
        encoder, decoder = _backbone(spec, input_dim, image_shape, spec.code_size, rngs)
        top_k = spec.top_k if spec.sparsity == "topk" else 0
        model = Autoencoder(encoder, decoder, ACTIVATIONS[spec.code_activation],
                            ACTIVATIONS[spec.output_activation], top_k)
    return model


def init_params(spec: ModelSpec, input_dim: int, image_shape, key: jax.Array) -> dict:
    """Parameters of one model as a plain nested dict (what optax and Orbax see).

    `model.init_scale` multiplies every kernel of the default (LeCun normal) initialisation.
    """
    params = nnx.to_pure_dict(nnx.split(build_model(spec, input_dim, image_shape, key=key))[1])
    if spec.init_scale == 1.0:
        return params
    return jax.tree.map_with_path(
        lambda path, v: v * spec.init_scale if getattr(path[-1], "key", None) == "kernel" else v, params)


def model_graph(spec: ModelSpec, input_dim: int, image_shape=None):
    """The static structure of the model; `nnx.merge(graph, params)` rebuilds it inside a jitted step."""
    abstract = nnx.eval_shape(lambda: build_model(spec, input_dim, image_shape, key=jax.random.key(0)))
    return nnx.split(abstract)[0]


def member_model(graph, population_params, member: int = 0, top_k: float | None = None):
    """One member of a population (params with a leading member axis) as a usable model.

    `top_k`: the member's own k where a population varies `model.top_k` (the graph holds the
    config's k)."""
    model = nnx.merge(graph, jax.tree.map(lambda a: a[member], population_params))
    if top_k is not None and getattr(model, "top_k", 0):
        model.top_k = int(top_k)
    return model


def count_params(params) -> int:
    return sum(int(x.size) for x in jax.tree.leaves(params))
