"""An epoch's order of the training rows, the two ways `trainer.shuffle` offers.

    sort     `jax.random.permutation`: random 32-bit keys sorted with the row indices, twice for n > 1,625
             (JAX's own rule). Every run before the setting existed shuffled this way.
    feistel  `feistel_permutation`: a keyed Feistel network over the row indices, no sort. XLA's CPU sorts
             slowly: the two sorts were 13% to 24% of a population of 16 small SAEs' ops (scripts/profile_sae_step.py),
             where this costs elementwise passes over the n indices (23 to 25 at n = 102,400), no sort.

The Feistel construction is the one of TensorFlow's `index_shuffle` and Grain's global shuffle: a keyed
pseudo-random permutation of [0, 2^b) (Luby and Rackoff: four or more rounds of a keyed round function give
a pseudo-random permutation), restricted to [0, n) by cycle walking (Black and Rogaway 2002: an index that
lands at n or above is encrypted again until it lands below n; the result is still a permutation).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

ROUNDS = 6


def _mix(x: jax.Array) -> jax.Array:
    """A 32-bit integer hash with full avalanche (Wellons's "lowbias32"): the round function's core."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def feistel_permutation(key: jax.Array, n: int) -> jax.Array:
    """A permutation of `range(n)` (int32) drawn from `key`, without a sort.

    The indices are encrypted by a balanced Feistel network on 2h bits (the smallest even number of bits
    that holds n - 1), each of `ROUNDS` rounds `(L, R) -> (R, L xor F(R, key_r))` with F the hash of R and the
    round's own key, masked to h bits. Indices that land at n or above are encrypted again (cycle walking)
    inside a while loop that stops when every index is below n. Each pass encrypts all n indices again and
    the loop runs until the longest walk ends. 2^(2h) < 4n; over four keys each, the passes were 23 to 25 at
    n = 102,400, 4 or 5 at 1,000,000 (2^(2h) close to n) and 35 to 50 at 65,537 (just above a power of 4,
    2^(2h) nearly 4n). Each is a few integer operations per index: still far less than a sort on a CPU.
    """
    if n >= 2 ** 31:
        raise ValueError(f"feistel_permutation: n={n} rows; int32 indices hold fewer than 2**31")
    if n <= 1:
        return jnp.zeros((n,), jnp.int32)
    half = max(1, (int(n - 1).bit_length() + 1) // 2)
    mask = jnp.uint32((1 << half) - 1)
    round_keys = jax.random.bits(key, (ROUNDS,), jnp.uint32)

    def encrypt(x):
        left, right = x >> half, x & mask
        for r in range(ROUNDS):
            left, right = right, left ^ (_mix(right ^ round_keys[r]) & mask)
        return (left << half) | right

    def walk(x):
        return jnp.where(x >= n, encrypt(x), x)

    first = encrypt(jnp.arange(n, dtype=jnp.uint32))
    out = jax.lax.while_loop(lambda x: jnp.any(x >= n), walk, first)
    return out.astype(jnp.int32)


def epoch_order(key: jax.Array, n: int, method: str) -> jax.Array:
    """The rows' order for one epoch: `trainer.shuffle`'s `method` (sort or feistel)."""
    if method == "feistel":
        return feistel_permutation(key, n)
    return jax.random.permutation(key, n)
