"""Open a finished run and use its autoencoders: encode new data, reconstruct, generate.

    from aejax.trained import load_run
    run = load_run("outputs/mnist_deep_autoencoder/2026-11-23_15-10-21-3f2a", member=0)
    codes = run.encode(run.data.test)            # (10000, 30) numpy array
    recon = run.reconstruct(run.data.test)       # g(f(x)), as the test metrics compute it
    grid = run.traverse(run.data.test[:3])       # VAE: (3, latents, 9, D) latent traversals
    scores = run.disentanglement()               # ground-truth data: {metric: value} (aejax.metrics)

The run directory's `config.yaml` rebuilds the model and the data splits; the Orbax
checkpoint (the last one unless `epoch` is given) supplies the weights. Everything downstream
of training -- retrieval with compact codes, probes on the codes, compression -- starts here.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np
import yaml

from aejax.checkpoint import PopulationCheckpointer, UnreadableCheckpoint
from aejax.config import RunSpec, parse_run
from aejax.data import Dataset, load_dataset
from aejax.errors import ConfigError
from aejax.models import init_params, member_model, model_graph
from aejax.optim import make_optimizer
from aejax.population import members
from aejax.train import init_population, member_keys
from aejax.vae_objectives import critic_for

BATCH = 1000  # rows per jitted call in encode/reconstruct: bounded memory on any split size
TRAVERSAL_VALUES = np.linspace(-2.0, 2.0, 9)  # disentanglement_lib's fixed [-2, 2] interval


@dataclass
class TrainedRun:
    spec: RunSpec
    data: Dataset
    model: object            # the member's Flax NNX model: encode, decode, __call__ (VAE: sample)
    member: dict             # its row of summary.json: member, seed and every hyperparameter
    epoch: int               # the checkpoint's number of completed epochs

    def encode(self, x) -> np.ndarray:
        """Codes f(x) of `(N, D)` inputs (the posterior mean for a VAE)."""
        return _batched(self.model.encode, x)

    def reconstruct(self, x) -> np.ndarray:
        """g(f(x)): the deterministic reconstruction the test metrics use."""
        return _batched(lambda xb: self.model.decode(self.model.encode(xb)), x)

    def decode(self, h) -> np.ndarray:
        return _batched(self.model.decode, h)

    def posterior(self, x) -> tuple[np.ndarray, np.ndarray]:
        """VAE runs: mean and log-variance of q(z|x), each `(N, K)`."""
        return posterior(self._vae("posterior"), x)

    def kl_per_latent(self, x) -> np.ndarray:
        """VAE runs: `(K,)`, each latent's KL(q(z_k|x) || N(0, 1)) averaged over the rows of `x`."""
        return kl_per_latent(self._vae("kl_per_latent"), x)

    def traverse(self, x, values=TRAVERSAL_VALUES, dims=None) -> np.ndarray:
        """VAE runs: `(N, len(dims), len(values), D)` latent traversals of the `(N, D)` inputs `x`
        (see `traverse`). `dims=None` traverses every latent, ordered by its KL over the test split,
        largest first: `latent_order(run.kl_per_latent(run.data.test))`."""
        model = self._vae("traverse")
        dims = latent_order(kl_per_latent(model, self.data.test)) if dims is None else dims
        return traverse(model, x, values, dims)

    def disentanglement(self, mode: str = "exact", sizes: dict | None = None, seed: int = 0) -> dict:
        """Data with ground-truth factors: this member's disentanglement metrics `{name: float}`
        (aejax.metrics' names; a VAE's representation is its posterior mean). `sizes` overrides the
        study's sizes ({"num_train": 1000, "dci.num_train": 100}). The factors are those every member
        is scored on with this seed and these sizes; summary.json and aejax-metrics score a whole
        population in one program, so their codes (and scores) can differ from these in the last bits."""
        from aejax.disentanglement import score_model

        return score_model(self.spec, self.data, self.model, self.member, mode=mode, sizes=sizes, seed=seed)

    def _vae(self, method: str):
        if self.spec.model.family != "vae":
            raise ConfigError(f"{method} needs a VAE run (model.family=vae); this run has "
                              f"model.family={self.spec.model.family}, which has no posterior q(z|x)")
        return self.model


