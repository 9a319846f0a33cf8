"""The single-vector study's pairs and their autoencoders: do autoencoders trained on similar
single vectors learn similar codes?

For each pair (V1, V2) with input cosine s, autoencoder A1 trains on V1 only and A2 (same
architecture) on V2 only. Every A of every pair is a member of one population with its own data
(`x` of shape `(E, 1, d)`), trained in one compiled program. Conditions:

(a) independent init: A1 and A2 have different seeds;
(b) shared init: A2 starts from A1's initial parameters (same seed; with no input noise the seed
    only sets the initialisation);
(c) dataset autoencoder: one autoencoder trained on the set of all V1 and V2; its codes of V1 and V2;
(d) cross-encoding: A1's encoder applied to V2, against A1's code of V1.

Measures per pair: cosine and distance of the codes; linear CKA of A1's and A2's encoders over
probe inputs near V1 and V2; each member's final reconstruction MSE.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from aejax.config import ModelSpec, OptimSpec, member_hyperparameters, require
from aejax.data import cosine_pairs
from aejax.models import init_params, make_loss, model_graph
from aejax.settings import parse_section
from aejax.optim import make_optimizer
from aejax.studies.single_vector_similarity.similarity import cosine, linear_cka
from aejax.train import compile_population, init_population, make_member_program, make_step, member_keys


@dataclass(frozen=True)
class StudySpec:
    similarities: tuple = (0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)
    pairs_per_level: int = 256
    dim: int = 64
    steps: int = 500                     # Adam steps of each single-vector autoencoder
    dataset_steps: int = 3000            # steps of the dataset autoencoder, condition (c)
    dataset_batch: int = 256
    seeds: tuple = (0, 1, 2, 3, 4)       # replicates of the whole study
    probes: int = 32                     # CKA probe inputs per pair (half near V1, half near V2)
    probe_noise: float = 0.3             # probe = V + probe_noise * |V| / sqrt(d) * N(0, I)
    mnist: bool = True                   # also the d = 784 MNIST pairs (needs data.root)
    mnist_pairs_per_kind: int = 256
    mnist_perturbation: float = 0.05     # perturbed copy: image + this * N(0, 1), clipped to [0, 1]
    bootstrap: int = 1000

    def check(self) -> None:
        require(len(self.similarities) >= 2
                and all(isinstance(s, (int, float)) and -1 <= s <= 1 for s in self.similarities),
                "study.similarities", list(self.similarities), "at least two cosines in [-1, 1]")
        for key in ("pairs_per_level", "dim", "steps", "dataset_steps", "dataset_batch", "probes",
                    "mnist_pairs_per_kind", "bootstrap"):
            require(getattr(self, key) > 0, f"study.{key}", getattr(self, key), "an integer > 0")
        require(self.probes % 2 == 0, "study.probes", self.probes, "an even integer")
        require(len(self.seeds) > 0 and all(isinstance(s, int) and s >= 0 for s in self.seeds)
                and len(set(self.seeds)) == len(self.seeds), "study.seeds", list(self.seeds),
                "an integer n > 0 (seeds 0..n-1) or a non-empty list of distinct integers >= 0")
        require(self.probe_noise >= 0, "study.probe_noise", self.probe_noise, "a number >= 0")
        require(self.mnist_perturbation >= 0, "study.mnist_perturbation", self.mnist_perturbation, "a number >= 0")


# ----------------------------------------------------------------------------- pairs
def synthetic_pairs(rng: np.random.Generator, spec: StudySpec, dim: int):
    """Unit-vector pairs: `pairs_per_level` at every similarity level; returns (v1, v2, s)."""
    s = np.repeat(np.asarray(spec.similarities, np.float64), spec.pairs_per_level)
    v1, v2 = cosine_pairs(rng, len(s), dim, s)
    return v1, v2, s.astype(np.float32)


def mnist_pairs(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, n: int, sigma: float):
    """Three kinds of MNIST pairs: same digit, different digits, image and perturbed copy.

    Returns (v1, v2, kind) with kind in {"same_digit", "different_digit", "perturbed_copy"}.
    """
    first = rng.choice(len(images), size=3 * n, replace=False)
    v1 = images[first]
    partner = np.empty(3 * n, int)
    for i, j in enumerate(first[: 2 * n]):
        want_same = i < n
        while True:
            k = rng.integers(len(images))
            if k != j and (labels[k] == labels[j]) == want_same:
                partner[i] = k
                break
    v2 = np.empty_like(v1)
    v2[: 2 * n] = images[partner[: 2 * n]]
    v2[2 * n:] = np.clip(v1[2 * n:] + sigma * rng.normal(size=v1[2 * n:].shape), 0, 1)
    kind = np.array(["same_digit"] * n + ["different_digit"] * n + ["perturbed_copy"] * n)
    return v1.astype(np.float32), v2.astype(np.float32), kind


# ----------------------------------------------------------------------------- training
class Trainer:
    """Compiled programs for one model shape, reused across replicates (one compilation each)."""

    def __init__(self, model: ModelSpec, optim: OptimSpec, dim: int, spec: StudySpec, n_dataset: int):
        self.model, self.dim, self.spec = model, dim, spec
        self.graph = model_graph(model, dim)
        loss = make_loss(model, self.graph)
        self.single_opt = make_optimizer(optim, spec.steps)
        self.single = compile_population(make_member_program(make_step(loss, self.single_opt), 1, 1, norms_every=10**9),
                                         shared_data=False)
        batch = min(spec.dataset_batch, n_dataset)
        self.steps_per_epoch = n_dataset // batch
        self.dataset_epochs = max(1, spec.dataset_steps // self.steps_per_epoch)
        self.dataset_opt = make_optimizer(optim, self.dataset_epochs * (n_dataset // batch))
        self.dataset = compile_population(make_member_program(make_step(loss, self.dataset_opt), n_dataset, batch,
                                                              norms_every=10**9), shared_data=True)
        self.lr = optim.learning_rate
        self.encode = jax.jit(jax.vmap(lambda p, x: nnx.merge(self.graph, p).encode(x)))
        self.reconstruct = jax.jit(jax.vmap(lambda p, x: nnx.merge(self.graph, p)(x)[0]))

    def _hp(self, n: int) -> dict:
        """Every member's hyperparameters: the config's values (this study varies none of them)."""
        names = [setting.partition(".")[2] for setting in member_hyperparameters(self.model)]
        values = {name: self.lr if name == "learning_rate" else self.model.get(name) for name in names}
        return {k: jnp.full((n,), v, jnp.float32) for k, v in values.items()}

    def _init(self, optimizer, seeds):
        keys = member_keys(seeds)
        return keys, init_population(lambda k: init_params(self.model, self.dim, None, k), optimizer, keys)

    def train_single(self, vectors: np.ndarray, seeds: np.ndarray):
        """One member per vector, each trained on its vector alone; returns (params, mse per member)."""
        keys, state = self._init(self.single_opt, seeds)
        x = jnp.asarray(vectors)[:, None, :]
        params = self.single(state, keys, x, self._hp(len(seeds)), 0, self.spec.steps, 1)[0]["params"]
        recon = self.reconstruct(params, x)[:, 0]
        mse = np.asarray(jnp.mean((recon - x[:, 0]) ** 2, axis=-1))
        return params, mse

    def train_dataset(self, vectors: np.ndarray, seed: int):
        keys, state = self._init(self.dataset_opt, [seed])
        x = jnp.asarray(vectors)
        params = self.dataset(state, keys, x, self._hp(1), 0, self.dataset_epochs, self.steps_per_epoch)[0]["params"]
        recon = self.reconstruct(params, x[None])[0]
        return params, float(jnp.mean((recon - x) ** 2))

    def codes(self, params, inputs: np.ndarray) -> np.ndarray:
        """Member m's encoder on inputs[m]: `(E, ..., d)` -> `(E, ..., k)`."""
        return np.asarray(self.encode(params, jnp.asarray(inputs)))


