"""The README's dSprites figure: aejax's own renderings of the dSprites grid, one factor varied per row.

    uv run python scripts/dsprites_examples.py [OUT.png]

Each row starts from one sprite (heart, scale 1.0, orientation 0, posX 12, posY 16) and varies one
factor over evenly spaced values; each image is titled with that factor's value (and its index). These
are the images `data=dsprites` renders when the original file is absent, not the original pixels.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from aejax.data.dsprites import DSPRITES, SHAPES, render, sprite_values  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "experiments" / "disentanglement" / "dsprites_examples.png"
BASE = np.array([2, 5, 0, 12, 16])
COLUMNS = 6


def value_label(name: str, factors: np.ndarray) -> str:
    shape, scale, angle, x, y = (v[0] for v in sprite_values(DSPRITES, factors[None]))
    i = factors[DSPRITES.factor_names.index(name)]
    return {"shape": f"{SHAPES[shape]}", "scale": f"scale {scale:.1f}", "orientation": f"{angle:.2f} rad",
            "posX": f"x {x:.2f}", "posY": f"y {y:.2f}"}[name] + f" [{i}]"


def main(out: Path = OUT) -> None:
    rows = []
    for f, (name, size) in enumerate(zip(DSPRITES.factor_names, DSPRITES.factor_sizes)):
        values = np.unique(np.linspace(0, size - 1, min(COLUMNS, size)).round().astype(int))
        rows.append([np.concatenate([BASE[:f], [v], BASE[f + 1:]]) for v in values])
    fig, axes = plt.subplots(len(rows), COLUMNS, figsize=(1.6 * COLUMNS, 1.75 * len(rows)))
    for r, (row, name) in enumerate(zip(rows, DSPRITES.factor_names)):
        images = render(DSPRITES, np.stack(row)).reshape(len(row), 64, 64)
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([]), ax.set_yticks([])
            if c < len(row):
                ax.imshow(images[c], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                ax.set_title(value_label(name, row[c]), fontsize=8)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(name, fontsize=10)
    fig.suptitle("aejax's renderings of the dSprites grid (not the original pixels)", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