def _batched(fn, x):
    """`fn` on `(N, D)` inputs, BATCH rows per jitted call; an array (or tuple of arrays) of N rows."""
    f = jax.jit(fn)
    x = np.asarray(x, np.float32)
    parts = [f(x[i:i + BATCH]) for i in range(0, len(x), BATCH)]
    return jax.tree.map(lambda *p: np.concatenate([np.asarray(a) for a in p]), *parts)


def posterior(model, x) -> tuple[np.ndarray, np.ndarray]:
    """A VAE's q(z|x) for `(N, D)` inputs: (mean, log-variance), each `(N, K)`."""
    return _batched(model.posterior, x)


def kl_per_latent(model, x) -> np.ndarray:
    """`(K,)`: KL(q(z_k|x) || N(0, 1)) = (mean^2 + var - 1 - log var) / 2 per latent, averaged over
    the rows of `x`. Near 0: a collapsed latent the decoder ignores."""
    mean, logvar = posterior(model, x)
    return np.mean(0.5 * (mean ** 2 + np.exp(logvar) - 1.0 - logvar), axis=0)


def latent_order(kl: np.ndarray) -> np.ndarray:
    """Latent indices by KL, largest first (ties keep index order)."""
    return np.argsort(-np.asarray(kl), kind="stable")


def traverse(model, x, values=TRAVERSAL_VALUES, dims=None) -> np.ndarray:
    """Latent traversals of a VAE: `(N, R, V, D)` decoded means for `(N, D)` inputs `x`, R = len(dims)
    latents (None: all, in index order) and V = len(values).

    Entry `[i, r, j]` decodes the posterior mean of `x[i]` with latent `dims[r]` *set to* `values[j]`
    (the other latents stay at the mean): the convention of disentanglement_lib
    (`latent_traversal_1d_multi_dim`, its `fixed_interval_cycle` over [-2, 2]) and disent, so a
    column shows the same prior value for every image. Values are absolute, not offsets."""
    values = np.asarray(values, np.float32)
    dims = np.arange(model.latent) if dims is None else np.asarray(dims)
    if values.ndim != 1 or not len(values):
        raise ConfigError(f"values of shape {values.shape} is not allowed; expected a 1-D array of latent values")
    if dims.ndim != 1 or not np.issubdtype(dims.dtype, np.integer) or ((dims < 0) | (dims >= model.latent)).any():
        raise ConfigError(f"dims={dims.tolist()} is not allowed; expected latent indices 0 to {model.latent - 1}")
    mean = posterior(model, x)[0]
    z = np.repeat(np.repeat(mean[:, None, None, :], len(dims), axis=1), len(values), axis=2)  # (N, R, V, K)
    for r, d in enumerate(dims):
        z[:, r, :, d] = values
    return _batched(model.decode, z.reshape(-1, model.latent)).reshape(*z.shape[:3], -1)


@dataclass
class RestoredPopulation:
    spec: RunSpec
    data: Dataset
    graph: object            # the model's static structure: nnx.merge(graph, member params)
    params: dict             # every member's parameters, leading axis = member
    rows: list[dict]         # the members (member, seed, hyperparameters), in params' order
    epoch: int


def load_run(run_dir: str | Path, member: int = 0, epoch: int | None = None,
             data_root: str | None = None) -> TrainedRun:
    """One member of the population trained in `run_dir`.

    `data_root` replaces the config's `data.root` (a relative root is relative to where the
    run was launched)."""
    run = restore_population(run_dir, epoch, data_root, member)
    index = [r["member"] for r in run.rows].index(member)
    model = member_model(run.graph, run.params, index, top_k=run.rows[index]["model.top_k"])
    return TrainedRun(spec=run.spec, data=run.data, model=model, member=run.rows[index], epoch=run.epoch)


