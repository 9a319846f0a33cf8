"""A Frechet distance between image sets in the feature space of a small classifier aejax trains itself.

This is the construction of the FID (Heusel et al. 2017, Eq. 6), with a different feature map: the Frechet
(2-Wasserstein) distance between Gaussians fitted to the features of two sets of images,

    FD = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)),

where the features are the last hidden layer of an MLP classifier trained here on the labelled training
images (`train_classifier`), not Inception-v3's pool3. Its values are not comparable with published FIDs,
only between models measured with the same classifier (same data, same seed: `train_classifier` is
deterministic on a given machine).

    params, accuracy = train_classifier(x_train, y_train, x_test, y_test)
    fd = frechet_distance(features(params, samples), features(params, x_test))
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

HIDDEN = (256, 128)   # the features are the 128 ReLU units of the last hidden layer


def init_classifier(key: jax.Array, input_dim: int, classes: int, hidden=HIDDEN) -> list:
    """[(kernel, bias), ...] of an MLP input_dim -> hidden... -> classes, LeCun-normal kernels."""
    sizes = (input_dim, *hidden, classes)
    keys = jax.random.split(key, len(sizes) - 1)
    return [(jax.random.normal(k, (a, b)) / np.sqrt(a), jnp.zeros(b)) for k, a, b in zip(keys, sizes[:-1], sizes[1:])]


def features(params: list, x: jax.Array) -> jax.Array:
    """The last hidden layer's activations `(N, HIDDEN[-1])` of images `(N, D)`."""
    h = x
    for kernel, bias in params[:-1]:
        h = jax.nn.relu(h @ kernel + bias)
    return h


def logits(params: list, x: jax.Array) -> jax.Array:
    kernel, bias = params[-1]
    return features(params, x) @ kernel + bias


def train_classifier(x_train, y_train, x_test, y_test, epochs: int = 5, batch_size: int = 128,
                     learning_rate: float = 1e-3, seed: int = 0) -> tuple[list, float]:
    """Adam on the cross-entropy, `epochs` passes in one compiled scan; returns (params, test accuracy)."""
    x_train, y_train = jnp.asarray(x_train, jnp.float32), jnp.asarray(y_train, jnp.int32)
    classes = int(max(y_train.max(), np.max(y_test))) + 1
    key, init_key = jax.random.split(jax.random.key(seed))
    params = init_classifier(init_key, x_train.shape[1], classes)
    optimizer = optax.adam(learning_rate)
    batch_size = min(batch_size, x_train.shape[0])
    steps = x_train.shape[0] // batch_size

    def loss(p, xb, yb):
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits(p, xb), yb))

    def step(carry, idx):
        p, state = carry
        grads = jax.grad(loss)(p, x_train[idx], y_train[idx])
        updates, state = optimizer.update(grads, state, p)
        return (optax.apply_updates(p, updates), state), None

    @jax.jit
    def fit(p):
        orders = jax.vmap(lambda k: jax.random.permutation(k, x_train.shape[0]))(jax.random.split(key, epochs))
        batches = orders[:, :steps * batch_size].reshape(epochs * steps, batch_size)
        (p, _), _ = jax.lax.scan(step, (p, optimizer.init(p)), batches)
        return p

    params = fit(params)
    predicted = np.asarray(jnp.argmax(logits(params, jnp.asarray(x_test, jnp.float32)), axis=-1))
    return params, float(np.mean(predicted == np.asarray(y_test)))


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_from_moments(mu_a, cov_a, mu_b, cov_b) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)); Tr (S_a S_b)^(1/2) as the sum of the square
    roots of the eigenvalues of the symmetric S_a^(1/2) S_b S_a^(1/2) (same spectrum, no complex sqrtm)."""
    root_a = _sqrt_psd(np.asarray(cov_a, np.float64))
    middle = root_a @ np.asarray(cov_b, np.float64) @ root_a
    trace_root = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)))
    diff = np.asarray(mu_a, np.float64) - np.asarray(mu_b, np.float64)
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def frechet_distance(feats_a, feats_b) -> float:
    """The Frechet distance between Gaussians fitted (mean, unbiased covariance) to two feature sets `(N, F)`."""
    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    return frechet_from_moments(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
