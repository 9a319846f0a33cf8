"""aejax's disentanglement metrics against disentanglement_lib 1.5's own metric code, back to back.

    UV_PROJECT_ENVIRONMENT=.venv-dlib uv sync --locked --group dlib
    UV_PROJECT_ENVIRONMENT=.venv-dlib uv run --locked --group dlib python scripts/bench_metrics_dlib.py RUN_DIR \
        [--members 1] [--workers 1,0] [--sizes num_train=1000,...] [--json OUT]

RUN_DIR: a finished aejax-train run on dSprites (or any data with ground-truth factors).

- **disentanglement_lib**: for each of the first `--members` members, its seven metric functions of the
  study (`compute_beta_vae_sklearn`, `compute_factor_vae`, `compute_mig`, `compute_dci`, `compute_sap`,
  `compute_modularity_explicitness`, `unsupervised_metrics`) with the study's gin sizes and the seeds
  `dlib_reproduce` gives the mean representation, one after another. The representation function is
  the member's encoder (its posterior mean: one jitted call per batch dlib asks for), the data is
  aejax's dSprites behind dlib's `GroundTruthData` interface.
- **aejax**: `aejax.disentanglement.score_population` for the same members together, the same metrics
  at the same sizes in exact mode, once per `--workers` value (0: one worker per core).

Printed: seconds per member on each side, then `ratio R` = dlib's seconds per member / aejax's.

Same numbers: every factor row dlib draws and every code its representation function returns are
recorded, and aejax's metric code scores dlib's own draw from them: each of dlib's scores beside
aejax's, with the largest difference. (aejax's own scoring draws other factors, from its own seeded
streams, so its scores differ from dlib's by sampling; the recorded draw compares the definitions.)

The metric modules of disentanglement_lib import only numpy, scipy and scikit-learn, plus `gin.tf`
(stubbed here: it would import TensorFlow) and absl; the `dlib` dependency group installs them without
TensorFlow (pyproject.toml). gin-config 0.3.0: later versions fail at its import.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import sys
import time
import types

import numpy as np

sys.modules.setdefault("gin.tf", types.ModuleType("gin.tf"))  # dlib's `import gin.tf` would pull in TensorFlow

import gin  # noqa: E402
from disentanglement_lib.data.ground_truth.ground_truth_data import GroundTruthData  # noqa: E402
from disentanglement_lib.evaluation.metrics import (beta_vae, dci, factor_vae, mig,  # noqa: E402
                                                    modularity_explicitness, sap_score, unsupervised_metrics, utils)

import jax  # noqa: E402

from aejax import metrics as aejax_metrics  # noqa: E402
from aejax.disentanglement import population_encoder, score_population  # noqa: E402
from aejax.metrics.common import Draw  # noqa: E402
from aejax.population import hyperparameter_arrays  # noqa: E402
from aejax.restore import restore_population  # noqa: E402

# The seed each metric of the mean representation gets in disentanglement_lib's bin/dlib_reproduce
# (RandomState(0).randint(2**32) in its order; ../shared/notes/disentanglement.md section 3.1).
DLIB_SEEDS = {"beta_vae": 3071714933, "dci": 3626093760, "factor_vae": 2340255427, "mig": 3638918503,
              "modularity_explicitness": 1819583497, "sap": 2678185683, "unsupervised": 2774094101}
# aejax's metric name -> (aejax family, dlib's key in that metric's result)
SAME = {"beta_vae_score": ("beta_vae", "eval_accuracy"), "factor_vae_score": ("factor_vae", "eval_accuracy"),
        "mig": ("mig", "discrete_mig"), "dci_disentanglement": ("dci", "disentanglement"),
        "dci_completeness": ("dci", "completeness"), "dci_informativeness": ("dci", "informativeness_test"),
        "sap": ("sap", "SAP_score"), "modularity": ("modularity_explicitness", "modularity_score"),
        "explicitness": ("modularity_explicitness", "explicitness_score_test"),
        "gaussian_tc_mean": ("unsupervised", "gaussian_total_correlation"),
        "gaussian_wasserstein_corr": ("unsupervised", "gaussian_wasserstein_correlation"),
        "mutual_info_score": ("unsupervised", "mutual_info_score")}
NAMES = tuple(SAME)  # the mean representation's metrics (gaussian_tc_sampled is aejax's own)


class RecordedTruth(GroundTruthData):
    """aejax's ground truth behind disentanglement_lib's interface; it queues the factor rows of every
    observation it makes, and `represent` takes them off in order with the codes it returns."""

    def __init__(self, truth, encode):
        self.truth, self.encode = truth, encode
        self.queue: collections.deque = collections.deque()
        self.rows: list[tuple[np.ndarray, np.ndarray]] = []  # (factors (n, F), codes (n, K)) per call

    @property
    def num_factors(self):
        return self.truth.num_factors

    @property
    def factors_num_values(self):
        return list(self.truth.factor_sizes)

    @property
    def observation_shape(self):
        return list(self.truth.image_shape)

    def sample_factors(self, num, random_state):  # as dlib's SplitDiscreteStateSpace: one randint per factor
        factors = np.zeros((num, self.num_factors), np.int64)
        for i, size in enumerate(self.truth.factor_sizes):
            factors[:, i] = random_state.randint(size, size=num)
        return factors

    def sample_observations_from_factors(self, factors, random_state):
        factors = np.array(factors, np.int64)
        self.queue.extend(factors)
        return self.truth.observations(factors).reshape(len(factors), *self.truth.image_shape)

    def represent(self, x):
        codes = self.encode(np.asarray(x).reshape(len(x), -1))[0][0]
        factors = np.stack([self.queue.popleft() for _ in range(len(x))])
        self.rows.append((factors, codes))
        return codes

    def take(self):
        rows, self.rows = self.rows, []
        assert not self.queue, "observations made that were never encoded"
        return rows


def dlib_metrics(sizes: dict) -> dict:
    """dlib's metric functions with the study's gin settings: {aejax family: fn(gt, represent, rs)}."""
    gin.clear_config()
    gin.bind_parameter("discretizer.discretizer_fn", utils._histogram_discretize)
    gin.bind_parameter("discretizer.num_bins", 20)
    gin.bind_parameter("prune_dims.threshold", 0.05)
    size = lambda family, key: sizes.get(f"{family}.{key}", sizes.get(key, aejax_metrics.FAMILIES[family].SIZES[key]))  # noqa: E731
    split = lambda fam: {"num_train": size(fam, "num_train"), "num_test": size(fam, "num_test")}  # noqa: E731
    return {
        "beta_vae": lambda g, r, rs: beta_vae.compute_beta_vae_sklearn(
            g, r, rs, None, batch_size=size("beta_vae", "batch_size"), num_train=size("beta_vae", "num_train"),
            num_eval=size("beta_vae", "num_eval")),
        "factor_vae": lambda g, r, rs: factor_vae.compute_factor_vae(
            g, r, rs, None, batch_size=size("factor_vae", "batch_size"), num_train=size("factor_vae", "num_train"),
            num_eval=size("factor_vae", "num_eval"),
            num_variance_estimate=size("factor_vae", "num_variance_estimate")),
        "mig": lambda g, r, rs: mig.compute_mig(g, r, rs, None, num_train=size("mig", "num_train")),
        "dci": lambda g, r, rs: dci.compute_dci(g, r, rs, None, **split("dci")),
        "sap": lambda g, r, rs: sap_score.compute_sap(g, r, rs, None, continuous_factors=False, **split("sap")),
        "modularity_explicitness": lambda g, r, rs: modularity_explicitness.compute_modularity_explicitness(
            g, r, rs, None, **split("modularity_explicitness")),
        "unsupervised": lambda g, r, rs: unsupervised_metrics.unsupervised_metrics(
            g, r, rs, None, num_train=size("unsupervised", "num_train")),
    }


def shared_factor(f1: np.ndarray, f2: np.ndarray | None = None) -> int:
    """The factor two batches share (BetaVAE), or the one a batch holds fixed (FactorVAE)."""
    same = (f1 == f2).all(axis=0) if f2 is not None else (f1 == f1[:1]).all(axis=0)
    assert same.sum() == 1, f"cannot tell the fixed factor: {same}"
    return int(np.flatnonzero(same)[0])


def aejax_on_dlib_draw(family: str, rows, sizes: dict) -> dict:
    """aejax's score of one family on the rows and codes dlib drew and encoded."""
    mod = aejax_metrics.FAMILIES[family]
    size = lambda key: sizes.get(f"{family}.{key}", sizes.get(key, mod.SIZES[key]))  # noqa: E731
    factors = np.concatenate([f for f, _ in rows])
    codes = np.concatenate([c for _, c in rows]).astype(np.float32)
    names = tuple(n for n in mod.NAMES if n in NAMES)
    if family == "beta_vae":  # per point: two calls of batch_size rows
        labels = [shared_factor(rows[i][0], rows[i + 1][0]) for i in range(0, len(rows), 2)]
        meta = {"labels": np.array(labels), "num_train": size("num_train"), "batch_size": size("batch_size"),
                "seed": 0}
    elif family == "factor_vae":  # the variance estimate (one draw, encoded 64 rows a call), then a call per vote
        calls, seen = 0, 0
        while seen < size("num_variance_estimate"):
            seen, calls = seen + len(rows[calls][0]), calls + 1
        votes = [f for f, _ in rows[calls:]]
        assert seen == size("num_variance_estimate") and len(votes) == size("num_train") + size("num_eval")
        meta = {"labels": np.array([shared_factor(f) for f in votes]), "num_train": size("num_train"),
                "num_variance_estimate": size("num_variance_estimate"), "batch_size": size("batch_size")}
    elif family in ("dci", "sap", "modularity_explicitness"):
        meta = {"num_train": size("num_train"), "seed": 0}
    else:
        meta = {"noise_seed": 0}
    return mod.score(codes, Draw(factors, meta), mode="exact", names=names)


