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

import numpy as np

from aejax.config import RunSpec
from aejax.data import Dataset
from aejax.errors import ConfigError
from aejax.latents import TRAVERSAL_VALUES, batched, kl_per_latent, latent_order, posterior, traverse
from aejax.models import member_model, member_settings
from aejax.restore import RestoredPopulation, restore_population  # noqa: F401  (part of this module's interface)


@dataclass
class TrainedRun:
    spec: RunSpec
    data: Dataset
    model: object            # the member's Flax NNX model: encode, decode, __call__ (VAE: sample)
    member: dict             # its row of summary.json: member, seed and every hyperparameter
    epoch: int               # the checkpoint's number of completed epochs

    def encode(self, x) -> np.ndarray:
        """Codes f(x) of `(N, D)` inputs (the posterior mean for a VAE)."""
        return batched(self.model.encode, x)

    def reconstruct(self, x) -> np.ndarray:
        """g(f(x)): the deterministic reconstruction the test metrics use."""
        return batched(lambda xb: self.model.decode(self.model.encode(xb)), x)

    def decode(self, h) -> np.ndarray:
        return batched(self.model.decode, h)

    def posterior(self, x) -> tuple[np.ndarray, np.ndarray]:
        """VAE runs: mean and log-variance of q(z|x), each `(N, K)`."""
        return posterior(self._vae("posterior"), x)

    def kl_per_latent(self, x) -> np.ndarray:
        """VAE runs: `(K,)`, each latent's KL(q(z_k|x) || p(z_k)) averaged over the rows of `x` (p(z_k): the
        prior's marginal, N(0, 1) but for a VampPrior)."""
        return kl_per_latent(self._vae("kl_per_latent"), x)

    def traverse(self, x, values=TRAVERSAL_VALUES, dims=None) -> np.ndarray:
        """VAE runs: `(N, len(dims), len(values), D)` latent traversals of the `(N, D)` inputs `x`
        (see `traverse`). `dims=None` traverses every latent, ordered by its KL over the test split,
        largest first: `latent_order(run.kl_per_latent(run.data.test))`."""
        model = self._vae("traverse")
        dims = latent_order(kl_per_latent(model, self.data.test)) if dims is None else dims
        return traverse(model, x, values, dims)

    def disentanglement(self, mode: str | None = None, sizes: dict | None = None, seed: int = 0,
                        preset: str = "paper") -> dict:
        """Data with ground-truth factors: this member's disentanglement metrics `{name: float}`
        (aejax.metrics' names; a VAE's representation is its posterior mean). `preset` (paper: the study's
        sizes, exact; quick: small sizes, fast) gives the mode and sizes; `mode` and `sizes` override its
        ({"num_train": 1000, "dci.num_train": 100}). The factors are those every member
        is scored on with this seed and these sizes; summary.json and aejax-metrics score a whole
        population in one program, so their codes (and scores) can differ from these in the last bits."""
        from aejax.disentanglement import score_model

        return score_model(self.spec, self.data, self.model, self.member, mode=mode, sizes=sizes, seed=seed,
                           preset=preset)

    def _vae(self, method: str):
        if not self.spec.model.declaration.gaussian_latent:
            raise ConfigError(f"{method} needs a VAE run (model.family=vae); this run has "
                              f"model.family={self.spec.model.family}, which has no posterior q(z|x)")
        return self.model


def load_run(run_dir: str | Path, member: int = 0, epoch: int | None = None,
             data_root: str | None = None) -> TrainedRun:
    """One member of the population trained in `run_dir`.

    `data_root` replaces the config's `data.root` (a relative root is relative to where the
    run was launched)."""
    run = restore_population(run_dir, epoch, data_root, member)
    index = [r["member"] for r in run.rows].index(member)
    model = member_model(run.graph, run.params, index, member_settings(run.spec.model, run.rows[index]))
    return TrainedRun(spec=run.spec, data=run.data, model=model, member=run.rows[index], epoch=run.epoch)


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
