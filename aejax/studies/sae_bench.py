"""The SAE benchmark (experiments/sae_bench): every architecture as one population sweeping its sparsity
control, on synthetic activations with known features (`data=synthetic_features`), compared at a common L0.

A member is a row of `aejax.results.collect` over the study's run dirs: its architecture (`model.sae`),
its sparsity control (`model.k` or `model.sparsity_coefficient`), its seed and its `test/<metric>` scores
(`aejax.families.sae.report`). SynthSAEBench reports each architecture at L0 = 25; a population hits a
given L0 only approximately, so `at_l0` interpolates each metric linearly in log L0 between the two
members that bracket it (and says so: an L0 outside a population's range gives NaN, never an
extrapolation).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aejax.families.sae import ARCHITECTURES, WITH_K
from aejax.results import run_setting

METRICS = ("mcc", "f1", "uniqueness", "explained_variance", "mmcs", "dead_latents", "dense_latents", "norm_ratio")
# SynthSAEBench (arXiv 2602.14687), its 16k model at L0 = 25: F1, MCC, uniqueness, explained variance.
PUBLISHED_AT_25 = {
    "batchtopk": {"f1": 0.7316, "mcc": 0.7574, "uniqueness": 0.9837, "explained_variance": 0.7923},
    "matryoshka": {"f1": 0.8793, "mcc": 0.7927, "uniqueness": 0.9987, "explained_variance": 0.7792},
    "relu": {"f1": 0.5562, "mcc": 0.6039, "uniqueness": 0.8976, "explained_variance": 0.7654},
    "jumprelu": {"f1": 0.7317, "mcc": 0.7527, "uniqueness": 0.9885, "explained_variance": 0.7951},
}


def study_table(members: pd.DataFrame) -> pd.DataFrame:
    """The finished members with `architecture`, `control` (k or the coefficient) and `l0` columns, in
    ARCHITECTURES order then by L0."""
    rows = members[members["status"] == "finished"].copy()
    if rows.empty:
        raise ValueError("no finished member; expected the run dirs of experiment=sae_bench")
    if "model.sae" not in rows:  # one architecture in every row: read it where the run wrote it
        rows["model.sae"] = [run_setting(r, "model.sae") for r in rows["run_dir"]]
    for column in ("model.k", "model.sparsity_coefficient"):
        if column not in rows:
            rows[column] = [run_setting(r, column) for r in rows["run_dir"]]
    rows["architecture"] = rows["model.sae"]
    rows["control"] = [float(r["model.k"] if r["architecture"] in WITH_K else r["model.sparsity_coefficient"])
                       for _, r in rows.iterrows()]
    rows["l0"] = rows["test/l0"].astype(float)
    order = {a: i for i, a in enumerate(ARCHITECTURES)}
    return rows.sort_values(["architecture", "l0"], key=lambda c: c.map(order) if c.name == "architecture" else c
                            ).reset_index(drop=True)


def at_l0(table: pd.DataFrame, l0: float, metrics=METRICS) -> pd.DataFrame:
    """Each architecture's metrics at `l0`: linear in log L0 between the nearest members below and above
    (averaged over seeds first); NaN where no member lies on one side."""
    out = {}
    for arch, rows in table.groupby("architecture", sort=False):
        means = rows.groupby("control")[["l0", *[f"test/{m}" for m in metrics if f"test/{m}" in rows]]].mean()
        means = means.sort_values("l0")
        x = np.log(means["l0"].to_numpy(float))
        row = {"L0 range": f"{means['l0'].min():.1f}-{means['l0'].max():.1f}"}
        for m in metrics:
            column = f"test/{m}"
            if column not in means:
                continue
            ok = (means["l0"].min() <= l0 <= means["l0"].max())
            row[m] = float(np.interp(np.log(l0), x, means[column].to_numpy(float))) if ok else float("nan")
        out[arch] = row
    return pd.DataFrame(out).T
