"""Figures of a run. Each function writes one figure (a page: `page_path`) and returns the path of its PNG.

`save` writes every figure in each of `FORMATS` (`trainer.figure_formats`: png, pdf, svg);
PNG is what W&B shows, PDF and SVG are for papers.

Sizes are fixed per panel, never per population: a figure of members draws at most PER_PAGE of them, and
the caller writes one page per PER_PAGE members, so the text stays readable at any population size. A
`note` is a line under the title that says which members a page shows when it is not all of them.
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
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

FORMATS = ["png"]  # set once per run from trainer.figure_formats
PER_PAGE = 4            # members on one page of a per-member figure
PANELS_PER_PAGE = 9     # terms on one page of the training curves (3 x 3)
NOTE_SIZE = 8


def page_path(path: Path, numbers: list[int], first: bool) -> Path:
    """The file of one page of a per-member figure: the first keeps `path` (what README and W&B name),
    the next are `<name>_members_<a>-<b>.png`, by the first and last member number on the page."""
    path = Path(path)
    if first:
        return path
    span = f"{numbers[0]}-{numbers[-1]}" if len(numbers) > 1 else f"{numbers[0]}"
    return path.with_name(f"{path.stem}_members_{span}{path.suffix}")


def _note(fig, note: str) -> None:
    """`note` (which members this page shows, when not all) as the figure's top line."""
    if note:
        fig.suptitle(note, fontsize=NOTE_SIZE, wrap=True)


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


def image_grid(rows: list[np.ndarray], image_shape, path: Path, titles: list[str] | None = None,
               note: str = "") -> Path:
    """Each entry of `rows` is `(n, D)` drawn as one row of images, titled by `titles`."""
    n = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(max(n * 0.9, 4.0), len(rows) * 0.95 + 0.3 * bool(note)),
                             squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n):
            ax = axes[i, j]
            ax.axis("off")
            if j < len(row):
                pixels, style = _image(row[j], image_shape)
                ax.imshow(pixels, **style)
        if titles:
            axes[i, 0].set_title(titles[i], fontsize=7, loc="left")
    _note(fig, note)
    fig.tight_layout(pad=0.2)
    return save(fig, path)


def vectors_plot(rows: list[np.ndarray], path: Path, titles: list[str], note: str = "") -> Path:
    """For non-image data: the input and each reconstruction as line plots."""
    fig, axes = plt.subplots(1, len(rows[0]), figsize=(2.2 * len(rows[0]), 2 + 0.3 * bool(note)), squeeze=False)
    for j in range(len(rows[0])):
        for row, title in zip(rows, titles):
            axes[0, j].plot(row[j], label=title, lw=1)
    axes[0, 0].legend(fontsize=6)
    _note(fig, note)
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
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())


def curve_panels(series: dict, norms: tuple = ()) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """The panels of the training curves, each (title, [(key, line style, tag in legends)]): the loss, the
    MSE, every other `train/*` term in `series` in the order it was logged (its `val/*` twin dashed
    beside it), the `val/*` terms that have no twin, then the `norms` keys together in one panel."""
    def pair(name):
        return [(key, style, key.split("/")[0]) for key, style in ((f"train/{name}", "-"), (f"val/{name}", "--"))
                if key in series]
    names = ["loss", "mse"] + [k.split("/", 1)[1] for k in series if k.startswith("train/") and k not in norms]
    names += [k.split("/", 1)[1] for k in series if k.startswith("val/") and "train/" + k[4:] not in series]
    panels = [("mse per pixel" if name == "mse" else name, pair(name)) for name in dict.fromkeys(names)]
    panels.append(("norms", [(k, style, k.split("/", 1)[1]) for k, style in zip(norms, ("-", "--", ":", "-."))
                             if k in series]))
    return [(title, lines) for title, lines in panels if lines]


def training_curves(metrics_path: Path, path: Path, labels: dict[int, str] | None = None,
                    members: list[int] | None = None, note: str = "", norms: tuple = ()) -> list[Path]:
    """Every term metrics.jsonl logged, one panel each (`curve_panels`; `perf/*` left out: the speed is in
    the log and summary.json), PANELS_PER_PAGE to a page: `path`, then `<name>_page2.png`, ... One line
    per member of `members` (None: all), labelled by `labels` (the values that tell members apart)."""
    series = _read_metrics(metrics_path)
    panels = curve_panels(series, norms)
    members = sorted({m for by_member in series.values() for m in by_member}) if members is None else members
    chunks = [panels[i:i + PANELS_PER_PAGE] for i in range(0, len(panels), PANELS_PER_PAGE)]
    out = []
    for page, chunk in enumerate(chunks, 1):
        where = path if page == 1 else path.with_name(f"{path.stem}_page{page}{path.suffix}")
        pages = f"terms page {page} of {len(chunks)}" if len(chunks) > 1 else ""
        out.append(_curves_page(series, chunk, members, labels or {}, "; ".join(filter(None, [note, pages])),
                                where))
    return out


