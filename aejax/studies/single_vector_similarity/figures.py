"""Figure of the single-vector study: code similarity against input similarity, one panel a condition."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from aejax.figures import save
from aejax.studies.single_vector_similarity.pairs import CONDITIONS

TITLES = {"a_independent": "(a) independent init: cos(h1, h2)", "b_shared_init": "(b) shared init: cos(h1, h2)",
          "c_dataset_ae": "(c) one AE on the set", "d_cross_encoding": "(d) A1 on V2 vs A1 on V1",
          "cka_a_independent": "linear CKA, independent init", "cka_b_shared_init": "linear CKA, shared init"}


def code_vs_input(arrays: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 3, figsize=(12, 7), sharex=True)
    rng = np.random.default_rng(0)
    for ax, cond in zip(axes.flat, CONDITIONS):
        for part, colour in (("synthetic", "tab:blue"), ("mnist", "tab:orange")):
            if f"{part}/{cond}" not in arrays:
                continue
            x, y = arrays[f"{part}/input_cos"], arrays[f"{part}/{cond}"]
            jitter = rng.normal(0, 0.005, len(x)) if part == "synthetic" else 0
            ax.scatter(x + jitter, y, s=2, alpha=0.15, color=colour, label=f"{part} (d={'64' if part == 'synthetic' else '784'})")
            if part == "synthetic":
                levels = np.unique(x)
                ax.plot(levels, [np.nanmean(y[x == l]) for l in levels], "k.-", lw=1, label="mean per level")
        ax.set_title(TITLES[cond], fontsize=9)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_ylim(-1.05, 1.05)
    for ax in axes[1]:
        ax.set_xlabel("input cosine similarity cos(V1, V2)")
    axes[0, 0].legend(fontsize=7, markerscale=4)
    fig.tight_layout()
    return save(fig, path, dpi=110)
