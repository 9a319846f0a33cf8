"""Information retrieval with compact codes: how often are a query's nearest neighbours in code
space of the query's own class?

Queries are the test images, the database the training images; a retrieved item is relevant when
its label equals the query's. Codes are compared either as real vectors (Euclidean distance) or,
as in semantic hashing (Salakhutdinov & Hinton 2009), as bits (Hamming distance): each unit is
thresholded at its median over the database, so every bit splits the database in half.
Neighbours at equal distance are taken in database order (Hamming distances tie often).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

QUERY_CHUNK = 500  # queries per jitted call: a (500, N) score matrix at a time


def to_bits(codes: np.ndarray, database_codes: np.ndarray) -> np.ndarray:
    """+-1 bits: each unit above (+1) or at/below (-1) its median over the database."""
    return np.where(codes > np.median(database_codes, axis=0), 1.0, -1.0).astype(np.float32)


def precision_at_k(database: np.ndarray, database_labels: np.ndarray, queries: np.ndarray,
                   query_labels: np.ndarray, ks=(1, 10, 100), distance: str = "euclidean") -> dict:
    """{k: mean over queries of the fraction of its k nearest database items with its label}.

    `distance="hamming"` expects +-1 codes (`to_bits`): the Hamming distance is (bits - q.d) / 2,
    so ranking by the dot product ranks by Hamming distance."""
    if distance not in ("euclidean", "hamming"):
        raise ValueError(f"distance={distance!r} is not allowed; expected euclidean or hamming")
    db = jnp.asarray(database, jnp.float32)
    half_sq_norms = 0.5 * jnp.sum(db**2, axis=1)
    k_max = max(ks)

    @jax.jit
    def nearest(q):
        scores = q @ db.T  # larger is closer: -|q - d|^2 / 2 = q.d - |d|^2 / 2 - |q|^2 / 2
        if distance == "euclidean":
            scores = scores - half_sq_norms
        return jax.lax.top_k(scores, k_max)[1]

    labels = np.asarray(database_labels)
    hits = np.concatenate([
        labels[np.asarray(nearest(jnp.asarray(queries[i:i + QUERY_CHUNK], jnp.float32)))]
        == np.asarray(query_labels[i:i + QUERY_CHUNK])[:, None]
        for i in range(0, len(queries), QUERY_CHUNK)])
    return {k: float(hits[:, :k].mean()) for k in ks}
