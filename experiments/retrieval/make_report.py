"""Retrieval with the codes of a trained run, against pixels, PCA and random projections.

    python experiments/retrieval/make_report.py RUN_DIR [--data-root ../shared/data/mnist]

Queries: the run's test images; database: its training images; relevant: same label. Prints the
markdown table of experiments/retrieval/README.md and writes results.json beside this script
(or to --out).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from aejax.studies.retrieval import precision_at_k, to_bits
from aejax.trained import codes_and_baselines, open_run_for_report, report_parser

KS = (1, 10, 100)


def representations(run) -> dict:
    """name -> (database vectors, query vectors, distance, what each vector costs)."""
    codes = codes_and_baselines(run)
    k = run.spec.model.code_size
    projection = np.random.default_rng(0).normal(size=(run.data.dim, k))  # SimHash-style bits
    out = {f"{name}, floats": (db, q, "euclidean", f"{db.shape[1]} floats") for name, (db, q) in codes.items()}
    for name, (db, q) in [(f"random projection {k}", (run.data.train @ projection, run.data.test @ projection)),
                          *list(codes.items())[1:]]:
        out[f"{name}, bits"] = (to_bits(db, db), to_bits(q, db), "hamming", f"{k} bits")
    return out


def main() -> None:
    parser = report_parser(__doc__, __file__)
    args, run = open_run_for_report(parser, needs="labels")
    results = {}
    for name, (db, q, distance, cost) in representations(run).items():
        tic = time.perf_counter()
        p = precision_at_k(db, run.data.train_labels, q, run.data.test_labels, KS, distance)
        results[name] = {"cost": cost, **{f"P@{k}": p[k] for k in KS}, "seconds": time.perf_counter() - tic}
    print(f"run {args.run_dir}, member {args.member}, checkpoint epoch {run.epoch}: "
          f"{len(run.data.test_labels)} queries, {len(run.data.train_labels)} database items\n")
    print("| representation | size | " + " | ".join(f"P@{k}" for k in KS) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in KS) + " |")
    for name, r in results.items():
        print(f"| {name} | {r['cost']} | " + " | ".join(f"{r[f'P@{k}']:.3f}" for k in KS) + " |")
    Path(args.out).write_text(json.dumps(
        {"run_dir": str(args.run_dir), "member": args.member, "epoch": run.epoch, "results": results}, indent=1))


if __name__ == "__main__":
    main()
