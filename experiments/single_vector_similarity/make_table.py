"""Print the report's Spearman table from the results.json of one or more study runs.

    python experiments/single_vector_similarity/make_table.py outputs/single_vector_similarity/*/results.json
"""

import json
import sys
from pathlib import Path

import numpy as np

CONDITIONS = ["a_independent", "b_shared_init", "c_dataset_ae", "d_cross_encoding",
              "cka_a_independent", "cka_b_shared_init"]


def cell(c: dict) -> str:
    p = c["pooled"]
    return f"{p['rho']:+.2f} [{p['lo']:+.2f}, {p['hi']:+.2f}]"


def unfit(path: str, part: str, dim: int) -> str:
    """Share of single-vector autoencoders whose MSE exceeds 1% of their vector's mean square."""
    pairs = np.load(Path(path).parent / "pairs.npz")
    mse = np.concatenate([pairs[f"{part}/mse_a1"], pairs[f"{part}/mse_a2_independent"], pairs[f"{part}/mse_a2_shared"]])
    if f"{part}/ms_v1" in pairs:
        ms = np.concatenate([pairs[f"{part}/ms_v1"], pairs[f"{part}/ms_v2"], pairs[f"{part}/ms_v2"]])
    else:  # older runs: synthetic vectors are unit vectors, mean square 1/dim
        ms = np.full_like(mse, 1.0 / dim) if part == "synthetic" else None
    return "-" if ms is None else f"{np.mean(mse / ms > 0.01):.1%}"


def main(paths: list[str]) -> None:
    print("| setting | data | pairs | not fitted | " + " | ".join(CONDITIONS) + " |")
    print("|" + " --- |" * (4 + len(CONDITIONS)))
    for path in paths:
        r = json.load(open(path))
        s = r["settings"]
        setting = (f"code {s['model.code_size']}, {s['model.code_activation']}, {s['study.steps']} steps, "
                   f"init x{s['model.init_scale']}, {len(s['seeds'])} seeds")
        for part in ("synthetic", "mnist"):
            if part in r:
                conds = r[part]["conditions"]
                print(f"| {setting} | {part} | {conds['a_independent']['pooled']['n']} | {unfit(path, part, 64)} | "
                      + " | ".join(cell(conds[c]) for c in CONDITIONS) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
