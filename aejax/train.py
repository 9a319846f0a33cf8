"""The training engine: one pure step, steps under `lax.scan`, members under `vmap` (conv members
on a CPU: a loop over members, `population_block`).

    step(state, batch, key, hp, with_norms) -> (state, terms)

Keys are never stored: member m's key for step t is `fold_in(fold_in(key(seed_m), STEP), t)`
and its shuffle for epoch e is drawn from `fold_in(fold_in(key(seed_m), SHUFFLE), e)` (`aejax.shuffle`), so a run resumed
from a checkpoint replays exactly the randomness of an uninterrupted one.

A population's training state is `{"params", "opt_state", "diverged_at"}` (plus "critic" for an
objective with its own adversary, FactorVAE's discriminator); the member axis is
the leading axis of every array in it and in hp, the axis to shard across devices
(`jax.sharding`) when a population outgrows one. `diverged_at` is 0 for a healthy member and
the step (counted from 1) at which its loss first turned non-finite otherwise.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from aejax.errors import ConfigError, Diverged
from aejax.objectives import MEMBER_AXIS
from aejax.shuffle import epoch_order

INIT, STEP, SHUFFLE = 0, 1, 2  # independent random streams of one member
CRITIC = 3  # the critic's stream, folded into a step's (or the init) key


def member_keys(seeds) -> jax.Array:
    return jax.vmap(jax.random.key)(jnp.asarray(seeds, jnp.uint32))


def make_step(loss_fn: Callable, optimizer: optax.GradientTransformation, critic=None, hooks=None) -> Callable:
    """`step(state, batch, key, hp, with_norms)` -> (state, terms) for one member.

    `state` holds "params" and "opt_state" (and, for objectives with a critic such as FactorVAE's
    discriminator, "critic": its own params and opt_state, updated in the same step by its own
    optimiser from the codes of the same batch; `critic` is `aejax.vae_objectives.Critic`).
    Gradient, update and parameter norms cost a full pass over the parameters each, which
    doubles the time of a tiny model's step; they are computed only when `with_norms` (an
    unbatched traced bool: a real branch, even under vmap) and are 0 otherwise.
    `hooks` (`aejax.models.StateHooks`) adjust the gradient before the optimiser and set, after it, the
    parameters the gradient does not train (an SAE's unit decoder rows and firing counters).
    """
    adjust = hooks.adjust_grads if hooks else None
    after = hooks.after_update if hooks else None
    buffers = hooks.buffers if hooks else ()

    def step(state, batch, key, hp, with_norms=True):
        params, opt_state = state["params"], state["opt_state"]
        if after is not None:
            (_, (terms, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, key, hp)
        elif critic is None:
            (_, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, key, hp)
        else:
            (_, (terms, codes)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                params, batch, key, hp, state["critic"]["params"])
        if adjust is not None:
            grads = adjust(grads, params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        updates = jax.tree.map(lambda u: hp["learning_rate"] * u, updates)
        new_params = optax.apply_updates(params, updates)
        if after is not None:
            new_params = after(new_params, params, aux, hp)
        params = new_params
        new = dict(state, params=params, opt_state=opt_state)
        if critic is not None:
            # Both updates read the state from before the step (disentanglement_lib's order).
            critic_params, critic_opt, critic_terms = critic.update(
                state["critic"]["params"], state["critic"]["opt_state"], codes, jax.random.fold_in(key, CRITIC))
            new["critic"] = {"params": critic_params, "opt_state": critic_opt}
            terms = dict(terms, **critic_terms)
        trained = lambda tree: {k: v for k, v in tree.items() if k not in buffers} if buffers else tree
        norms = jax.lax.cond(with_norms, lambda: tuple(optax.tree.norm(trained(t)) for t in (grads, updates, params)),
                             lambda: (jnp.float32(0),) * 3)
        terms = dict(terms, grad_norm=norms[0], update_norm=norms[1], param_norm=norms[2])
        return new, terms

    return step


NORM_TERMS = ("grad_norm", "update_norm", "param_norm")  # only valid at steps where with_norms was true


def make_member_program(step: Callable, n_train: int, batch_size: int, norms_every: int = 1,
                        last_step: int = -1, mask_divergence: bool = False, decode: Callable | None = None,
                        streamed: bool = False, shuffle: str = "sort") -> Callable:
    """`run(state, key, x, hp, first_step, n_epochs, n_steps) -> (state, terms)` for ONE member.

    Trains `n_epochs` epochs' worth of `n_steps` steps each from step `first_step`: whole epochs
    (`n_steps` = the `n_train // batch_size` steps of an epoch; the last partial batch is dropped)
    or, with `n_epochs=1`, a run of steps inside one epoch, so that a compiled call can be sized
    by time rather than by epochs (`aejax.schedule`). Returns the new state and every step's
    terms, each `(n_epochs, n_steps)`. The step's `hp` gets the member's "step" (counted from 0).
    `decode` maps stored rows to a float batch (bit-packed images: `Dataset.train_decode`).
    Norms are computed at steps (counted from 1) that are multiples of `norms_every`, and at `last_step`.

    With `mask_divergence`, a step whose loss is not finite is not applied: the member keeps
    its last finite parameters for the rest of the run and `diverged_at` records the step.
    It is a select inside the compiled step (no host round trip), and a healthy member takes
    the new values bitwise unchanged.

    `streamed`: `x` holds only this call's rows, already in their order (`aejax.data.activations`: data
    larger than memory, fed one chunk per call): step j of the call takes rows [j*B, (j+1)*B). Every
    member sees the same order; the training step is the same.

    `shuffle`: how an epoch's order is drawn, `trainer.shuffle` (`aejax.shuffle`: sort or feistel).
    """
    steps_per_epoch = n_train // batch_size
    full_batch = not streamed and steps_per_epoch == 1 and batch_size == n_train  # order is irrelevant

    def run(state, key, x, hp, first_step, n_epochs, n_steps):
        first_epoch, offset = first_step // steps_per_epoch, first_step % steps_per_epoch

        def one_epoch(carry, epoch):
            perm = None if full_batch or streamed else epoch_order(
                jax.random.fold_in(jax.random.fold_in(key, SHUFFLE), epoch), n_train, shuffle)

            def one_step(carry, i):
                trained, diverged_at = carry
                if streamed:  # a call of several epochs starts at an epoch's first step (aejax.schedule)
                    j = (epoch - first_epoch) * n_steps + i - offset
                    batch = jax.lax.dynamic_slice_in_dim(x, j * batch_size, batch_size)
                elif full_batch:
                    batch = x
                else:
                    batch = jnp.take(x, jax.lax.dynamic_slice_in_dim(perm, i * batch_size, batch_size), axis=0)
                if decode is not None:
                    batch = decode(batch)
                step_index = epoch * steps_per_epoch + i
                step_key = jax.random.fold_in(jax.random.fold_in(key, STEP), step_index)
                with_norms = ((step_index + 1) % norms_every == 0) | (step_index + 1 == last_step)
                new, terms = step(trained, batch, step_key, dict(hp, step=step_index), with_norms)
                if not mask_divergence:
                    return (new, diverged_at), terms
                ok = (diverged_at == 0) & jnp.isfinite(terms["loss"])
                # Only the parameters are selected: a diverged member's optimiser state may turn
                # NaN, but its parameters never move again (ok stays false), and skipping the
                # select over the optimiser state (twice the parameters, for Adam) keeps the cost low.
                keep = lambda new_tree, old_tree: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new_tree, old_tree)
                new = dict(new, params=keep(new["params"], trained["params"]))
                if "critic" in new:
                    new["critic"] = dict(new["critic"], params=keep(new["critic"]["params"], trained["critic"]["params"]))
                diverged_at = jnp.where((diverged_at == 0) & ~ok, step_index + 1, diverged_at)
                return (new, diverged_at), terms

            return jax.lax.scan(one_step, carry, offset + jnp.arange(n_steps))

        epochs = first_epoch + jnp.arange(n_epochs)
        trained = {k: v for k, v in state.items() if k != "diverged_at"}
        (trained, diverged_at), terms = jax.lax.scan(one_epoch, (trained, state["diverged_at"]), epochs)
        return dict(trained, diverged_at=diverged_at), terms

    return run


def member_block_size(population: int, largest: int = 256) -> int:
    """Members per block: the largest divisor of the population up to `largest` (or all of it)."""
    block = max(d for d in range(1, min(population, largest) + 1) if population % d == 0)
    return block if block >= 32 or population <= largest else population


def population_block(architecture: str) -> int | None:
    """`compile_population`'s `block` for this architecture: 1 for conv members on a CPU, else None
    (each device's share of the population picks its own, `member_block_size`).

    With 1 the program loops over the members (`lax.map`) and runs each member's step unbatched, as
    a run of that member alone would, bitwise. Under `vmap` each layer's 2-D matmuls become batched
    dots and every reshuffle of the conv lowering E times larger, which XLA:CPU runs more slowly per
    member (scripts/bench.py figure 5, README Speed: the study's VAE at E = 16 went from 0.52 to 0.71
    of torch's single-model rate). A GPU keeps `vmap`: one small member leaves most of it idle. MLPs
    keep `vmap` everywhere (figure 3: 4096 tiny members)."""
    return 1 if architecture == "conv" and jax.default_backend() == "cpu" else None


def compile_population(member_program: Callable, shared_data: bool, block: int | None = None) -> Callable:
    """Vectorise a member program over the population and compile it.

    `x` is `(N, D)` shared by all members, or `(E, N, D)` when each member has its own data.
    Returns `run(state, keys, x, hp, first_step, n_epochs, n_steps) -> (state, terms)`; `n_epochs` and
    `n_steps` are static (a new value compiles a new program), `first_step` is traced (no recompilation).

    Large populations run in blocks of `block` members (`member_block_size`), one block after
    another inside the program: a block's parameters and optimiser state stay in cache for
    all its steps instead of streaming the whole population through memory at every step.
    """
    batched = jax.vmap(member_program, in_axes=(0, 0, None if shared_data else 0, 0, None, None, None),
                       axis_name=MEMBER_AXIS)

    def vectorised(state, keys, x, hp, first_step, n_epochs, n_steps):
        if keys.shape[0] > 1:
            return batched(state, keys, x, hp, first_step, n_epochs, n_steps)
        # One member: call the program unbatched. Under vmap every matmul becomes a batched
        # dot of batch size 1, which XLA's CPU backend runs measurably slower (scripts/bench.py).
        one = lambda tree: jax.tree.map(lambda a: a[0], tree)
        out = member_program(one(state), keys[0], x if shared_data else x[0], one(hp), first_step, n_epochs, n_steps)
        return jax.tree.map(lambda a: a[None], out)

    def run(state, keys, x, hp, first_step, n_epochs, n_steps):
        population = keys.shape[0]
        size = block or member_block_size(population)
        if size >= population:
            return vectorised(state, keys, x, hp, first_step, n_epochs, n_steps)
        blocks = lambda a: a.reshape(population // size, size, *a.shape[1:])
        per_member = (state, keys, hp) if shared_data else (state, keys, hp, x)
        stacked = jax.tree.map(blocks, per_member)

        def one_block(args):
            s, k, h = args[:3]
            return vectorised(s, k, x if shared_data else args[3], h, first_step, n_epochs, n_steps)

        out = jax.lax.map(one_block, stacked)
        return jax.tree.map(lambda a: a.reshape(population, *a.shape[2:]), out)

    devices = jax.devices()
    if len(devices) > 1:
        run = _shard_members(run, devices, shared_data)
    # No buffer donation: the caller keeps the pre-call state, the last good one if this call diverges.
    return jax.jit(run, static_argnums=(5, 6))


def use_cpu_devices(count: int | None) -> None:
    """`trainer.cpu_devices`: split the CPU into `count` XLA devices, so that a population's members train as
    `count` programs side by side (`_shard_members`). JAX fixes the count when its CPU backend starts: in a
    process where it already runs with another count (a Python session, a multirun on Hydra's basic launcher)
    the setting is refused rather than silently not applied. None leaves JAX's own (XLA_FLAGS')."""
    if count is None:
        return
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # the backend runs: fine if it runs with this count
        running = len(jax.devices("cpu"))
        if running != count:
            raise ConfigError(f"trainer.cpu_devices={count} is not allowed in this process; expected {running} or "
                              f"null: JAX's CPU backend already runs with {running} device(s) here, and the count "
                              "is fixed when it starts (one value per process: a multirun on Hydra's basic "
                              "launcher shares one)") from None


def devices_for(population: int, devices: list) -> list:
    """The devices a population's members are split over: as many as divide it evenly (6 members on 4 devices:
    3 of them, 2 members each), so that every device runs the same program on the same number of members."""
    return devices[:max(d for d in range(1, len(devices) + 1) if population % d == 0)]


def _shard_members(run: Callable, devices, shared_data: bool) -> Callable:
    """Split the member axis across devices (GPUs, TPU cores, or CPU devices made with `trainer.cpu_devices`
    or XLA_FLAGS=--xla_force_host_platform_device_count=N): each trains its share independently."""
    from jax.sharding import Mesh, PartitionSpec as P

    def sharded(state, keys, x, hp, first_step, n_epochs, n_steps):
        used = devices_for(keys.shape[0], devices)
        if len(used) == 1:
            return run(state, keys, x, hp, first_step, n_epochs, n_steps)
        local = jax.shard_map(lambda s, k, xx, h, e: run(s, k, xx, h, e, n_epochs, n_steps),
                              mesh=Mesh(used, ("members",)),
                              in_specs=(P("members"), P("members"), P() if shared_data else P("members"),
                                        P("members"), P()),
                              out_specs=P("members"), check_vma=False)
        return local(state, keys, x, hp, first_step)

    return sharded


def init_population(init_one: Callable, optimizer: optax.GradientTransformation, keys: jax.Array,
                    critic=None, hp: dict | None = None, member_init: Callable | None = None) -> dict:
    """The training state of every member (see the module docstring); `init_one(key) -> params`.
    With a `critic` (FactorVAE's discriminator), each member also gets its own critic and optimiser state.
    `member_init(params, hp) -> params` gives each member its own initial values from its hyperparameters
    `hp` (JumpReLU's threshold)."""
    init_keys = jax.vmap(lambda k: jax.random.fold_in(k, INIT))(keys)
    params = jax.jit(jax.vmap(init_one))(init_keys)
    if member_init is not None:
        params = jax.jit(jax.vmap(member_init))(params, hp)
    state = {"params": params, "opt_state": jax.jit(jax.vmap(optimizer.init))(params),
             "diverged_at": jnp.zeros(keys.shape[0], jnp.int32)}
    if critic is not None:
        critic_params = jax.jit(jax.vmap(critic.init))(jax.vmap(lambda k: jax.random.fold_in(k, CRITIC))(init_keys))
        state["critic"] = {"params": critic_params, "opt_state": jax.jit(jax.vmap(critic.optimizer.init))(critic_params)}
    return state


def check_finite(losses, first_step: int, ignore=None) -> None:
    """Raise `Diverged` at the first non-finite loss; `losses` is `(E, steps)` on the host.
    Members where `ignore` (`(E,)` bools) is true are skipped: their divergence was masked.

    Steps are counted from 1, as in metrics.jsonl: step `first_step + 1` is the first of `losses`.
    """
    import numpy as np

    bad = ~np.isfinite(losses)
    if ignore is not None:
        bad &= ~np.asarray(ignore)[:, None]
    if bad.any():
        step = int(np.argmax(bad.any(axis=0)))
        member = int(np.argmax(bad[:, step]))
        raise Diverged(member, first_step + step + 1, float(losses[member, step]))
