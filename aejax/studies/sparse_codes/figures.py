"""Figures of the sparse-codes study: encoder filters per member, MSE against mean L0."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from aejax.figures import save


def mosaic(filters: np.ndarray, image_shape) -> np.ndarray:
    """Tile `(n, D)` filters into one square-ish image, each scaled to its own [min, max]."""
    h, w = image_shape[:2]
    side = math.ceil(math.sqrt(len(filters)))
    canvas = np.ones((side * (h + 1) + 1, side * (w + 1) + 1))
    for i, f in enumerate(filters):
        f = f.reshape(h, w)
        f = (f - f.min()) / max(float(f.max() - f.min()), 1e-12)
        r, c = divmod(i, side)
        canvas[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + c * (w + 1):1 + c * (w + 1) + w] = f
    return canvas


def filter_panels(filters: list[np.ndarray], image_shape, titles: list[str], path: Path) -> Path:
    """One panel per member: its first alive encoder filters."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(filters)
    cols = n if n <= 5 else 4
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.9 * rows + 0.3), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, f, title in zip(axes.ravel(), filters, titles):
        if len(f):
            ax.imshow(mosaic(f, image_shape), cmap="gray", interpolation="nearest")
        ax.set_title(title if len(f) else title + "\n(no alive unit)", fontsize=7)
    fig.tight_layout(pad=0.3)
    return save(fig, path, dpi=110)


def mse_vs_l0(populations: dict[str, list[dict]], path: Path) -> Path:
    """Test MSE against mean L0 (left) and effective L0 (right), one line per regulariser."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, key, xlabel in ((axes[0], "mean_l0", "mean L0 of the code (units with |h| > 1e-3)"),
                            (axes[1], "effective_l0", "effective L0: (sum |h|)^2 / sum h^2")):
        for label, results in populations.items():
            points = sorted((r[key], r["mse"]) for r in results)
            ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=label, ms=4)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("test reconstruction MSE")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return save(fig, path, dpi=110)