def restore_population(run_dir: str | Path, epoch: int | None = None, data_root: str | None = None,
                       member: int | None = None) -> RestoredPopulation:
    """Every member trained in `run_dir` (`load_run`'s arguments; `member`, if given, must be one of them)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"run_dir={run_dir} is not a run directory; expected one with config.yaml (an aejax-train output)")
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    if data_root is not None:
        config["data"]["root"] = data_root
    spec = parse_run(config)
    rows = members(spec)
    numbers = [r["member"] for r in rows]  # a shard's members keep their numbers in the whole population
    if member is not None and member not in numbers:
        raise ConfigError(f"member={member} is not allowed; expected {numbers[0]} to {numbers[-1]} "
                          f"(members in this run: {len(rows)})")
    checkpoints = PopulationCheckpointer(run_dir / "checkpoints") if (run_dir / "checkpoints").is_dir() else None
    available = sorted(checkpoints.manager.all_steps()) if checkpoints else []  # numbered by steps done
    if not available:
        raise ConfigError(f"run_dir={run_dir} has no checkpoint; expected checkpoints/<step> (did the run finish?)")

    data = load_dataset(spec.data)
    steps_per_epoch = len(data.train) // spec.trainer.batch_size
    epochs = [s // steps_per_epoch for s in available if s % steps_per_epoch == 0]
    step = available[-1] if epoch is None else epoch * steps_per_epoch
    if step not in available:
        raise ConfigError(f"epoch={epoch} is not allowed; expected one of {epochs} (the epochs with a checkpoint)")
    epoch = step // steps_per_epoch
    optimizer = make_optimizer(spec.optim, steps_per_epoch * spec.trainer.epochs)
    keys = member_keys([r["seed"] for r in rows])
    # Shapes only: the checkpoint restores into them without initialising a population.
    state_like = jax.eval_shape(
        lambda k: init_population(lambda kk: init_params(spec.model, data.dim, data.image_shape, kk), optimizer, k,
                                  critic_for(spec.model)), keys)
    try:
        params = checkpoints.restore(step, state_like)["params"]
    except UnreadableCheckpoint as err:
        readable = [s // steps_per_epoch for s in available
                    if s != step and s % steps_per_epoch == 0 and _readable(checkpoints, s, state_like)]
        raise ConfigError(f"{err}; readable epochs: {readable or 'none'} (pass epoch=...)") from None
    finally:
        checkpoints.close()
    return RestoredPopulation(spec, data, model_graph(spec.model, data.dim, data.image_shape), params, rows, epoch)


def _readable(checkpoints: PopulationCheckpointer, epoch: int, state_like) -> bool:
    try:
        checkpoints.restore(epoch, state_like)
        return True
    except UnreadableCheckpoint:
        return False


def codes_and_baselines(run: TrainedRun) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(training, test) features to compare: the pixels, PCA fitted on the training images with
    as many components as the code, and the member's codes."""
    from sklearn.decomposition import PCA

    train, test = run.data.train, run.data.test
    k = run.spec.model.code_size
    pca = PCA(k, random_state=0).fit(train)
    return {"pixels": (train, test), f"PCA {k}": (pca.transform(train), pca.transform(test)),
            f"autoencoder {k}": (run.encode(train), run.encode(test))}


def report_parser(doc: str, script: str) -> argparse.ArgumentParser:
    """The arguments of every experiments/*/make_report.py: RUN_DIR, --data-root, --member, --out."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--data-root", help="where the run's data files are now, if they moved")
    parser.add_argument("--member", type=int, default=0, help="which member of the run's population")
    parser.add_argument("--out", default=str(Path(script).parent / "results.json"), help="where results.json goes")
    return parser


def open_run_for_report(parser: argparse.ArgumentParser, needs: str | None = None):
    """Parse a report's arguments and open its run; a bad request exits with one line (status 2).

    `needs`: "labels" or "images", what the report cannot do without."""
    args = parser.parse_args()
    try:
        run = load_run(args.run_dir, member=args.member, data_root=args.data_root)
    except ConfigError as error:
        parser.exit(2, f"{Path(sys.argv[0]).name}: error: {error}\n")
    if needs == "labels" and run.data.train_labels is None:
        parser.exit(2, f"{Path(sys.argv[0]).name}: error: data={run.spec.data.name} has no labels; this report needs them\n")
    if needs == "images" and run.data.image_shape is None:
        parser.exit(2, f"{Path(sys.argv[0]).name}: error: data={run.spec.data.name} is not images; this report needs them\n")
    return args, run
