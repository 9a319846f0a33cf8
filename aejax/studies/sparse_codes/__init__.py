"""Sparse and overcomplete codes: what does an overcomplete autoencoder learn?

Task `sparse_codes` (conf/experiment/sparse_codes.yaml, report experiments/sparse_codes) trains
one population (typically one regulariser swept over its weight: `conf/regulariser/`), then, for
every member, measures on the test set

- reconstruction MSE, mean L0 of the codes and the fraction of dead units (from the run's
  summary, `aejax.evaluate`), and `effective_l0`, the mean over images of the participation
  ratio (sum_j |h_j|)^2 / sum_j h_j^2: a threshold-free count of active units. It matters for
  sigmoid codes (KL sparsity), which are small but never exactly zero, so that their L0 at
  any fixed threshold says little;
- two tests of the textbook account that an unregularised overcomplete autoencoder tends
  towards copying its input:
  * `permuted_mse_ratio`: MSE on test images whose pixels are shuffled by one fixed
    permutation (the same pixel values, no digit structure), divided by the MSE on the
    real test images. A copying map reconstructs anything (ratio near 1); a map that
    learned features of digits does not (ratio >> 1).
  * `jacobian_diagonal_share`: the share of the squared Frobenius norm of the input-output
    Jacobian dr/dx that lies on its diagonal, averaged over test images. The identity
    map has 1; a map whose output pixels depend on many input pixels has a share near 0.
- the learned encoder filters (first-layer weights), drawn for every member.

The metrics join each member's test metrics in summary.json, the regulariser and the sizes are its
"study"; writes `sparse_codes.json` (the same, a row per member with its settings),
`figures/filters.png` and `figures/mse_vs_l0.png` (drawn by `figures`) before summary.json;
`experiments/sparse_codes/make_report.py` gathers the jobs of a multirun into one table.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from aejax.config import ConfigError, RunSpec, parse_run
from aejax.evaluate import ACTIVE_THRESHOLD
from aejax.models import member_model, member_settings
from aejax.population import members, varied_settings
from aejax.run import train_and_evaluate

JACOBIAN_IMAGES = 100     # test images whose full 784 x 784 Jacobian is computed
JACOBIAN_CHUNK = 20       # images per Jacobian batch (bounds memory: 20 x 784 x 784 floats)
FILTERS_SHOWN = 36        # per member: the first 36 units that are alive on the test set
PERMUTATION_SEED = 0


def regulariser(spec: RunSpec, rows: list[dict]) -> str:
    """A short label for what makes this population's code sparse or robust."""
    if spec.model.family_settings.sparsity != "none":
        return spec.model.family_settings.sparsity
    if any(r["model.noise_level"] > 0 for r in rows):
        return f"denoising ({spec.model.corruption})"
    if any(r["model.contractive_weight"] > 0 for r in rows):
        return "contractive"
    return "plain"


def check(spec: RunSpec) -> None:
    if spec.model.family != "autoencoder" or spec.model.architecture != "mlp":
        raise ConfigError(f"model.architecture={spec.model.architecture!r} is not allowed with task=sparse_codes; "
                          "expected mlp with model.family=autoencoder (filters are first-layer weights)")
    if spec.data.name == "synthetic":
        raise ConfigError(f"data.name={spec.data.name!r} is not allowed with task=sparse_codes; "
                          "expected image data (digits or mnist) to draw filters")


def jacobian_diagonal_share(model, x: jax.Array) -> float:
    """Mean over images of sum_i J_ii^2 / sum_ij J_ij^2, J = d r(x) / d x."""
    reconstruct = lambda v: model.decode(model.encode(v))
    jac = jax.jit(jax.vmap(jax.jacfwd(reconstruct)))
    shares = []
    for start in range(0, len(x), JACOBIAN_CHUNK):
        j = jac(x[start:start + JACOBIAN_CHUNK])
        diagonal = jnp.sum(jnp.diagonal(j, axis1=-2, axis2=-1) ** 2, axis=-1)
        shares.append(np.asarray(diagonal / jnp.maximum(jnp.sum(j**2, axis=(-2, -1)), 1e-30)))
    return float(np.mean(np.concatenate(shares)))


def effective_l0(codes: np.ndarray) -> float:
    """Mean participation ratio (sum |h|)^2 / sum h^2 of `(N, code)` codes; all-zero codes count 0."""
    a = np.abs(codes.astype(np.float64))
    l1, l2 = a.sum(axis=1), (a**2).sum(axis=1)
    return float(np.mean(np.where(l2 > 0, l1**2 / np.maximum(l2, 1e-300), 0.0)))


