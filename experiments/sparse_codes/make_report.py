"""Gather the jobs of one `experiment=sparse_codes` multirun into the report's table and figures.

    python experiments/sparse_codes/make_report.py multirun/sparse_codes/<date>_<time>-<4 hex> [--out experiments/sparse_codes]

Reads every `<job>/sparse_codes.json`, prints a markdown table (one row per member), draws the
combined MSE-against-L0 figure and copies each job's filter figure as `filters_<regulariser>.png`.
"""

import argparse
import json
import shutil
from pathlib import Path

import yaml

from aejax.config import parse_run
from aejax.data import load_dataset
from aejax.studies.sparse_codes import pca_reference
from aejax.studies.sparse_codes.figures import mse_vs_l0


def knob(member: dict, varied: list[str]) -> str:
    return ", ".join(f"{v.split('.')[-1]} {member[v]:g}" for v in varied) or f"seed {member['seed']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--pca", type=int, nargs="*", default=[50, 200, 500], help="PCA references (components)")
    args = parser.parse_args()
    jobs = sorted(args.sweep_dir.glob("*/sparse_codes.json"), key=lambda p: int(p.parent.name))
    if not jobs:
        raise SystemExit(f"make_report.py: error: no */sparse_codes.json under {args.sweep_dir}")
    populations, timings = {}, []
    print("| regulariser | setting | test MSE | mean L0 | effective L0 | dead units | permuted MSE "
          "| permuted / real MSE | Jacobian diagonal share |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for path in jobs:
        result = json.loads(path.read_text())
        label = result["regulariser"]
        populations[label] = result["members"]
        for m in result["members"]:
            print(f"| {label} | {knob(m, result['varied'])} | {m['mse']:.5f} | {m['mean_l0']:.1f} | {m['effective_l0']:.1f} | "
                  f"{m['dead_fraction']:.1%} | {m['permuted_mse']:.4f} | {m['permuted_mse_ratio']:.2f} | {m['jacobian_diagonal_share']:.3f} |")
        name = label.split(" ")[0]
        shutil.copyfile(path.parent / "figures" / "filters.png", args.out / f"filters_{name}.png")
        summary = json.loads((path.parent / "summary.json").read_text())
        timings.append(f"{label}: {len(result['members'])} members, {summary['train_seconds']:.0f} s of training "
                       f"({summary['steps']} steps)")
    print("\n" + "\n".join(timings))
    # References for the copying tests: the identity has ratio 1 and share 1; PCA keeps k directions.
    config = yaml.safe_load((jobs[0].parent / "config.yaml").read_text())
    data = load_dataset(parse_run(config).data)
    print("\n| PCA components | test MSE | permuted MSE | permuted / real MSE | Jacobian diagonal share |\n"
          "| --- | --- | --- | --- | --- |")
    references = []
    for k in args.pca:
        r = pca_reference(data.train, data.test, k)
        references.append(r)
        print(f"| {k} | {r['mse']:.5f} | {r['permuted_mse']:.4f} | {r['permuted_mse_ratio']:.2f} | {r['jacobian_diagonal_share']:.3f} |")
    blank = float((data.test.astype("float64") ** 2).mean())
    print(f"\nAn all-black output scores MSE {blank:.5f} on the test images, shuffled or not.")
    populations["pca_reference"] = references
    populations["blank_output_mse"] = blank
    mse_vs_l0({k: v for k, v in populations.items() if k not in ("pca_reference", "blank_output_mse")},
              args.out / "mse_vs_l0.png")
    (args.out / "results.json").write_text(json.dumps(populations, indent=1))


if __name__ == "__main__":
    main()
