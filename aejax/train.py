"""The training engine: one pure step, whole epochs under `lax.scan`, members under `vmap`.

    step(params, opt_state, batch, key, hp) -> (params, opt_state, terms)

Keys are never stored: member m's key for step t is `fold_in(fold_in(key(seed_m), STEP), t)`
and its shuffle for epoch e is `fold_in(fold_in(key(seed_m), SHUFFLE), e)`, so a run resumed
from a checkpoint replays exactly the randomness of an uninterrupted one.

The member axis is the leading axis of every array in params, opt_state and hp; it is the
axis to shard across devices (`jax.sharding`) when a population outgrows one.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from aejax.errors import Diverged

INIT, STEP, SHUFFLE = 0, 1, 2  # independent random streams of one member


def member_keys(seeds) -> jax.Array:
    return jax.vmap(jax.random.key)(jnp.asarray(seeds, jnp.uint32))


def make_step(loss_fn: Callable, optimizer: optax.GradientTransformation) -> Callable:
    def step(params, opt_state, batch, key, hp):
        (_, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, key, hp)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        updates = jax.tree.map(lambda u: hp["learning_rate"] * u, updates)
        params = optax.apply_updates(params, updates)
        terms = dict(terms, grad_norm=optax.tree.norm(grads), update_norm=optax.tree.norm(updates),
                     param_norm=optax.tree.norm(params))
        return params, opt_state, terms

    return step


def make_member_program(step: Callable, n_train: int, batch_size: int) -> Callable:
    """`run(params, opt_state, key, x, hp, first_epoch, n_epochs)` for ONE member.

    Trains `n_epochs` epochs of `n_train // batch_size` steps (the last partial batch is
    dropped) and returns the new state and every step's terms, each `(n_epochs, steps)`.
    """
    steps_per_epoch = n_train // batch_size
    full_batch = steps_per_epoch == 1 and batch_size == n_train  # order is irrelevant: skip shuffling

    def run(params, opt_state, key, x, hp, first_epoch, n_epochs):
        def one_epoch(carry, epoch):
            perm = None if full_batch else jax.random.permutation(
                jax.random.fold_in(jax.random.fold_in(key, SHUFFLE), epoch), n_train)

            def one_step(carry, i):
                params, opt_state = carry
                if full_batch:
                    batch = x
                else:
                    batch = jnp.take(x, jax.lax.dynamic_slice_in_dim(perm, i * batch_size, batch_size), axis=0)
                step_key = jax.random.fold_in(jax.random.fold_in(key, STEP), epoch * steps_per_epoch + i)
                params, opt_state, terms = step(params, opt_state, batch, step_key, hp)
                return (params, opt_state), terms

            return jax.lax.scan(one_step, carry, jnp.arange(steps_per_epoch))

        epochs = first_epoch + jnp.arange(n_epochs)
        (params, opt_state), terms = jax.lax.scan(one_epoch, (params, opt_state), epochs)
        return params, opt_state, terms

    return run


def compile_population(member_program: Callable, shared_data: bool) -> Callable:
    """Vectorise a member program over the population and compile it.

    `x` is `(N, D)` shared by all members, or `(E, N, D)` when each member has its own data.
    Returns `run(params, opt_state, keys, x, hp, first_epoch, n_epochs)`; `n_epochs` is static
    (a new value compiles a new program), `first_epoch` is traced (no recompilation).
    """
    vectorised = jax.vmap(member_program, in_axes=(0, 0, 0, None if shared_data else 0, 0, None, None))
    # No buffer donation: the caller keeps the pre-call state, the last good one if this call diverges.
    return jax.jit(vectorised, static_argnums=6)


def init_population(init_one: Callable, optimizer: optax.GradientTransformation, keys: jax.Array):
    """Parameters and optimiser state for every member; `init_one(key) -> params`."""
    init_keys = jax.vmap(lambda k: jax.random.fold_in(k, INIT))(keys)
    params = jax.jit(jax.vmap(init_one))(init_keys)
    return params, jax.jit(jax.vmap(optimizer.init))(params)


def check_finite(losses, first_step: int) -> None:
    """Raise `Diverged` at the first non-finite loss; `losses` is `(E, steps)` on the host.

    Steps are counted from 1, as in metrics.jsonl: step `first_step + 1` is the first of `losses`.
    """
    import numpy as np

    bad = ~np.isfinite(losses)
    if bad.any():
        step = int(np.argmax(bad.any(axis=0)))
        member = int(np.argmax(bad[:, step]))
        raise Diverged(member, first_step + step + 1, float(losses[member, step]))
