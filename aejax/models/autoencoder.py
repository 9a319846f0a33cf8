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
    member (`lax.top_k` needs a static k; a full sort would cost ten times a layer's matmul).
    Ties at the threshold are all kept; gradients flow through the kept entries only.
    """
    if isinstance(k, int):
        threshold = jax.lax.top_k(h, k)[0][..., -1:]
        return jnp.where(h >= threshold, h, 0.0)
    return jnp.where(at_least_kth_largest(h, k), h, 0.0)


def at_least_kth_largest(h: jax.Array, k) -> jax.Array:
    """Mask of the entries >= the k-th largest of their row, for a traced k: exact, in 32 steps.

    float32 maps to uint32 keys in the same order (flip every bit of a negative number, the
    sign bit of a non-negative one); the k-th largest key is then built bit by bit, highest
    first, keeping a bit when at least k keys are still >= the candidate.
    """
    bits = jax.lax.bitcast_convert_type(h.astype(jnp.float32), jnp.uint32)
    keys = jnp.where(bits >> 31 == 1, ~bits, bits | jnp.uint32(0x80000000))
    k = jnp.asarray(k).astype(jnp.int32)

    def take_bit(i, kth):
        candidate = kth | (jnp.uint32(1) << (31 - i).astype(jnp.uint32))
        enough = jnp.sum(keys >= candidate[..., None], axis=-1) >= k
        return jnp.where(enough, candidate, kth)

    kth = jax.lax.fori_loop(0, 32, take_bit, jnp.zeros(h.shape[:-1], jnp.uint32))
    return keys >= kth[..., None]


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
