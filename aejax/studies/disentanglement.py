"""The analyses of Locatello et al. 2019 over one table of study members (experiments/disentanglement).

A member is a row of `aejax.results.collect` over the study's run dirs: its objective
(`model.objective`), the value of that objective's own regulariser weight (`strength`, from the
column OBJECTIVES names), its seed, and its `test/<metric>` scores. Every function here takes that
table (`study_table`) and returns plain numbers or a DataFrame, so the report script only prints
and draws, and the tests check each analysis on tables with known answers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aejax.families import family
from aejax.results import run_setting

# The study's objectives in disentanglement_lib's method order -> (the column of its regulariser weight, its
# name), both from the objective's declaration (aejax/families).
STUDY_OBJECTIVES = ("beta_vae", "factor_vae", "dip_vae_i", "dip_vae_ii", "beta_tc_vae", "annealed_vae")
OBJECTIVES = {name: (f"model.{family('vae').objectives[name].strength}", family("vae").objectives[name].label)
              for name in STUDY_OBJECTIVES}
# The paper's six scores (its figures), then the others aejax computes.
PAPER_METRICS = ("beta_vae_score", "factor_vae_score", "mig", "dci_disentanglement", "modularity", "sap")
MORE_METRICS = ("dci_completeness", "dci_informativeness", "explicitness")
UNSUPERVISED = ("gaussian_tc_mean", "gaussian_tc_sampled", "gaussian_wasserstein_corr", "mutual_info_score")
# Unsupervised model selection: scores a practitioner has without the factors, each signed so that
# larger is what one would pick: a higher ELBO, a lower reconstruction error (summary.json's test split
# has the MSE, not the Bernoulli nll alone), a lower estimated total correlation.
SELECTION = {"ELBO": ("test/neg_elbo", -1.0), "reconstruction (-MSE)": ("test/mse", -1.0),
             "estimated TC (-sampled TC)": ("test/gaussian_tc_sampled", -1.0)}


def study_table(members: pd.DataFrame) -> pd.DataFrame:
    """The finished members with `objective`, `strength` (their objective's weight) and `seed` columns."""
    rows = members[members["status"] == "finished"].copy()
    if rows.empty:
        raise ValueError("no finished member; expected the run dirs of experiment=disentanglement")
    if "model.objective" not in rows:  # the same in every row (one job): read it where the run wrote it
        rows["model.objective"] = [run_setting(r, "model.objective") for r in rows["run_dir"]]
    unknown = sorted(set(rows["model.objective"]) - set(OBJECTIVES))
    if unknown:
        raise ValueError(f"model.objective={unknown[0]} is not a study objective; expected one of {list(OBJECTIVES)}")
    for column in sorted({OBJECTIVES[o][0] for o in rows["model.objective"]} - set(rows)):
        rows[column] = [run_setting(r, column) for r in rows["run_dir"]]
    rows["objective"] = rows["model.objective"]
    rows["strength"] = [float(r[OBJECTIVES[r["objective"]][0]]) for _, r in rows.iterrows()]
    order = {o: i for i, o in enumerate(OBJECTIVES)}
    return rows.sort_values(["objective", "strength", "seed"], key=lambda c: c.map(order) if c.name == "objective"
                            else c).reset_index(drop=True)


def rank_correlations(table: pd.DataFrame, metrics) -> pd.DataFrame:
    """Spearman rank correlation between the metrics over all members (the paper's Figure 2 layout)."""
    return table[[f"test/{m}" for m in metrics]].rename(columns=lambda c: c[5:]).corr(method="spearman")


def variance_explained(table: pd.DataFrame, metric: str) -> dict:
    """Shares of a metric's variance over the members: between objectives, between regulariser
    strengths within an objective, and what is left (seeds). Nested sums of squares, so the three
    add up to 1; the paper reports objective ~37%, objective and strength ~59%."""
    y = table[f"test/{metric}"].astype(float)
    ok = y.notna() & table["strength"].notna()
    t, y = table[ok], y[ok]
    total = float(((y - y.mean()) ** 2).sum())
    if total == 0:
        return {"objective": float("nan"), "strength": float("nan"), "seed": float("nan")}
    by_objective = y.groupby(t["objective"]).transform("mean")
    by_setting = y.groupby([t["objective"], t["strength"]]).transform("mean")
    objective = float(((by_objective - y.mean()) ** 2).sum()) / total
    strength = float(((by_setting - by_objective) ** 2).sum()) / total
    return {"objective": objective, "strength": strength, "seed": 1.0 - objective - strength}


def bad_beats_good(table: pd.DataFrame, metric: str, choose_seeds=None, compare_seeds=None) -> float:
    """How often a random seed of an objective's worst strength beats (ties: half) a random seed of its
    best one, averaged over objectives. Best and worst are the strengths with the highest and lowest
    mean score over `choose_seeds`; the pairs compared are from `compare_seeds` (both default to all
    seeds: then the choice and the comparison share their seeds, which biases the answer down)."""
    chances = []
    for _, rows in table.groupby("objective"):
        rows = rows[rows[f"test/{metric}"].notna()]
        chosen = rows if choose_seeds is None else rows[rows["seed"].isin(choose_seeds)]
        means = chosen.groupby("strength")[f"test/{metric}"].mean()
        if len(means) < 2 or means.max() == means.min():
            continue
        compared = rows if compare_seeds is None else rows[rows["seed"].isin(compare_seeds)]
        good = compared.loc[compared["strength"] == means.idxmax(), f"test/{metric}"].to_numpy(float)
        bad = compared.loc[compared["strength"] == means.idxmin(), f"test/{metric}"].to_numpy(float)
        if len(good) and len(bad):
            wins = (bad[:, None] > good[None, :]) + 0.5 * (bad[:, None] == good[None, :])
            chances.append(float(wins.mean()))
    return float(np.mean(chances)) if chances else float("nan")


def strength_trend(table: pd.DataFrame, column: str) -> dict:
    """Per objective: the Spearman correlation of a score with the regulariser strength."""
    return {o: float(rows["strength"].corr(rows[column], method="spearman"))
            for o, rows in table.groupby("objective", sort=False) if rows[column].notna().sum() > 2}


def selection_correlations(table: pd.DataFrame, metrics, within_objective: bool = False) -> pd.DataFrame:
    """Spearman correlation of each unsupervised score (SELECTION, signed so larger is better) with each
    metric: over all members, or the median over objectives of the correlation within each one."""
    out = {}
    for name, (column, sign) in SELECTION.items():
        if column not in table:
            continue
        score = sign * table[column].astype(float)
        row = {}
        for m in metrics:
            y = table[f"test/{m}"].astype(float)
            if within_objective:
                row[m] = float(np.nanmedian([score[i].corr(y[i], method="spearman")
                                             for i in table.groupby("objective").groups.values()]))
            else:
                row[m] = float(score.corr(y, method="spearman"))
        out[name] = row
    return pd.DataFrame(out).T
