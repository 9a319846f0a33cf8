"""Figures of a run. Each function writes one figure and returns the path of its PNG.

`save` writes every figure in each of `FORMATS` (`trainer.figure_formats`: png, pdf, svg);
PNG is what W&B shows, PDF and SVG are for papers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never needs a display
matplotlib.rcParams["svg.fonttype"] = "none"  # SVG text stays text: editable in a paper's figure
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

FORMATS = ["png"]  # set once per run from trainer.figure_formats
TERMS = ("train/kl", "train/nll", "train/cross_entropy", "train/l1", "train/kl_sparsity", "train/contractive")
MAX_LINES = 32


def save(fig, path: Path, dpi: int = 100) -> Path:
    """Write `fig` as `path` in every format of FORMATS; return the PNG's path (or the first)."""
    path = Path(path)
    written = [path.with_suffix(f".{fmt}") for fmt in FORMATS]
    for out in written:
        fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return next((p for p in written if p.suffix == ".png"), written[0])


def _image(x: np.ndarray, image_shape) -> tuple[np.ndarray, dict]:
    """One flat image, shaped for imshow: grey for one channel, colour for three."""
    channels = image_shape[2] if len(image_shape) > 2 else 1
    if channels == 1:
        return np.clip(x.reshape(image_shape[:2]), 0, 1), {"cmap": "gray", "vmin": 0, "vmax": 1}
    return np.clip(x.reshape(image_shape), 0, 1), {}


def image_grid(rows: list[np.ndarray], image_shape, path: Path, titles: list[str] | None = None) -> Path:
    """Each entry of `rows` is `(n, D)` drawn as one row of images, titled by `titles`."""
    n = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(n * 0.9, len(rows) * 0.95), squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n):
            ax = axes[i, j]
            ax.axis("off")
            if j < len(row):
                pixels, style = _image(row[j], image_shape)
                ax.imshow(pixels, **style)
        if titles:
            axes[i, 0].set_title(titles[i], fontsize=7, loc="left")
    fig.tight_layout(pad=0.2)
    return save(fig, path)


def vectors_plot(rows: list[np.ndarray], path: Path, titles: list[str]) -> Path:
    """For non-image data: the input and each reconstruction as line plots."""
    fig, axes = plt.subplots(1, len(rows[0]), figsize=(2.2 * len(rows[0]), 2), squeeze=False)
    for j in range(len(rows[0])):
        for row, title in zip(rows, titles):
            axes[0, j].plot(row[j], label=title, lw=1)
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    return save(fig, path)


def _read_metrics(metrics_path: Path) -> dict[str, dict[int, list]]:
    """{key: {member: [(step, value), ...]}} for every train/val key in metrics.jsonl."""
    series: dict[str, dict[int, list]] = {}
    for line in Path(metrics_path).read_text().splitlines():
        row = json.loads(line)
        for key, value in row.items():
            if key.startswith(("train/", "val/")) and value is not None:
                series.setdefault(key, {}).setdefault(row["member"], []).append((row["step"], value))
    return series


def _scale(ax, values: list[float]) -> None:
    """Log scale when the values span more than 30x, with ticks at 1, 2 and 5 of every decade."""
    positive = [v for v in values if v > 0]
    if len(positive) == len(values) and positive and max(positive) / min(positive) > 30:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())


def training_curves(metrics_path: Path, path: Path, labels: dict[int, str] | None = None) -> Path:
    """Loss; train against validation MSE; and each of the variant's terms (KL, sparsity,
    contractive) that was logged. One line per member (at most 32), labelled by `labels`
    (the values that tell members apart)."""
    series = _read_metrics(metrics_path)
    panels = [("loss", [("train/loss", "-")]), ("mse per pixel", [("train/mse", "-"), ("val/mse", "--")])]
    panels += [(key.split("/")[1], [(key, "-")]) for key in TERMS if key in series]
    panels = [(title, [(k, s) for k, s in lines if k in series]) for title, lines in panels]
    panels = [p for p in panels if p[1]]
    columns = min(3, len(panels))
    fig, axes = plt.subplots(math.ceil(len(panels) / columns), columns, squeeze=False,
                             figsize=(4.2 * columns, 3.0 * math.ceil(len(panels) / columns)))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    members = sorted({m for by_member in series.values() for m in by_member})[:MAX_LINES]
    for ax, (title, lines) in zip(axes.flat, panels):
        values = []
        for key, style in lines:
            for i, member in enumerate(members):
                points = series[key].get(member)
                if not points:
                    continue
                steps, ys = zip(*points)
                values += ys
                name = (labels or {}).get(member, f"member {member}")
                label = f"{name} ({key.split('/')[0]})" if len(lines) > 1 else name
                ax.plot(steps, ys, style, lw=1, alpha=0.85, color=colours[i % len(colours)], label=label)
        _scale(ax, values)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        if len(members) <= 12 and (len(members) > 1 or len(lines) > 1):
            ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    return save(fig, path)


