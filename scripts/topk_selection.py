"""What top-k selection costs on this machine: lax.top_k, a sort, aejax's two exact methods for a traced k
(aejax/selection.py: the bit search for the k-th largest, also 8 rows at a time, which keeps each block's
keys in cache; and the bitonic sorting network, here with k_max = k), against a matmul of an SAE of the
same width with d = 64. Best of 3 rounds of 30 calls each. One block of rows, outside a training step:
which method aejax uses is decided by whole steps (docs/speed.md, session 36).

    uv run --locked python scripts/topk_selection.py
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

from aejax.selection import bit_search, sorting_network


def best_ms(f, *args, calls: int = 30) -> float:
    jax.block_until_ready(f(*args))
    best = float("inf")
    for _ in range(3):
        tic = time.perf_counter()
        for _ in range(calls):
            out = f(*args)
        jax.block_until_ready(out)
        best = min(best, (time.perf_counter() - tic) / calls * 1e3)
    return best


def main() -> None:
    print("| batch 1024: width | k | lax.top_k ms | sort ms | bit search ms | bit search, 8 rows at a time ms "
          "| sorting network ms | matmul (1024x64)x(64xW) ms |")
    for width, k in ((256, 32), (512, 16), (512, 32), (2048, 32)):
        x = jax.random.normal(jax.random.key(0), (1024, width))
        traced_k = jnp.int32(k)
        row = [best_ms(jax.jit(lambda x: jax.lax.top_k(x, k)[0]), x),
               best_ms(jax.jit(lambda x: jnp.sort(x, axis=-1)), x),
               best_ms(jax.jit(lambda x: bit_search(x, traced_k)), x),
               best_ms(jax.jit(lambda x: jax.lax.map(lambda b: bit_search(b, traced_k),
                                                     x.reshape(-1, 8, x.shape[1])).reshape(x.shape)), x),
               best_ms(jax.jit(lambda x: sorting_network(x, traced_k, k)), x),
               best_ms(jax.jit(lambda a, w: a @ w), jnp.ones((1024, 64)), jnp.ones((64, width)))]
        print(f"| {width} | {k} | " + " | ".join(f"{v:.2f}" for v in row) + " |")


if __name__ == "__main__":
    main()