def measure(trainer: Trainer, v1, v2, s, seed: int) -> dict:
    """Every condition on one set of pairs; returns per-pair arrays keyed by measure name."""
    n = len(v1)
    rng = np.random.default_rng(seed + 10_000)
    spec = trainer.spec
    seeds_a1 = seed * 10**6 + np.arange(n)                 # distinct from every A2 seed
    seeds_a2_indep = seed * 10**6 + n + np.arange(n)
    both = np.concatenate([v1, v2])
    params_ind, mse_ind = trainer.train_single(both, np.concatenate([seeds_a1, seeds_a2_indep]))
    params_sh, mse_sh = trainer.train_single(both, np.concatenate([seeds_a1, seeds_a1]))

    def own_codes(params):
        h = trainer.codes(params, both[:, None, :])[:, 0]
        return h[:n], h[n:]

    h1_ind, h2_ind = own_codes(params_ind)
    h1_sh, h2_sh = own_codes(params_sh)
    # (d) A1 (independent population, first n members) encodes V2.
    a1_params = jax.tree.map(lambda a: a[:n], params_ind)
    h1_of_v2 = trainer.codes(a1_params, v2[:, None, :])[:, 0]
    # (c) one autoencoder on the whole set.
    data_params, data_mse = trainer.train_dataset(both, seed)
    hd = trainer.codes(data_params, both[None])[0]
    # Probes: shared inputs near V1 and V2 for the CKA of A1's and A2's encoders.
    half = spec.probes // 2
    scale = spec.probe_noise * np.linalg.norm(v1, axis=1, keepdims=True)[:, None] / np.sqrt(v1.shape[1])
    noise = rng.normal(size=(n, spec.probes, v1.shape[1])) * scale
    probes = np.concatenate([np.repeat(v1[:, None], half, 1), np.repeat(v2[:, None], half, 1)], 1) + noise
    probes = probes.astype(np.float32)
    probes2 = np.concatenate([probes, probes])

    def cka(params):
        z = trainer.codes(params, probes2)
        return linear_cka(z[:n], z[n:])

    return {
        "input_cos": np.asarray(s, np.float64),
        "a_independent": cosine(h1_ind, h2_ind),
        "b_shared_init": cosine(h1_sh, h2_sh),
        "c_dataset_ae": cosine(hd[:n], hd[n:]),
        "d_cross_encoding": cosine(h1_ind, h1_of_v2),
        "dist_a_independent": np.linalg.norm(h1_ind - h2_ind, axis=1),
        "dist_b_shared_init": np.linalg.norm(h1_sh - h2_sh, axis=1),
        "cka_a_independent": cka(params_ind),
        "cka_b_shared_init": cka(params_sh),
        "mse_a1": mse_ind[:n], "mse_a2_independent": mse_ind[n:], "mse_a2_shared": mse_sh[n:],
        "dataset_ae_mse": np.full(n, data_mse),
        "ms_v1": np.mean(v1**2, axis=1), "ms_v2": np.mean(v2**2, axis=1),
    }


CONDITIONS = ("a_independent", "b_shared_init", "c_dataset_ae", "d_cross_encoding",
              "cka_a_independent", "cka_b_shared_init")


def parse_study(raw: dict) -> StudySpec:
    raw = dict(raw or {})
    if isinstance(raw.get("seeds"), int):
        raw["seeds"] = list(range(raw["seeds"]))
    return parse_section("study", StudySpec, raw)


__all__ = ["StudySpec", "Trainer", "measure", "synthetic_pairs", "mnist_pairs", "CONDITIONS", "parse_study"]
