"""PNG figures of a run. Each function writes one file and returns its path."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never needs a display
import matplotlib.pyplot as plt
import numpy as np


def image_grid(rows: list[np.ndarray], image_shape, path: Path, titles: list[str] | None = None) -> Path:
    """Each entry of `rows` is `(n, D)` drawn as one row of images."""
    n = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(n * 0.9, len(rows) * 0.95), squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n):
            ax = axes[i, j]
            ax.axis("off")
            if j < len(row):
                ax.imshow(np.clip(row[j].reshape(image_shape[:2]), 0, 1), cmap="gray", vmin=0, vmax=1)
        if titles:
            axes[i, 0].set_title(titles[i], fontsize=7, loc="left")
    fig.tight_layout(pad=0.2)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def vectors_plot(rows: list[np.ndarray], path: Path, titles: list[str]) -> Path:
    """For non-image data: input and reconstruction as line plots."""
    fig, axes = plt.subplots(1, len(rows[0]), figsize=(2.2 * len(rows[0]), 2), squeeze=False)
    for j in range(len(rows[0])):
        for row, title in zip(rows, titles):
            axes[0, j].plot(row[j], label=title, lw=1)
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def training_curves(metrics_path: Path, path: Path, key: str = "train/loss") -> Path:
    by_member: dict[int, list] = {}
    for line in Path(metrics_path).read_text().splitlines():
        row = json.loads(line)
        if key in row:
            by_member.setdefault(row["member"], []).append((row["step"], row[key]))
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for member, points in sorted(by_member.items())[:32]:
        steps, values = zip(*points)
        ax.plot(steps, values, lw=1, alpha=0.8, label=f"member {member}" if len(by_member) <= 8 else None)
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.set_yscale("log")
    if 1 < len(by_member) <= 8:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def latent_scatter(codes: np.ndarray, labels, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(4.5, 4))
    sc = ax.scatter(codes[:, 0], codes[:, 1], c=labels, s=3, cmap="tab10")
    if labels is not None:
        fig.colorbar(sc, ax=ax)
    ax.set_xlabel("h1")
    ax.set_ylabel("h2")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