def permuted_mse(reconstruct, test: np.ndarray) -> dict:
    """MSE on `test` and on `test` with its pixels shuffled by one fixed permutation."""
    shuffled = test[:, np.random.default_rng(PERMUTATION_SEED).permutation(test.shape[1])]
    mse, permuted = (float(np.mean((np.asarray(reconstruct(v)) - v) ** 2)) for v in (test, shuffled))
    return {"permuted_mse": permuted, "permuted_mse_ratio": permuted / max(mse, 1e-30), "mse": mse}


def copying_tests(model, test: np.ndarray) -> dict:
    reconstruct = jax.jit(lambda v: model.decode(model.encode(v)))
    permuted = permuted_mse(lambda v: reconstruct(jnp.asarray(v)), test)
    return {"permuted_mse": permuted["permuted_mse"], "permuted_mse_ratio": permuted["permuted_mse_ratio"],
            "jacobian_diagonal_share": jacobian_diagonal_share(model, jnp.asarray(test[:JACOBIAN_IMAGES]))}


def pca_reference(train: np.ndarray, test: np.ndarray, components: int) -> dict:
    """The copying tests for PCA with `components` components, a linear map with known features.

    Its Jacobian is the projector P = U U^T, so the diagonal share is sum_i P_ii^2 / components.
    """
    from sklearn.decomposition import PCA

    pca = PCA(components, svd_solver="randomized", random_state=0).fit(train)
    projector_diagonal = np.sum(pca.components_.astype(np.float64) ** 2, axis=0)
    return {"components": components, **permuted_mse(lambda v: pca.inverse_transform(pca.transform(v)), test),
            "jacobian_diagonal_share": float(np.sum(projector_diagonal**2) / components)}


def first_layer_filters(model, test: np.ndarray) -> np.ndarray:
    """`(FILTERS_SHOWN, D)` input weights of the first code-path units alive on `test`."""
    kernel = np.asarray(model.encoder.layers[0].kernel[...])          # (D, units)
    if len(model.encoder.layers) == 1:                                 # the first layer is the code layer
        h = np.asarray(model.encode(jnp.asarray(test)))
    else:
        h = np.asarray(model.encoder.activation(model.encoder.layers[0](jnp.asarray(test))))
    alive = np.flatnonzero(np.any(np.abs(h) > ACTIVE_THRESHOLD, axis=0))
    return kernel[:, alive[:FILTERS_SHOWN]].T


def run(config: dict, workdir: Path) -> dict:
    spec = parse_run(config)
    check(spec)
    return train_and_evaluate({**config, "task": "train"}, workdir, analyse=analyse)


def analyse(spec: RunSpec, data, graph, params, summaries: list[dict], workdir: Path):
    """The study's per-member metrics, figures and what describes the population (the hook of
    `train_and_evaluate`); `sparse_codes.json` has the same, with each member's settings and metrics."""
    from aejax.studies.sparse_codes.figures import filter_panels, mse_vs_l0

    rows = members(spec)
    label = regulariser(spec, rows)
    varied = [v for v in varied_settings(rows) if v != "seed"]
    extra, results, filters = [], [], []
    for i, (row, member_summary) in enumerate(zip(rows, summaries)):
        model = member_model(graph, params, i, member_settings(spec.model, row))
        codes = np.asarray(jax.jit(model.encode)(jnp.asarray(data.test)))
        extra.append({"effective_l0": effective_l0(codes), **copying_tests(model, data.test)})
        test = member_summary["test"]
        results.append({**row, "regulariser": label, "mse": test["mse"], "mean_l0": test["mean_l0"],
                        "dead_fraction": test["dead_fraction"], **extra[-1]})
        filters.append(first_layer_filters(model, data.test))
    out = {"regulariser": label, "varied": varied, "code_size": spec.model.code_size,
           "input_dim": data.dim, "active_threshold": ACTIVE_THRESHOLD, "members": results}
    (workdir / "sparse_codes.json").write_text(json.dumps(out, indent=1))
    titles = [_title(r, varied) for r in results]
    figures = {"filters": filter_panels(filters, data.image_shape, titles, workdir / "figures" / "filters.png"),
               "mse_vs_l0": mse_vs_l0({label: results}, workdir / "figures" / "mse_vs_l0.png")}
    return extra, figures, {k: v for k, v in out.items() if k != "members"}


def _title(result: dict, varied: list[str]) -> str:
    knobs = ", ".join(f"{v.split('.')[-1]}={result[v]:g}" for v in varied) or f"seed {result['seed']}"
    return f"{knobs}\nL0 {result['mean_l0']:.0f}, dead {100 * result['dead_fraction']:.0f}%"
