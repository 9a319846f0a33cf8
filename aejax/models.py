"""A `ModelSpec` made concrete: its model, parameters, training loss and extra state, through its family.

    build_model(spec, input_dim, image_shape, key=k)   # the Flax model (its family's `build`)
    init_params(spec, input_dim, image_shape, k)        # a plain dict of parameters (what optax and Orbax see)
    model_graph(spec, input_dim, image_shape)           # the static structure; nnx.merge(graph, params)
    make_loss(spec, graph, ...)                         # loss(params, x, key, hp[, extra]) -> (loss, terms)
    critic_for(spec)                                    # the family's extra per-member state, or None

Every model has `encode(x)`, `decode(h)` and `__call__(x, key) -> (reconstruction, aux)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from aejax.config import ModelSpec
from aejax.families.autoencoder import Autoencoder, keep_top_k
from aejax.families.registry import Critic
from aejax.families.vae import VAE
from aejax.objectives import contractive_penalty, corrupt, squared_error

__all__ = ["Autoencoder", "VAE", "build_model", "critic_for", "init_params", "keep_top_k", "make_loss",
           "member_call", "member_model", "model_graph", "state_hooks", "StateHooks"]


def build_model(spec: ModelSpec, input_dim: int, image_shape=None, *, key: jax.Array):
    """Build one model with parameters drawn from `key`."""
    return spec.declaration.build(spec, spec.family_settings, input_dim, image_shape, nnx.Rngs(params=key))


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


def member_model(graph, population_params, member: int = 0, own: dict | None = None):
    """One member of a population (params with a leading member axis) as a usable model.

    `own`: the member's own values of shape-preserving model settings (`member_settings(spec, row)`: a
    top-k autoencoder's `top_k`, an SAE's `k` and `bandwidth`), set on the model where it has them (the
    graph holds the config's values)."""
    model = nnx.merge(graph, jax.tree.map(lambda a: a[member], population_params))
    for name, value in (own or {}).items():
        current = getattr(model, name, None)
        if current:  # 0 or None: the model has no such layer (an autoencoder without top-k)
            setattr(model, name, type(current)(value))
    return model


def member_settings(spec: ModelSpec, row: dict) -> dict:
    """A population row's values of the settings `member_call` hands the model, as Python numbers."""
    hp = {key.partition(".")[2]: value for key, value in row.items() if "." in key}
    return {k: float(v) for k, v in member_call(spec, hp).items()}


def count_params(params) -> int:
    return sum(int(x.size) for x in jax.tree.leaves(params))


def critic_for(spec: ModelSpec) -> Critic | None:
    """The extra per-member state the family (or its objective) trains, e.g. FactorVAE's discriminator."""
    return spec.declaration.extra(spec, spec.family_settings)


@dataclass(frozen=True)
class StateHooks:
    """A family's training state that the gradient does not set (`Family.member_init`, `adjust_grads`,
    `after_update`), bound to its settings; the engine calls each one that is not None."""
    member_init: Callable | None = None   # (params, hp) -> params
    adjust_grads: Callable | None = None  # (grads, params) -> grads
    after_update: Callable | None = None  # (new_params, old_params, aux, hp) -> params
    buffers: tuple = ()                   # parameters set by after_update: not in the logged norms


def state_hooks(spec: ModelSpec) -> StateHooks:
    fam, s = spec.declaration, spec.family_settings
    bind = lambda fn: None if fn is None else (lambda *args: fn(*args, s))
    return StateHooks(bind(fam.member_init), bind(fam.adjust_grads), bind(fam.after_update), fam.buffers)


def member_call(spec: ModelSpec, hp: dict) -> dict:
    """Keyword arguments that hand a member its own value of a shape-preserving model setting (top-k's k)."""
    return spec.declaration.member_call(spec.family_settings, hp)


def make_loss(spec: ModelSpec, graph, use_contractive: bool | None = None,
              use_corruption: bool | None = None, binarize_batches: bool = False,
              dataset_size: int | None = None) -> Callable:
    """The training objective `loss(params, x, key, hp) -> (scalar, terms)`.

    `hp` holds this member's scalar hyperparameters. The family's `loss` gives its own terms from the
    model's output; around it, every family gets the same input corruption (`model.noise_level`),
    contractive penalty, and the logged sse and mse. A family with extra state (FactorVAE's
    critic) gives `loss(params, x, key, hp, critic_params) -> (scalar, (terms, z))`: the critic's
    parameters come in and the sampled codes go out, for the critic's own update (`aejax.train`). A family
    with `after_update` (the SAE) gives `(scalar, (terms, aux))`: the model's outputs go to it.
    `dataset_size` completes beta-TCVAE's TC estimate with its constant. The Jacobian is only
    computed when `use_contractive`, and noise only drawn when `use_corruption` (defaults: the
    weight, the level is > 0); a population that varies them passes True. `binarize_batches`
    (data.binarize=dynamic) replaces every batch of intensities by a fresh Bernoulli draw, input and
    target alike (Burda et al. 2016).
    """
    if use_contractive is None:
        use_contractive = spec.contractive_weight > 0
    if use_corruption is None:
        use_corruption = spec.noise_level > 0
    family_terms = spec.declaration.loss(spec, spec.family_settings, dataset_size)
    with_critic = critic_for(spec) is not None
    with_aux = spec.declaration.after_update is not None  # the step hands the batch's outputs to after_update

    def loss(params, x, key, hp, critic_params=None):
        model = nnx.merge(graph, params)
        if binarize_batches:
            key, binarize_key = jax.random.split(key)
            x = jax.random.bernoulli(binarize_key, x).astype(x.dtype)
        noise_key, model_key = jax.random.split(key)
        x_in = corrupt(x, noise_key, spec.corruption, hp["noise_level"]) if use_corruption else x
        recon, aux = model(x_in, model_key, **member_call(spec, hp))
        terms = {"sse": jnp.mean(squared_error(recon, x))}
        terms["mse"] = terms["sse"] / x.shape[-1]
        total, own = family_terms(params, x, recon, aux, hp, critic_params)
        terms.update(own)
        if use_contractive:
            terms["contractive"] = contractive_penalty(model.encode, x_in)
            total = total + hp["contractive_weight"] * terms["contractive"]
        terms["loss"] = total
        if with_critic:
            return total, (terms, aux["z"])
        return (total, (terms, aux)) if with_aux else (total, terms)

    return loss
