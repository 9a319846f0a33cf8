"""Test metrics for every member of a population, computed in one compiled program.

Per member: per-pixel MSE and the per-image sum of squared errors (SSE) of the
deterministic reconstruction g(f(x)) (for a VAE, the decoder mean at the posterior
mean), plus the variant's own figures:
- sparse codes: mean L0 (units with |h| > ACTIVE_THRESHOLD) and dead units (never active
  on the test set);
- denoising: MSE against the clean input when the input is corrupted at the member's
  noise level;
- the family's own (`Family.eval_sums`; the VAE's negative ELBO in nats, one posterior sample per image).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from aejax.config import ModelSpec
from aejax.models import member_call
from aejax.objectives import corrupt, squared_error

ACTIVE_THRESHOLD = 1e-3
CHUNK = 500


def _chunks(x: jax.Array):
    """Pad `(N, D)` to whole chunks; returns `(chunks, CHUNK, D)` and a validity mask."""
    n = x.shape[0]
    size = min(CHUNK, n)
    pad = (-n) % size
    xp = jnp.pad(x, ((0, pad), (0, 0)))
    mask = jnp.arange(n + pad) < n
    return xp.reshape(-1, size, x.shape[1]), mask.reshape(-1, size)


def make_evaluator(spec: ModelSpec, graph):
    """`evaluate(params, x, key, hp) -> dict of scalars` for ONE member; vmap it over members."""

    def evaluate(params, x, key, hp):
        model = nnx.merge(graph, params)
        k = member_call(spec, hp)
        xs, masks = _chunks(x)

        def per_chunk(args):
            xb, mask, i = args
            kb = jax.random.fold_in(key, i)
            h = model.encode(xb, **k)
            sse = squared_error(model.decode(h), xb)
            noisy = corrupt(xb, kb, spec.corruption, hp["noise_level"])
            out = {
                "sse": jnp.sum(sse * mask),
                "denoise_sse": jnp.sum(squared_error(model.decode(model.encode(noisy, **k)), xb) * mask),
                "l0": jnp.sum(jnp.sum(jnp.abs(h) > ACTIVE_THRESHOLD, axis=-1) * mask),
                "active": jnp.any((jnp.abs(h) > ACTIVE_THRESHOLD) & mask[:, None], axis=0),
            }
            own = spec.declaration.eval_sums(model, params, xb, jax.random.fold_in(kb, 1), spec.family_settings, **k)
            return out, {name: jnp.sum(values * mask) for name, values in own.items()}

        parts, own = jax.lax.map(per_chunk, (xs, masks, jnp.arange(xs.shape[0])))
        n, d = x.shape
        code_size = parts["active"].shape[-1]
        metrics = {
            "mse": jnp.sum(parts["sse"]) / (n * d),
            "sse_per_image": jnp.sum(parts["sse"]) / n,
            "denoise_mse": jnp.sum(parts["denoise_sse"]) / (n * d),
            "mean_l0": jnp.sum(parts["l0"]) / n,
            "dead_fraction": (code_size - jnp.sum(jnp.any(parts["active"], axis=0))) / code_size,
        }
        return {**metrics, **{name: jnp.sum(sums) / n for name, sums in own.items()}}

    return evaluate


def population_evaluator(spec: ModelSpec, graph, shared: bool = True):
    """`evaluate(params, x, keys, hp) -> {metric: (E,) numpy}`, compiled once for every later
    call with the same shapes (validation during training reuses it); `x` shared `(N, D)`, or
    `(E, N, D)` per member when not `shared`."""
    import numpy as np

    fn = jax.jit(jax.vmap(make_evaluator(spec, graph), in_axes=(0, None if shared else 0, 0, 0)))

    def evaluate(params, x, keys, hp) -> dict:
        eval_keys = jax.vmap(lambda k: jax.random.fold_in(k, 99))(keys)
        return {k: np.asarray(v) for k, v in fn(params, jnp.asarray(x), eval_keys, hp).items()}

    evaluate.compiled = fn  # for tests: `evaluate.compiled._cache_size()` counts compilations
    return evaluate


def evaluate_population(spec: ModelSpec, graph, params, x, keys, hp) -> dict:
    """Metrics for every member as numpy arrays `(E,)`; `x` shared `(N, D)` or per member `(E, N, D)`."""
    return population_evaluator(spec, graph, shared=x.ndim == 2)(params, x, keys, hp)
