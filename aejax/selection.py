"""Exact top-k selection with a k that may be traced (one program for every member's k).

`at_least_kth_largest(h, k, k_max)` is the mask of the entries of each row `(..., width)` at or above the
row's k-th largest value (with ties at that value, every tie: the same mask `lax.top_k` plus its ties
would give). Two exact methods give it, bit for bit the same mask:

- `bit_search`: the k-th largest key built bit by bit, one counting pass per bit (any k up to the width);
- `sorting_network`: the rows' K largest keys by a bitonic network, K a power of two >= every member's k
  (`k_max`, static: the largest k of the population), then each member's own k-th of them.

The network does far fewer operations per entry, but each of its steps writes the whole array; the bit
search's passes read bytes. At an SAE's width of a few hundred, with K up to an eighth of it, the network wins
inside a training step (docs/speed.md, session 36: 1.1x to 1.3x a TopK step); `NETWORK_MAX_WIDTH` and
`NETWORK_MAX_FRACTION` keep it to those sizes. Both give the same mask for 1 <= k <= K, k a scalar per row
block (one per member under vmap).

Float32 maps to int32 keys in the same total order (`ordered_keys`: -inf < ... < -0.0 < 0.0 < ... < inf),
so both methods compare integers and agree on zeros, ties and infinities.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

INT32_MIN = -2 ** 31
# Where the network serves: measured in whole training steps (docs/speed.md, session 36). At width 256 it won
# with K = 16 (1.15x to 1.21x) and 32 (1.14x); with K = 64 it won without AuxK running (1.10x, 1.21x), tied with
# it (1.03x) and lost in sae_bench's TopK run. At 512 it won with K = 16 (1.31x) and 32 (1.07x); at 1,024 with
# K = 32 it tied (1.02x), at 2,048 it lost (0.83x). Not measured: 512 with K = 64, widths below 256.
NETWORK_MAX_WIDTH = 512
NETWORK_MAX_FRACTION = 8     # K at most width / 8


def keep_top_k(h: jax.Array, k, k_max: int | None = None) -> jax.Array:
    """Zero all but the k largest entries of each code vector `(..., code_size)`.

    `k` is a Python int, or a traced scalar when a population varies k per member; `k_max` (static) is
    then the largest k any member can pass, which lets the sorting network serve them. Ties at the
    threshold are all kept; gradients flow through the kept entries only.
    """
    return jnp.where(at_least_kth_largest(h, k, k_max), h, 0.0)


def at_least_kth_largest(h: jax.Array, k, k_max: int | None = None) -> jax.Array:
    """Mask of the entries >= the k-th largest of their row. `k`: an int or a traced scalar; `k_max`:
    a static bound on k (a population's largest), given only by callers whose speed was measured with the
    network (the SAE family, through `member_call`); without it, the bit search, as before. A concrete k
    above k_max takes the bit search; a traced k must not exceed k_max (the network would keep only its K)."""
    if k_max is not None and not isinstance(k, jax.core.Tracer) and bool(np.any(np.asarray(k) > k_max)):
        k_max = None  # a concrete k above the bound (NumPy: no staging under jit): the bit search serves any k
    width = h.shape[-1]
    if k_max is not None and network_pays(width, k_max):
        return sorting_network(h, k, k_max)
    return bit_search(h, k)


def network_pays(width: int, k_max: int) -> bool:
    return width <= NETWORK_MAX_WIDTH and network_size(k_max) * NETWORK_MAX_FRACTION <= width


def network_size(k_max: int) -> int:
    """K: the smallest power of two >= k_max."""
    return 1 << max(0, int(k_max) - 1).bit_length()


def ordered_keys(h: jax.Array) -> jax.Array:
    """int32 keys in the floats' total order: a negative float's bits below the sign flipped."""
    bits = jax.lax.bitcast_convert_type(h.astype(jnp.float32), jnp.int32)
    return jnp.where(bits < 0, bits ^ jnp.int32(0x7FFFFFFF), bits)


# ----------------------------------------------------------------------------- the sorting network
def sorting_network(h: jax.Array, k, k_max: int) -> jax.Array:
    """`at_least_kth_largest` by a bitonic network: every row's K largest keys (K = `network_size(k_max)`),
    ascending, then the row's k-th largest is entry K - k. The width runs along the leading axis, so each
    compare-exchange is an elementwise min and max of two slabs of rows (vectorised across rows)."""
    size = network_size(k_max)
    k = jnp.asarray(k, jnp.int32)

    def network(h, k):
        keys = ordered_keys(h)
        largest = largest_ascending(jnp.moveaxis(keys, -1, 0), size)            # (K, ...rows)
        return keys >= jnp.take(largest, jnp.clip(size - k, 0, size - 1), axis=0)[..., None]

    # No runtime guard for a traced k above K: a lax.cond on it (one bool per block, `any_member`) cost the
    # network its whole gain inside the SAE step (a scratch A/B, session 36). `at_least_kth_largest` sends a
    # concrete k above the bound to the bit search; a traced one is the caller's promise (k <= k_max).
    return network(h, k)


def largest_ascending(keys: jax.Array, size: int) -> jax.Array:
    """The `size` largest of `keys` along axis 0, ascending (`size` a power of two). Blocks of `size` are
    sorted, then merged in pairs keeping the larger half until one block is left: the elementwise max of
    one ascending block and the other reversed is bitonic and holds the pair's `size` largest (Batcher),
    and `size` / 2, ..., 1 compare-exchanges sort it. Padding with the smallest key changes no answer."""
    keys = _pad_to_blocks(keys, size)
    x = _sort_blocks(keys, size)
    while x.shape[0] > size:
        x = _pad_to_blocks(x, 2 * size)
        pairs = x.reshape(x.shape[0] // (2 * size), 2, size, *x.shape[1:])
        x = jnp.maximum(pairs[:, 0], jnp.flip(pairs[:, 1], axis=1)).reshape(-1, *x.shape[1:])
        x = _half_cleaners(x, size)
    return x


def _pad_to_blocks(x: jax.Array, block: int) -> jax.Array:
    missing = -x.shape[0] % block
    if not missing:
        return x
    return jnp.pad(x, [(0, missing)] + [(0, 0)] * (x.ndim - 1), constant_values=INT32_MIN)


def _sort_blocks(x: jax.Array, size: int) -> jax.Array:
    """Ascending within consecutive blocks of `size` along axis 0: for each span s = 2, 4, ..., size, entry i
    of a span meets entry s-1-i (the flip that makes two sorted halves one bitonic run), then half-cleaners."""
    span = 2
    while span <= size:
        y = x.reshape(x.shape[0] // span, span, *x.shape[1:])
        low, high = y[:, : span // 2], jnp.flip(y[:, span // 2:], axis=1)
        x = jnp.concatenate([jnp.minimum(low, high), jnp.flip(jnp.maximum(low, high), axis=1)], axis=1)
        x = _half_cleaners(x.reshape(-1, *x.shape[2:]), span // 2)
        span *= 2
    return x


def _half_cleaners(x: jax.Array, run: int) -> jax.Array:
    """Sort the bitonic runs of length `run` along axis 0: compare-exchange i with i + d, d = run / 2, ..., 1."""
    d = run // 2
    while d >= 1:
        y = x.reshape(x.shape[0] // (2 * d), 2, d, *x.shape[1:])
        x = jnp.stack([jnp.minimum(y[:, 0], y[:, 1]), jnp.maximum(y[:, 0], y[:, 1])], axis=1).reshape(x.shape)
        d //= 2
    return x


# ----------------------------------------------------------------------------- the bit search
def bit_search(h: jax.Array, k) -> jax.Array:
    """`at_least_kth_largest` for any k up to the width: exact, in at most 32 counting steps.

    float32 maps to uint32 keys in the same order (flip every bit of a negative number, the
    sign bit of a non-negative one); the k-th largest key is then built bit by bit, highest
    first, keeping a bit when at least k keys are still >= the candidate. The search stops early
    once every row has exactly k keys >= its candidate: that set is already the answer (with ties
    at the k-th value it never happens, and all 32 bits are built, keeping every tie).

    Each step is one counting pass, and the passes read bytes, not the 4-byte keys: the bits are
    built a byte at a time, and for byte p a key counts as >= the candidate when its higher bytes
    beat the prefix built so far (counted once per byte, `above`) or equal it and its byte p is >=
    the candidate's. So one pass over the keys per byte writes a uint8 array (byte p where the higher
    bytes equal the prefix, else 0; the candidate's byte is never 0) and the byte's 8 steps read it:
    a quarter of the bytes a step read. That gained 1.15x at a population's size (8 x 1,024 x 256) and
    nothing on one block of rows: the counting, not the reading, is most of a step's cost on a CPU
    (docs/speed.md, session 33). Counting in int8 per 64 entries moves a quarter of the bytes of an
    int32 count (scripts/topk_selection.py, docs/speed.md). (Searching 8 rows at a time, to keep their keys in cache, won at some widths and
    lost at others.)
    """
    keys = jax.lax.bitcast_convert_type(ordered_keys(h), jnp.uint32) ^ jnp.uint32(0x80000000)
    k = jnp.asarray(k).astype(jnp.int32)
    width = h.shape[-1]

    def count(at_least):
        if width % 64 == 0:  # int8 partial counts (at most 64) then int32 across the chunks
            chunks = at_least.reshape(*at_least.shape[:-1], width // 64, 64)
            return jnp.sum(jnp.sum(chunks, axis=-1, dtype=jnp.int8), axis=-1, dtype=jnp.int32)
        small = jnp.int16 if width < 2 ** 15 else jnp.int32
        return jnp.sum(at_least, axis=-1, dtype=small).astype(jnp.int32)

    rows = h.shape[:-1]
    kth, at_kth = jnp.zeros(rows, jnp.uint32), jnp.full(rows, width, jnp.int32)  # every key >= 0
    unresolved = lambda carry: (carry[0] < 8) & jnp.any(carry[2] != k)  # noqa: E731
    for shift in (24, 16, 8, 0):
        if shift == 24:
            above, byte = jnp.zeros(rows, jnp.int32), (keys >> 24).astype(jnp.uint8)
        else:
            high, prefix = keys >> (shift + 8), (kth >> (shift + 8))[..., None]
            above = count(high > prefix)
            byte = jnp.where(high == prefix, (keys >> shift) & 0xFF, 0).astype(jnp.uint8)

        def take_bit(carry, shift=shift, above=above, byte=byte):
            i, kth, at_kth = carry
            bit = jnp.uint32(1) << (7 - i).astype(jnp.uint32)
            candidate = ((kth >> shift) & 0xFF) | bit
            n = above + count(byte >= candidate.astype(jnp.uint8)[..., None])
            enough = n >= k
            return i + 1, jnp.where(enough, kth | (bit << shift), kth), jnp.where(enough, n, at_kth)

        _, kth, at_kth = jax.lax.while_loop(unresolved, take_bit, (jnp.int32(0), kth, at_kth))
    return keys >= kth[..., None]
