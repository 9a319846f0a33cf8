"""Figures of sparse autoencoders across members: the sparsity/reconstruction frontier, latent firing
densities, and ground-truth recovery (MCC) against sparsity. Each function writes one figure through
`aejax.figures.save` (so `trainer.figure_formats` holds) and returns the path of its PNG.

A member is a dict: "architecture", "l0", and "fvu" or "mcc" (from `aejax.sae_metrics`), with an
optional "label" (written beside its point).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from aejax.figures import plt, save  # its pyplot: the Agg backend and SVG text set there

PANEL_COLUMNS = 6  # small multiples per row in feature_density


def _against_l0(members: list[dict], key: str, ylabel: str, title: str, path: Path) -> Path:
    """One colour per architecture; each architecture's members joined in order of L0. The x axis is
    log L0: a member with L0 = 0 (every latent dead) is drawn as an open marker at the left edge,
    half a decade below the smallest positive L0, and named in the legend, never dropped."""
    if not members:
        raise ValueError(f"{title}: no members to plot")
    positive = [m["l0"] for m in members if m["l0"] > 0]
    floor = (min(positive) if positive else 1.0) / math.sqrt(10)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    architectures = list(dict.fromkeys(m["architecture"] for m in members))
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for i, arch in enumerate(architectures):
        colour = colours[i % len(colours)]
        group = sorted((m for m in members if m["architecture"] == arch), key=lambda m: m["l0"])
        alive = [m for m in group if m["l0"] > 0]
        if alive:
            ax.plot([m["l0"] for m in alive], [m[key] for m in alive], "o-", ms=4, lw=1, color=colour,
                    label=f"{arch} ({len(alive)})")
        dead = [m for m in group if m["l0"] <= 0]
        if dead:
            ax.plot([floor] * len(dead), [m[key] for m in dead], "o", ms=6, mfc="none", color=colour,
                    label=f"{arch}: L0 = 0 ({len(dead)}), drawn at {floor:.2g}")
        for m in group:
            if m.get("label"):
                ax.annotate(str(m["label"]), (max(m["l0"], floor), m[key]), fontsize=5,
                            xytext=(3, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("L0 (mean nonzero latents per input, log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both", lw=0.5)
    ax.legend(fontsize=6)
    fig.tight_layout()
    return save(fig, path)


def frontier(members: list[dict], path: Path) -> Path:
    """L0 (x, log scale) against FVU (y), one colour per architecture: lower left is better."""
    return _against_l0(members, "fvu", "FVU (fraction of variance unexplained)",
                       "sparsity against reconstruction", path)


def mcc_against_l0(members: list[dict], path: Path) -> Path:
    """L0 (x, log scale) against MCC (y, Hungarian-matched mean |cos| with the true features)."""
    return _against_l0(members, "mcc", "MCC (matched mean |cos| with true features)",
                       "ground-truth recovery against sparsity", path)


def feature_density(frequencies: dict[str, np.ndarray], path: Path, dense_fraction: float = 0.1) -> Path:
    """One small panel per member (any number; `PANEL_COLUMNS` a row, shared axes): a histogram of
    log10 firing frequency of its alive latents, a grey bar at the left for its dead latents (never
    fired; their count written above it), and a dotted line at `dense_fraction`."""
    if not frequencies:
        raise ValueError("feature_density: no members to plot")
    freqs = {label: np.asarray(f, np.float64).ravel() for label, f in frequencies.items()}
    positive = np.concatenate([f[f > 0] for f in freqs.values()] + [np.ones(1)])
    low = min(math.floor(np.log10(positive.min())), -1)
    edges = np.linspace(low, 0, 4 * -low + 1)
    width = edges[1] - edges[0]
    dead_at = low - 3 * width
    columns = min(PANEL_COLUMNS, len(freqs))
    rows = math.ceil(len(freqs) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.3 * columns + 0.4, 1.7 * rows + 0.6), squeeze=False,
                             sharex=True)
    for ax, (label, f) in zip(axes.flat, freqs.items()):
        dead = int((f <= 0).sum())
        ax.hist(np.log10(f[f > 0]), bins=edges, color="tab:blue")
        ax.bar(dead_at, dead, width=width * 1.5, color="0.5")
        ax.annotate(f"dead {dead}", (dead_at, dead), fontsize=5, ha="center", xytext=(0, 1),
                    textcoords="offset points")
        ax.axvline(np.log10(dense_fraction), ls=":", lw=0.8, color="tab:red")
        ax.set_title(f"{label} ({f.size} latents)", fontsize=6)
        ax.tick_params(labelsize=5, labelbottom=True)
    for ax in list(axes.flat)[len(freqs):]:
        ax.axis("off")
    ticks = list(range(low, 1))
    axes[-1, 0].set_xticks([dead_at] + ticks, ["dead"] + [f"1e{t}" for t in ticks], fontsize=5)
    fig.supxlabel("firing frequency (fraction of inputs, log10); dotted: dense", fontsize=7)
    fig.supylabel("latents", fontsize=7)
    fig.tight_layout()
    return save(fig, path)
