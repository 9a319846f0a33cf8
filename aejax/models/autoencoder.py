"""Deterministic autoencoders: h = f(x), r = g(h).

One class covers undercomplete, overcomplete, linear, tied, sparse (top-k) and
denoising variants: they differ in sizes, activations and in the training
objective (see `aejax.objectives`), not in the forward pass.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx


def keep_top_k(h: jax.Array, k) -> jax.Array:
    """Zero all but the k largest entries of each code vector `(..., code_size)`.

    `k` is a Python int, or a traced scalar when a population varies `model.top_k` per
    member (then the threshold comes from a full sort, since `lax.top_k` needs a static k).
    Ties at the threshold are all kept; gradients flow through the kept entries only.
    """
    if isinstance(k, int):
        threshold = jax.lax.top_k(h, k)[0][..., -1:]
    else:
        descending = -jnp.sort(-h, axis=-1)
        index = jnp.clip(jnp.asarray(k).astype(jnp.int32) - 1, 0, h.shape[-1] - 1)
        threshold = jax.lax.dynamic_index_in_dim(descending, index, axis=-1, keepdims=True)
    return jnp.where(h >= threshold, h, 0.0)


class Autoencoder(nnx.Module):
    def __init__(self, encoder: nnx.Module, decoder: nnx.Module, code_activation: Callable,
                 output_activation: Callable, top_k: int = 0):
        self.encoder = encoder
        self.decoder = decoder
        self.code_activation = code_activation
        self.output_activation = output_activation
        self.top_k = top_k

    def encode(self, x, top_k=None):
        """`top_k` overrides the model's k (a population passes each member's own)."""
        h = self.code_activation(self.encoder(x))
        if not self.top_k:  # static: this model has no top-k layer
            return h
        return keep_top_k(h, self.top_k if top_k is None else top_k)

    def decode_logits(self, h):
        """The decoder's output before the output activation (the cross-entropy loss needs it)."""
        if getattr(self.decoder, "tied", False):  # tied weights: the decoder borrows the encoder's kernels
            return self.decoder(h, self.encoder)
        return self.decoder(h)

    def decode(self, h):
        return self.output_activation(self.decode_logits(h))

    def __call__(self, x, key=None, top_k=None):
        """Returns `(reconstruction, {"code": h, "decoder_out": pre-activation output})`; `key` is
        unused (the interface is shared with the VAE)."""
        h = self.encode(x, top_k)
        logits = self.decode_logits(h)
        return self.output_activation(logits), {"code": h, "decoder_out": logits}
