"""Autoencoder against PCA on the same data and metric (tasks `linear_pca` and `mnist_deep_autoencoder`).

Trains the configured autoencoder with `train_and_evaluate`, fits scikit-learn's PCA with
k = model.code_size on the same training split, and compares the test squared error summed over
pixels (Hinton & Salakhutdinov 2006, Fig. 2B). For a linear autoencoder (no hidden layer) it also
compares subspaces (Baldi & Hornik 1989): the principal angles between the decoder's column space
and the top-k principal subspace, and how far the decoder's basis is from the principal directions.
Writes pca_comparison.json beside summary.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from aejax.config import parse_run
from aejax.data import load_dataset
from aejax.run import train_and_evaluate


def principal_angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles (degrees, ascending) between the column spaces of `(D, k)` matrices."""
    qa, _ = np.linalg.qr(a)
    qb, _ = np.linalg.qr(b)
    cosines = np.clip(np.linalg.svd(qa.T @ qb, compute_uv=False), -1, 1)
    return np.degrees(np.arccos(cosines))  # singular values descend, so angles ascend


def pca_test_sse(train: np.ndarray, test: np.ndarray, k: int):
    from sklearn.decomposition import PCA

    pca = PCA(n_components=k, svd_solver="full").fit(train)
    recon = pca.inverse_transform(pca.transform(test))
    return float(np.mean(np.sum((recon - test) ** 2, axis=1))), pca


def run(config: dict, workdir: Path) -> dict:
    workdir = Path(workdir)
    spec = parse_run(config)
    summary, params = train_and_evaluate({**config, "task": "train"}, workdir, return_params=True)
    data = load_dataset(spec.data)
    k = spec.model.code_size
    pca_sse, pca = pca_test_sse(data.train, data.test, k)
    members = [{"member": m["member"], "seed": m["seed"], "ae_sse_per_image": m["test"]["sse_per_image"],
                "ratio_to_pca": m["test"]["sse_per_image"] / pca_sse} for m in summary["members"]]
    result = {"code_size": k, "pca_sse_per_image": pca_sse, "members": members}
    if not spec.model.hidden and spec.model.family == "autoencoder" and not spec.model.tied_weights:
        top_k = pca.components_.T                                  # (D, k) principal directions
        for row, member in zip(members, range(len(members))):
            decoder = np.asarray(params["decoder"]["layers"][0]["kernel"][member]).T  # (D, k)
            angles = principal_angles_deg(decoder, top_k)
            basis = decoder / np.linalg.norm(decoder, axis=0)
            # |cos| between each decoder column and its best-matching principal direction: 1 would
            # mean the decoder found the principal directions themselves, not just their span.
            row.update(largest_principal_angle_deg=float(angles[-1]),
                       mean_best_abs_cos_to_a_principal_direction=float(np.abs(basis.T @ top_k).max(axis=1).mean()))
    (workdir / "pca_comparison.json").write_text(json.dumps(result, indent=1))
    return {**summary, "pca_comparison": result}
