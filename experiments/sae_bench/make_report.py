"""The tables and figures of experiments/sae_bench/README.md from one `experiment=sae_bench` multirun.

    uv run --locked python experiments/sae_bench/make_report.py /path/to/multirun/sae_bench/<date>_<time>-<id> [--out experiments/sae_bench]

Reads every member with `aejax.results.collect` (the rows `aejax-collect` prints), prints the per-member table
and each architecture's metrics at L0 = 25 (`aejax.studies.sae_bench.at_l0`) beside SynthSAEBench's published
ones, draws the frontier and MCC figures across architectures into --out and writes every number to
--out/results.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from aejax import sae_figures
from aejax.data.features import load_truth
from aejax.results import collect
from aejax.studies.sae_bench import PUBLISHED_AT_25, at_l0, study_table

PAPER_L0, PAPER_TRUE_L0 = 25, 34  # SynthSAEBench-16k: SAEs compared at L0 = 25; the data's mean true L0 is ~34
SHOWN = ("control", "l0", "test/explained_variance", "test/mcc", "test/f1", "test/uniqueness", "test/mmcs",
         "test/dead_latents", "test/dense_latents", "test/norm_ratio")


def markdown(frame: pd.DataFrame, digits: int = 3) -> str:
    head = "| | " + " | ".join(map(str, frame.columns)) + " |\n|---|" + "---|" * len(frame.columns) + "\n"
    cell = lambda v: f"{v:.{digits}f}" if isinstance(v, (float, np.floating)) else str(v)
    return head + "\n".join(f"| {i} | " + " | ".join(cell(v) for v in row) + " |"
                            for i, row in zip(frame.index, frame.itertuples(index=False)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("multirun")
    parser.add_argument("--out", default=str(Path(__file__).parent))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = study_table(collect([args.multirun]))
    members = table[["architecture", *SHOWN]].rename(columns=lambda c: c.removeprefix("test/"))
    print("## Every member\n")
    print(markdown(members.set_index("architecture")))
    at_25 = at_l0(table, 25.0)
    beside = at_25.copy()
    for metric in ("mcc", "f1", "uniqueness", "explained_variance"):
        beside[f"paper {metric}"] = [PUBLISHED_AT_25.get(a, {}).get(metric, float("nan")) for a in beside.index]
    columns = ["L0 range", "mcc", "paper mcc", "f1", "paper f1", "uniqueness", "paper uniqueness",
               "explained_variance", "paper explained_variance"]
    print("\n## At L0 = 25 (linear in log L0 between the two members around it)\n")
    print(markdown(beside[columns]))
    # The paper's L0 = 25 is 0.74 of its data's true L0 (34): the same fraction of this data's true L0.
    _, true_acts = load_truth(Path(table["run_dir"].iloc[0]) / "true_features.npz")
    true_l0 = float((true_acts != 0).sum(axis=1).mean())
    relative = PAPER_L0 / PAPER_TRUE_L0 * true_l0
    at_relative = at_l0(table, relative)
    for column in columns[2::2]:
        at_relative[column] = beside[column]
    print(f"\n## At L0 = {relative:.1f}: the paper's L0 relative to its true L0 ({PAPER_L0}/{PAPER_TRUE_L0} of this "
          f"data's {true_l0:.1f})\n")
    print(markdown(at_relative[columns]))
    points = [{"architecture": r["architecture"], "l0": r["l0"], "fvu": r["test/fvu"], "mcc": r["test/mcc"]}
              for _, r in table.iterrows()]
    sae_figures.frontier(points, out / "frontier.png")
    sae_figures.mcc_against_l0(points, out / "mcc_against_l0.png")
    results = {"members": members.to_dict(orient="records"), "at_l0_25": at_25.to_dict(orient="index"),
               "true_l0": true_l0, f"at_l0_{relative:.1f}": at_relative.drop(columns=columns[2::2]).to_dict(orient="index"),
               "published_at_l0_25": PUBLISHED_AT_25, "train_seconds": table.groupby("architecture")["train_seconds"]
               .first().to_dict() if "train_seconds" in table else None}
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
