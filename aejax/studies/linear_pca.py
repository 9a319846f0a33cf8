"""Autoencoder against PCA on the same data and metric (tasks `linear_pca` and `mnist_deep_autoencoder`).

Trains the configured autoencoder with `train_and_evaluate`, fits scikit-learn's PCA with
k = model.code_size on the same training split, and compares the test squared error summed over
pixels (Hinton & Salakhutdinov 2006, Fig. 2B). For a linear autoencoder (no hidden layer) it also
compares subspaces (Baldi & Hornik 1989): the principal angles between the decoder's column space
and the top-k principal subspace, and how far the decoder's basis is from the principal directions.
Report: experiments/linear_pca (and experiments/mnist_deep_autoencoder, for the deep autoencoder).

Results in summary.json: PCA's error under "study" (`code_size`, `pca_sse_per_image`), and each
member's `ratio_to_pca` (and, linear autoencoders, `largest_principal_angle_deg` and
`mean_best_abs_cos_to_a_principal_direction`) in its "test".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
    return train_and_evaluate({**config, "task": "train"}, workdir, analyse=analyse)


def analyse(spec, data, graph, params, summaries: list[dict], workdir: Path):
    """PCA's error, each member's against it, and a linear member's subspace (the hook of `train_and_evaluate`)."""
    k = spec.model.code_size
    pca_sse, pca = pca_test_sse(data.train, data.test, k)
    linear = (not spec.model.hidden and spec.model.family == "autoencoder"
              and not spec.model.family_settings.tied_weights)
    top_k = pca.components_.T                                          # (D, k) principal directions
    extra = []
    for member, summary in enumerate(summaries):
        if summary["status"] != "finished":
            extra.append({})
            continue
        row = {"ratio_to_pca": summary["test"]["sse_per_image"] / pca_sse}
        if linear:
            decoder = np.asarray(params["decoder"]["layers"][0]["kernel"][member]).T  # (D, k)
            angles = principal_angles_deg(decoder, top_k)
            basis = decoder / np.linalg.norm(decoder, axis=0)
            # |cos| between each decoder column and its best-matching principal direction: 1 would
            # mean the decoder found the principal directions themselves, not just their span.
            row.update(largest_principal_angle_deg=float(angles[-1]),
                       mean_best_abs_cos_to_a_principal_direction=float(np.abs(basis.T @ top_k).max(axis=1).mean()))
        extra.append(row)
    return extra, {}, {"code_size": k, "pca_sse_per_image": pca_sse}
