"""Print the report's Spearman table from the results.json of one or more study runs.

    python experiments/single_vector_similarity/make_table.py outputs/single_vector_similarity/*/results.json
"""

import json
import sys

CONDITIONS = ["a_independent", "b_shared_init", "c_dataset_ae", "d_cross_encoding",
              "cka_a_independent", "cka_b_shared_init"]


def cell(c: dict) -> str:
    p = c["pooled"]
    return f"{p['rho']:+.2f} [{p['lo']:+.2f}, {p['hi']:+.2f}]"


def main(paths: list[str]) -> None:
    print("| setting | data | fit: max MSE | " + " | ".join(CONDITIONS) + " |")
    print("|" + " --- |" * (3 + len(CONDITIONS)))
    for path in paths:
        r = json.load(open(path))
        s = r["settings"]
        setting = (f"code {s['model.code_size']}, {s['model.code_activation']}, {s['study.steps']} steps, "
                   f"init x{s['model.init_scale']}, {len(s['seeds'])} seeds")
        for part in ("synthetic", "mnist"):
            if part in r:
                conds = r[part]["conditions"]
                print(f"| {setting} | {part} | {r[part]['fit']['max_mse']:.1e} | "
                      + " | ".join(cell(conds[c]) for c in CONDITIONS) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
