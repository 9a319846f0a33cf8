"""The deterministic autoencoder family (`model.family=autoencoder`): h = f(x), r = g(h).

One class covers undercomplete, overcomplete, linear, tied, sparse (L1, KL to a target activation,
top-k) and denoising variants: they differ in sizes, activations and in the training objective, not in
the forward pass. Input corruption and the contractive penalty apply to every family (the engine's
`model.corruption`, `model.noise_level`, `model.contractive_weight`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from aejax.errors import ConfigError
from aejax.families.registry import Family, register
from aejax.selection import at_least_kth_largest, keep_top_k  # noqa: F401 (imported from here too)
from aejax.settings import NON_NEGATIVE, OPEN_UNIT, setting
from aejax.nets import ACTIVATIONS, backbone
from aejax.objectives import bernoulli_nll, kl_sparsity, l1_penalty, squared_error

SPARSITY = ("none", "l1", "kl", "topk")


@dataclass(frozen=True)
class AutoencoderSettings:
    code_activation: str = setting("linear", "activation of the code h", choices=tuple(ACTIVATIONS))
    output_activation: str = setting("sigmoid", "activation of the reconstruction: sigmoid for data in [0, 1], "
                                     "linear otherwise", choices=tuple(ACTIVATIONS))
    reconstruction_loss: str = setting("squared_error", "squared_error, or cross_entropy (needs sigmoid outputs)",
                                       choices=("squared_error", "cross_entropy"))
    tied_weights: bool = setting(False, "MLP only: decoder kernels are the encoder's, transposed")
    sparsity: str = setting("none", "sparsity penalty on the code", choices=SPARSITY)
    sparsity_weight: float = setting(0.0, "weight of the l1 or kl penalty", rule=NON_NEGATIVE, member=True,
                                     label="sparsity")
    sparsity_target: float = setting(0.05, "rho for sparsity=kl", rule=OPEN_UNIT)
    top_k: int = setting(0, "k for sparsity=topk", member=True, label="k")


def check(spec, s: AutoencoderSettings, grid: dict) -> None:
    """The rules between settings; a setting that would do nothing is refused, not recorded as if it had."""
    if s.reconstruction_loss == "cross_entropy" and s.output_activation != "sigmoid":
        _refuse("model.output_activation", s.output_activation, "sigmoid when model.reconstruction_loss=cross_entropy")
    if s.sparsity == "kl" and s.code_activation != "sigmoid":
        _refuse("model.code_activation", s.code_activation,
                "sigmoid when model.sparsity=kl (the KL penalty needs activations in (0, 1))")
    if "model.top_k" in grid and s.sparsity != "topk":
        _refuse("model.sparsity", s.sparsity, "topk when population.grid varies model.top_k")
    if s.sparsity == "topk" and not 0 < s.top_k <= spec.code_size:
        _refuse("model.top_k", s.top_k, f"an integer in [1, model.code_size={spec.code_size}] when model.sparsity=topk")
    if s.sparsity != "topk" and s.top_k != 0:
        _refuse("model.top_k", s.top_k, "0 unless model.sparsity=topk")
    if s.sparsity not in ("l1", "kl") and max([s.sparsity_weight, *grid.get("model.sparsity_weight", ())]) != 0:
        _refuse("model.sparsity_weight", s.sparsity_weight,
                f"0 with model.sparsity={s.sparsity} (the weight applies to model.sparsity=l1 or kl)")


def _refuse(setting_: str, value, allowed: str):
    raise ConfigError(f"{setting_}={value!r} is not allowed; expected {allowed}")


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


def build(spec, s: AutoencoderSettings, input_dim: int, image_shape, rngs: nnx.Rngs) -> Autoencoder:
    encoder, decoder = backbone(spec, input_dim, image_shape, spec.code_size, rngs, tied=s.tied_weights)
    return Autoencoder(encoder, decoder, ACTIVATIONS[s.code_activation], ACTIVATIONS[s.output_activation],
                       s.top_k if s.sparsity == "topk" else 0)


def loss(spec, s: AutoencoderSettings, dataset_size: int | None = None):
    """The reconstruction term (summed squared error, or cross-entropy) plus the sparsity penalty."""

    def terms(params, x, recon, aux, hp, extra=None):
        out = {}
        if s.reconstruction_loss == "cross_entropy":  # sigmoid outputs, x in [0, 1]
            out["cross_entropy"] = jnp.mean(bernoulli_nll(aux["decoder_out"], x))
            total = out["cross_entropy"]
        else:
            total = jnp.mean(squared_error(recon, x))
        if s.sparsity == "l1":
            out["l1"] = l1_penalty(aux["code"])
            total = total + hp["sparsity_weight"] * out["l1"]
        elif s.sparsity == "kl":
            out["kl_sparsity"] = kl_sparsity(aux["code"], s.sparsity_target)
            total = total + hp["sparsity_weight"] * out["kl_sparsity"]
        return total, out

    return terms


def member_call(s: AutoencoderSettings, hp: dict) -> dict:
    """A top-k member's own k (a population may vary it: `population.grid.model.top_k`)."""
    return {"top_k": hp["top_k"]} if s.sparsity == "topk" else {}


AUTOENCODER = register(Family(
    name="autoencoder", settings=AutoencoderSettings, build=build, loss=loss, label="AE", check=check,
    member_call=member_call, needs_unit_interval=lambda s: ("model.reconstruction_loss=cross_entropy"
                                                            if s.reconstruction_loss == "cross_entropy" else None)))