def _curves_page(series, panels, members, labels, note: str, path: Path) -> Path:
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, squeeze=False, figsize=(4.2 * columns, 3.0 * rows + 0.3 * bool(note)))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (title, lines) in zip(axes.flat, panels):
        values = []
        for key, style, tag in lines:
            for i, member in enumerate(members):
                points = series[key].get(member)
                if not points:
                    continue
                steps, ys = zip(*points)
                values += ys
                name = labels.get(member, f"member {member}")
                label = f"{name} ({tag})" if len(lines) > 1 else name
                ax.plot(steps, ys, style, lw=1, alpha=0.85, color=colours[i % len(colours)], label=label)
        _scale(ax, values)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        entries = len(members) * len(lines)
        if 1 < entries <= 8 or (len(lines) == 1 and entries <= 12):
            ax.legend(fontsize=6)
        elif len(lines) > 1:  # too many to name each: the line styles alone (the members: a one-line panel's legend)
            ax.legend([plt.Line2D([], [], color="grey", ls=style, lw=1) for _, style, _ in lines],
                      [tag for _, _, tag in lines], fontsize=6)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    _note(fig, note)
    fig.tight_layout()
    return save(fig, path)


def latent_scatter(codes: np.ndarray, labels, path: Path, note: str = "") -> Path:
    """`(N, 2)` codes coloured by their labels; `note` says whose codes (one member of a population)."""
    fig, ax = plt.subplots(figsize=(4.5, 4))
    if note:
        ax.set_title(note, fontsize=NOTE_SIZE)
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


def _panels(count: int, width: float, height: float, **kwargs):
    """A figure of `count` panels of a fixed size (inches), two to a row: its size depends on the panels
    on a page (at most PER_PAGE), never on the population."""
    columns = min(2, count)
    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows + 0.4), squeeze=False, **kwargs)
    for ax in list(axes.flat)[count:]:
        ax.axis("off")
    return fig, list(axes.flat)[:count]


def latent_traversal(grids: list[np.ndarray], dims: list[np.ndarray], kls: list[np.ndarray], values,
                     image_shape, path: Path, titles: list[str], note: str = "") -> Path:
    """One panel per member (two to a row), titled by `titles`. `grids[m]` is `(N, R, V, D)` from
    `aejax.trained.traverse`: row r sets latent `dims[m][r]` (labelled with its KL, `kls[m]`) to each
    of `values`, one block of columns per test image."""
    n, rows, cols, _ = grids[0].shape
    h, w = image_shape[:2]
    gap = max(4, w)  # one image's width between the test images' blocks
    cell = 0.3  # inches per image
    fig, axes = _panels(len(grids), n * cols * cell + 1.2, rows * cell + 1.0)
    for ax, grid, dim, kl, title in zip(axes, grids, dims, kls, titles):
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
                 f"to {values[0]:g}..{values[-1]:g} prior standard deviations about the prior mean; rows by KL, "
                 "largest first" + (f"\n{note}" if note else ""),
                 fontsize=NOTE_SIZE)
    fig.tight_layout()
    return save(fig, path)


def kl_per_latent(kls: list[np.ndarray], path: Path, titles: list[str], note: str = "") -> Path:
    """One bar chart per member (two to a row): each latent's KL(q(z_k|x) || p(z_k)) (the
    prior's marginal: N(0, 1) for a VAE), averaged over
    the test images, largest first and labelled by the latent's index."""
    k = len(kls[0])
    fig, axes = _panels(len(kls), min(8.0, max(3.0, 0.22 * k + 1)), 2.8, sharey=True)
    for ax, kl, title in zip(axes, kls, titles):
        order = np.argsort(-kl, kind="stable")
        ax.bar(range(k), kl[order], color="tab:blue")
        if k <= 32:
            ax.set_xticks(range(k), [f"z{d}" for d in order], fontsize=6, rotation=90)
        ax.set_xlabel("latent (largest KL first)", fontsize=7)
        ax.set_ylabel("KL per latent (nats)", fontsize=7)
        ax.set_title(title, fontsize=8)
    _note(fig, note)
    fig.tight_layout()
    return save(fig, path)