def latent_scatter(codes: np.ndarray, labels, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(4.5, 4))
    sc = ax.scatter(codes[:, 0], codes[:, 1], c=labels, s=3, cmap="tab10")
    if labels is not None:
        fig.colorbar(sc, ax=ax)
    ax.set_xlabel("h1")
    ax.set_ylabel("h2")
    fig.tight_layout()
    return save(fig, path)


TRAVERSAL_IMAGES = 3  # test images per member in the traversal figure
TRAVERSAL_ROWS = 20   # latents shown per member, largest KL first


def _mosaic(grid: np.ndarray, image_shape, gap: int) -> np.ndarray:
    """`(N, R, V, D)` traversals as one picture: a row per latent, each image's V columns side by side,
    a 1-pixel white line between cells and `gap` white pixels between images."""
    n, rows, cols, _ = grid.shape
    h, w = image_shape[:2]
    c = image_shape[2] if len(image_shape) > 2 else 1
    cells = np.clip(grid.reshape(n, rows, cols, h, w, c), 0, 1)
    block = cols * (w + 1) - 1
    out = np.ones((rows * (h + 1) - 1, n * block + (n - 1) * gap, c))
    for i in range(n):
        for r in range(rows):
            for j in range(cols):
                x0, y0 = i * (block + gap) + j * (w + 1), r * (h + 1)
                out[y0:y0 + h, x0:x0 + w] = cells[i, r, j]
    return out[..., 0] if c == 1 else out


def latent_traversal(grids: list[np.ndarray], dims: list[np.ndarray], kls: list[np.ndarray], values,
                     image_shape, path: Path, titles: list[str]) -> Path:
    """One panel per member, side by side, titled by `titles`. `grids[m]` is `(N, R, V, D)` from
    `aejax.trained.traverse`: row r sets latent `dims[m][r]` (labelled with its KL, `kls[m]`) to each
    of `values`, one block of columns per test image."""
    n, rows, cols, _ = grids[0].shape
    h, w = image_shape[:2]
    gap = max(4, w)  # one image's width between the test images' blocks
    cell = 0.3  # inches per image
    width = n * cols * cell + 1.2
    fig, axes = plt.subplots(1, len(grids), figsize=(width * len(grids), rows * cell + 1.2), squeeze=False)
    for ax, grid, dim, kl, title in zip(axes[0], grids, dims, kls, titles):
        pixels = _mosaic(grid, image_shape, gap)
        ax.imshow(pixels, **({"cmap": "gray", "vmin": 0, "vmax": 1} if pixels.ndim == 2 else {}))
        ax.set_yticks([r * (h + 1) + h / 2 for r in range(len(dim))],
                      [f"z{d} KL {kl[d]:.2f}" for d in dim], fontsize=6)
        block = cols * (w + 1) - 1
        ax.set_xticks([i * (block + gap) + j * (w + 1) + w / 2 for i in range(n) for j in range(cols)],
                      [f"{v:g}" for _ in range(n) for v in values], fontsize=5)
        ax.tick_params(length=0)
        for side in ax.spines.values():
            side.set_visible(False)
        ax.set_title(title, fontsize=8)
    fig.suptitle(f"latent traversals: each row sets one latent of the posterior mean of {n} test images "
                 f"to {values[0]:g}..{values[-1]:g}; rows by KL, largest first", fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def kl_per_latent(kls: list[np.ndarray], path: Path, titles: list[str]) -> Path:
    """One bar chart per member, side by side: each latent's KL(q(z_k|x) || N(0, 1)), averaged over
    the test images, largest first and labelled by the latent's index."""
    k = len(kls[0])
    fig, axes = plt.subplots(1, len(kls), figsize=(max(3.0, 0.22 * k + 1) * len(kls), 2.8), squeeze=False,
                             sharey=True)
    for ax, kl, title in zip(axes[0], kls, titles):
        order = np.argsort(-kl, kind="stable")
        ax.bar(range(k), kl[order], color="tab:blue")
        if k <= 32:
            ax.set_xticks(range(k), [f"z{d}" for d in order], fontsize=6, rotation=90)
        ax.set_xlabel("latent (largest KL first)", fontsize=7)
        ax.set_title(title, fontsize=8)
    axes[0, 0].set_ylabel("KL per latent (nats)", fontsize=7)
    fig.tight_layout()
    return save(fig, path)
