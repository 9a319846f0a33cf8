"""Open a finished run and use its autoencoders: encode new data, reconstruct, generate.

    from aejax.trained import load_run
    run = load_run("outputs/mnist_deep_autoencoder/2026-11-23_15-10-21", member=0)
    codes = run.encode(run.data.test)            # (10000, 30) numpy array
    recon = run.reconstruct(run.data.test)       # g(f(x)), as the test metrics compute it

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

BATCH = 1000  # rows per jitted call in encode/reconstruct: bounded memory on any split size


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


def _batched(fn, x) -> np.ndarray:
    f = jax.jit(fn)
    x = np.asarray(x, np.float32)
    return np.concatenate([np.asarray(f(x[i:i + BATCH])) for i in range(0, len(x), BATCH)])


def load_run(run_dir: str | Path, member: int = 0, epoch: int | None = None,
             data_root: str | None = None) -> TrainedRun:
    """One member of the population trained in `run_dir`.

    `data_root` replaces the config's `data.root` (a relative root is relative to where the
    run was launched)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"run_dir={run_dir} is not a run directory; expected one with config.yaml (an aejax-train output)")
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    if data_root is not None:
        config["data"]["root"] = data_root
    spec = parse_run(config)
    rows = members(spec)
    numbers = [r["member"] for r in rows]  # a shard's members keep their numbers in the whole population
    if member not in numbers:
        raise ConfigError(f"member={member} is not allowed; expected {numbers[0]} to {numbers[-1]} "
                          f"(members in this run: {len(rows)})")
    index = numbers.index(member)
    checkpoints = PopulationCheckpointer(run_dir / "checkpoints") if (run_dir / "checkpoints").is_dir() else None
    available = sorted(checkpoints.manager.all_steps()) if checkpoints else []
    if not available:
        raise ConfigError(f"run_dir={run_dir} has no checkpoint; expected checkpoints/<epoch> (did the run finish?)")
    epoch = available[-1] if epoch is None else epoch
    if epoch not in available:
        raise ConfigError(f"epoch={epoch} is not allowed; expected one of {available} (the saved checkpoints)")

    data = load_dataset(spec.data)
    steps_per_epoch = len(data.train) // spec.trainer.batch_size
    optimizer = make_optimizer(spec.optim, steps_per_epoch * spec.trainer.epochs)
    keys = member_keys([r["seed"] for r in rows])
    # Shapes only: the checkpoint restores into them without initialising a population.
    state_like = jax.eval_shape(
        lambda k: init_population(lambda kk: init_params(spec.model, data.dim, data.image_shape, kk), optimizer, k),
        keys)
    try:
        params = checkpoints.restore(epoch, state_like)["params"]
    except UnreadableCheckpoint as err:
        readable = [e for e in available if e != epoch and _readable(checkpoints, e, state_like)]
        raise ConfigError(f"{err}; readable epochs: {readable or 'none'} (pass epoch=...)") from None
    finally:
        checkpoints.close()
    graph = model_graph(spec.model, data.dim, data.image_shape)
    model = member_model(graph, params, index, top_k=rows[index]["model.top_k"])
    return TrainedRun(spec=spec, data=data, model=model, member=rows[index], epoch=epoch)


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
