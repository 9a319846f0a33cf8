"""The report of experiments/disentanglement/README.md from one `experiment=disentanglement` multirun.

    uv run --locked python experiments/disentanglement/make_report.py multirun/disentanglement/<date>_<time>-<4 hex> [--out experiments/disentanglement]

Reads every member with `aejax.results.collect` (the same rows `aejax-collect` prints), runs the
analyses of aejax.studies.disentanglement, prints the README's tables as Markdown, draws its figures
into --out and writes every number to --out/results.json. Where a job dir also holds a
`disentanglement.json` from `aejax-metrics --mode exact` (the study itself scores DCI in fast mode),
the fast and exact DCI scores of the same members are compared.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from aejax.results import collect, find_runs  # noqa: E402
from aejax.studies.disentanglement import (MORE_METRICS, OBJECTIVES, PAPER_METRICS, SELECTION, UNSUPERVISED,  # noqa: E402
                                           bad_beats_good, rank_correlations, selection_correlations,
                                           strength_trend, study_table, variance_explained)

LABEL = {o: name for o, (_, name) in OBJECTIVES.items()}
DCI = ("dci_disentanglement", "dci_completeness", "dci_informativeness")


def markdown(frame: pd.DataFrame, digits: int = 2) -> str:
    head = "| | " + " | ".join(map(str, frame.columns)) + " |\n|---|" + "---|" * len(frame.columns) + "\n"
    return head + "\n".join(f"| {i} | " + " | ".join(f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row)
                            + " |" for i, row in zip(frame.index, frame.itertuples(index=False)))


def violins(table: pd.DataFrame, metrics, path: Path) -> None:
    """(a) Each metric's distribution per objective (all strengths and seeds), and its mean per strength."""
    fig, axes = plt.subplots(2, len(metrics), figsize=(3.1 * len(metrics), 6.4), squeeze=False)
    objectives = list(dict.fromkeys(table["objective"]))
    for j, m in enumerate(metrics):
        data = [table.loc[table["objective"] == o, f"test/{m}"].dropna().to_numpy() for o in objectives]
        axes[0, j].violinplot([d if len(d) else [np.nan] for d in data], showmedians=True)
        axes[0, j].set_xticks(range(1, len(objectives) + 1), [LABEL[o] for o in objectives], rotation=60, fontsize=7)
        axes[0, j].set_title(m, fontsize=9)
        for o in objectives:
            rows = table[table["objective"] == o]
            strengths = sorted(rows["strength"].unique())
            means = rows.groupby("strength")[f"test/{m}"].mean().reindex(strengths)
            axes[1, j].plot(range(len(strengths)), means.to_numpy(), marker="o", ms=3, label=LABEL[o])
        axes[1, j].set_xlabel("strength (1st..6th value)", fontsize=7)
    axes[1, 0].legend(fontsize=6)
    axes[0, 0].set_ylabel("members of the objective")
    axes[1, 0].set_ylabel("mean over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def heatmap(corr: pd.DataFrame, path: Path) -> None:
    """(b) The metrics' Spearman rank correlation matrix."""
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    im = ax.imshow(corr.to_numpy(), vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(corr)), corr.columns, rotation=60, fontsize=7, ha="right")
    ax.set_yticks(range(len(corr)), corr.index, fontsize=7)
    for (i, j), v in np.ndenumerate(corr.to_numpy()):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6)
    fig.colorbar(im)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tc_figure(table: pd.DataFrame, path: Path) -> None:
    """(d) Total correlation of the mean and of the sampled representation against strength."""
    groups = list(table.groupby("objective", sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(3 * len(groups), 2.8), squeeze=False)
    axes = axes[0]
    for ax, (o, rows) in zip(axes, groups):
        for column, style in (("test/gaussian_tc_mean", "o-"), ("test/gaussian_tc_sampled", "s--")):
            means = rows.groupby("strength")[column].mean()
            ax.plot(means.index, means.to_numpy(), style, ms=3, label=column[5:])
        ax.set_xscale("log")
        ax.set_title(LABEL[o], fontsize=9)
        ax.set_xlabel(OBJECTIVES[o][0].split(".")[1], fontsize=8)
    axes[0].legend(fontsize=7)
    axes[0].set_ylabel("Gaussian TC (nats)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def exact_agreement(runs) -> dict | None:
    """Fast (the study's summary.json) against exact (disentanglement.json from aejax-metrics --mode exact) DCI,
    where both used the same evaluation seed and sizes (so only the trees differ)."""
    fast, exact = {m: [] for m in DCI}, {m: [] for m in DCI}
    differ = set()  # metrics other than DCI whose two computations differ (they should not: same seed, sizes)
    for run in runs:
        record_path, summary_path = run / "disentanglement.json", run / "summary.json"
        if not record_path.exists() or not summary_path.exists():
            continue
        record, summary = json.loads(record_path.read_text()), json.loads(summary_path.read_text())
        later, trained = record.get("provenance") or {}, summary.get("metrics_provenance") or {}
        same = all(later.get(k) == trained.get(k) for k in ("metrics_seed", "metrics_sizes"))
        if not same or later.get("metrics_mode") != "exact" or trained.get("metrics_mode") != "fast":
            continue
        exact_of = {m["member"]: m["test"] for m in record["members"]}
        for member in summary["members"]:
            theirs = exact_of.get(member["member"]) or {}
            differ |= {k for k, v in theirs.items() if k not in DCI and member["test"].get(k) != v}
            for m in DCI:
                if member["test"].get(m) is not None and theirs.get(m) is not None:
                    fast[m].append(member["test"][m])
                    exact[m].append(theirs[m])
    if not fast[DCI[0]]:
        return None
    print(f"Metrics other than DCI that differ between the study's scoring and aejax-metrics: {sorted(differ) or 'none'}\n")
    return {m: {"members": len(fast[m]),
                "spearman": float(pd.Series(fast[m]).corr(pd.Series(exact[m]), method="spearman")),
                "largest_difference": float(np.max(np.abs(np.subtract(fast[m], exact[m])))),
                "mean_fast": float(np.mean(fast[m])), "mean_exact": float(np.mean(exact[m]))} for m in DCI}


def costs(runs, table: pd.DataFrame) -> list[dict]:
    """Each job's objective, members, steps, and training, compilation and metric seconds (summary.json)."""
    objective_of = dict(zip(table["run_dir"], table["objective"]))
    out = []
    for run in runs:
        if (run / "summary.json").exists():
            s = json.loads((run / "summary.json").read_text())
            out.append({"job": run.name, "objective": objective_of.get(str(run)), "members": s["num_members"],
                        "steps": s.get("steps"), "train_seconds": s["train_seconds"],
                        "compile_seconds": s.get("compile_seconds"), "metrics_seconds": s.get("metrics_seconds")})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    runs = find_runs([args.study_dir])  # in job order
    try:
        table = study_table(collect([args.study_dir]))
    except ValueError as err:
        raise SystemExit(f"make_report.py: error: {err} (under {args.study_dir})") from None
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"study_dir": str(args.study_dir), "members": len(table),
                     "objectives": {o: int(n) for o, n in table["objective"].value_counts().items()}}
    metrics = [m for m in PAPER_METRICS if f"test/{m}" in table]
    more = [m for m in MORE_METRICS if f"test/{m}" in table]
    unsupervised = [m for m in UNSUPERVISED if f"test/{m}" in table]
    if not metrics:
        raise SystemExit(f"make_report.py: error: no disentanglement metric in the runs under {args.study_dir}")

    print(f"## Members\n\n{len(table)} finished members: " +
          ", ".join(f"{LABEL[o]} {n}" for o, n in results["objectives"].items()) + "\n")
    by_setting = table.groupby(["objective", "strength"], sort=False)[[f"test/{m}" for m in metrics + more]]
    summary = by_setting.mean().rename(columns=lambda c: c[5:])
    summary.index = [f"{LABEL[o]} {s:g}" for o, s in summary.index]
    print("### Mean over seeds per objective and strength\n\n" + markdown(summary) + "\n")
    results["means"] = json.loads(summary.to_json())

    violins(table, metrics, args.out / "metrics_by_objective.png")
    corr = rank_correlations(table, metrics + more + unsupervised)
    heatmap(corr, args.out / "metric_rank_correlation.png")
    print("### (b) Spearman rank correlation between the metrics\n\n" + markdown(corr.loc[metrics, metrics]) + "\n")
    results["rank_correlation"] = json.loads(corr.to_json())

    shares = pd.DataFrame({m: variance_explained(table, m) for m in metrics}).T
    print("### (c) Share of each metric's variance explained\n\n" + markdown(shares) + "\n")
    results["variance_explained"] = json.loads(shares.to_json())

    tc_figure(table, args.out / "tc_mean_vs_sampled.png")
    trend = pd.DataFrame({c[5:]: strength_trend(table, c) for c in ("test/gaussian_tc_mean", "test/gaussian_tc_sampled",
                                                                    "test/mutual_info_score") if c in table})
    trend.index = [LABEL[o] for o in trend.index]
    print("### (d) Spearman correlation of total correlation with regularisation strength\n\n" + markdown(trend) + "\n")
    results["tc_trend"] = json.loads(trend.to_json())

    seeds = sorted(table["seed"].unique())
    beats = pd.DataFrame({m: {"all seeds (choice and comparison share them)": bad_beats_good(table, m),
                              f"chosen on seed {seeds[0]}, compared on the others":
                                  bad_beats_good(table, m, seeds[:1], seeds[1:])} for m in metrics}).T
    print("### (e) P(a random seed of the worst strength beats one of the best)\n\n" + markdown(beats) + "\n")
    results["bad_beats_good"] = json.loads(beats.to_json())

    for within in (False, True):
        sel = selection_correlations(table, metrics, within_objective=within)
        what = "median over objectives of the within-objective" if within else "all members'"
        print(f"### (f) Unsupervised scores against the metrics: {what} Spearman correlation\n\n"
              f"{markdown(sel)}\n")
        results["selection_within" if within else "selection_all"] = json.loads(sel.to_json())

    agreement = exact_agreement(runs)
    if agreement:
        frame = pd.DataFrame(agreement).T.astype(object)
        frame["members"] = frame["members"].astype(int)
        print("### Fast against exact DCI on the trained members\n\n" + markdown(frame, 3) + "\n")
    results["fast_vs_exact_dci"] = agreement
    results["costs"] = costs(runs, table)
    print("### Cost per job\n\n| job | objective | members | steps | train s | compile s | metrics s |\n"
          "|---|---|---|---|---|---|---|")
    for c in results["costs"]:
        print(f"| {c['job']} | {LABEL.get(c['objective'], '?')} | {c['members']} | {c['steps']} | {c['train_seconds']:.0f} | "
              f"{c['compile_seconds'] or 0:.0f} | {c['metrics_seconds'] or 0:.0f} |")
    (args.out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