def dlib_dci_again(rows, sizes: dict, seed: int | None) -> dict:
    """dlib's `_compute_dci` on its own recorded draw once more: its GradientBoostingClassifier() takes
    numpy's global random state (random_state=None), which breaks ties between equally good splits, so
    two dlib runs on the same codes differ; with `seed` its classifiers get random_state=seed, as
    aejax's do (so the two must agree exactly)."""
    import functools

    from sklearn import ensemble

    n = sizes.get("dci.num_train", sizes.get("num_train", aejax_metrics.FAMILIES["dci"].SIZES["num_train"]))
    factors = np.concatenate([f for f, _ in rows])
    codes = np.concatenate([c for _, c in rows])
    saved = dci.ensemble
    if seed is not None:
        dci.ensemble = types.SimpleNamespace(
            GradientBoostingClassifier=functools.partial(ensemble.GradientBoostingClassifier, random_state=seed))
    try:
        return dci._compute_dci(codes[:n].T, factors[:n].T, codes[n:].T, factors[n:].T)
    finally:
        dci.ensemble = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--members", type=int, default=1, help="members scored by both (the first ones)")
    parser.add_argument("--workers", default="1,0", help="aejax's metrics.workers values, each timed (0: per core)")
    parser.add_argument("--sizes", default="", help="overrides of the study's sizes, e.g. num_train=1000 (a quick try)")
    parser.add_argument("--json", default=None, help="write every number here")
    parser.add_argument("--no-dlib", action="store_true", help="time aejax only (no ratio)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)
    for noisy in ("jax._src.xla_bridge", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    sizes = {k: int(v) for k, v in (item.split("=") for item in args.sizes.split(",") if item)}

    run = restore_population(args.run_dir)
    truth, spec, m = run.data.ground_truth, run.spec, args.members
    params = jax.tree.map(lambda a: a[:m], run.params)
    hp = {k: v[:m] for k, v in hyperparameter_arrays(run.rows).items()}
    print(f"{m} member(s) of {args.run_dir} ({spec.model.family}, {spec.model.architecture}); "
          f"sizes {sizes or 'the study'}; {os.cpu_count()} cores; jax {jax.__version__} on {jax.default_backend()}",
          flush=True)
    out = {"members": m, "sizes": sizes, "dlib": [], "aejax": {}, "same_draw": []}

    fns = dlib_metrics(sizes)
    for i in range(0 if args.no_dlib else m):
        encode = population_encoder(spec.model, run.graph, jax.tree.map(lambda a: a[i:i + 1], params),
                                    {k: v[i:i + 1] for k, v in hp.items()}, image_shape=truth.image_shape)
        for rows in (16, 64):  # compile the shapes dlib's calls use, outside the timings
            encode(truth.observations(truth.sample_factors(rows, np.random.default_rng(0))))
        gt = RecordedTruth(truth, encode)
        seconds, scores, same = {}, {}, {}
        for family, fn in fns.items():
            tic = time.perf_counter()
            scores[family] = fn(gt, gt.represent, np.random.RandomState(DLIB_SEEDS[family]))
            seconds[family] = time.perf_counter() - tic
            rows = gt.take()
            same[family] = aejax_on_dlib_draw(family, rows, sizes)
            print(f"dlib member {i}: {family} {seconds[family]:.1f} s", flush=True)
            if family == "dci":  # untimed: dlib again on its draw, unseeded (its spread) and seeded as aejax
                scores["dci_unseeded_again"] = dlib_dci_again(rows, sizes, None)
                scores["dci_seeded"] = dlib_dci_again(rows, sizes, 0)
        total = sum(seconds.values())
        print(f"dlib member {i}: {total:.1f} s in all", flush=True)
        rows = [{"metric": n, "dlib": float(scores[fam][key]), "aejax_on_dlib_draw": float(same[fam][n]),
                 "abs_diff": abs(float(scores[fam][key]) - float(same[fam][n]))} for n, (fam, key) in SAME.items()]
        for r in rows:
            if SAME[r["metric"]][0] == "dci":  # dlib's DCI, seeded as aejax's, and unseeded once more
                key = SAME[r["metric"]][1]
                r["dlib_seeded"] = float(scores["dci_seeded"][key])
                r["dlib_unseeded_again"] = float(scores["dci_unseeded_again"][key])
                r["abs_diff_seeded"] = abs(r["dlib_seeded"] - r["aejax_on_dlib_draw"])
            print(f"  {r['metric']:28s} dlib {r['dlib']:.10f}  aejax on dlib's draw {r['aejax_on_dlib_draw']:.10f}"
                  f"  |diff| {r['abs_diff']:.2e}" + (
                      f"  (dlib seeded as aejax {r['dlib_seeded']:.10f}, |diff| {r['abs_diff_seeded']:.2e}; dlib "
                      f"unseeded again {r['dlib_unseeded_again']:.10f})" if "dlib_seeded" in r else ""), flush=True)
        out["dlib"].append({"member": i, "seconds": seconds, "total": total})
        out["same_draw"].append(rows)
    dlib_per_member = np.mean([d["total"] for d in out["dlib"]]) if out["dlib"] else float("nan")

    encode = population_encoder(spec.model, run.graph, params, hp, image_shape=truth.image_shape)
    for workers in (int(w) for w in args.workers.split(",")):
        tic = time.perf_counter()
        got = score_population(encode, truth, NAMES, seed=0, mode="exact", sizes=sizes, workers=workers)
        seconds = time.perf_counter() - tic
        out["aejax"][workers] = {"seconds": seconds, "scores": {n: got[n].tolist() for n in NAMES}}
        print(f"aejax workers={workers}: {m} member(s) in {seconds:.1f} s, {seconds / m:.1f} s a member "
              f"(first member: " + ", ".join(f"{n} {got[n][0]:.4f}" for n in NAMES) + ")", flush=True)
        print(f"per member: disentanglement_lib {dlib_per_member:.1f} s, aejax (workers={workers}) "
              f"{seconds / m:.1f} s: ratio {dlib_per_member / (seconds / m):.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
