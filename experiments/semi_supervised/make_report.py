"""Few labels on a trained run's codes: linear probes against pixels and PCA.

    python experiments/semi_supervised/make_report.py RUN_DIR [--data-root ../shared/data/mnist]

For 1, 10, 100 and 1000 labelled training images per class (5 random draws each), a standardised
logistic regression is fitted on the pixels, on PCA with as many components as the code, and on
the autoencoder's frozen codes, and scored on the run's test images. Prints the markdown table of
experiments/semi_supervised/README.md and writes results.json beside this script (or to --out).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from aejax.studies.semi_supervised import probe_accuracy
from aejax.trained import codes_and_baselines, open_run_for_report, report_parser

PER_CLASS = (1, 10, 100, 1000)


def main() -> None:
    parser = report_parser(__doc__, __file__)
    parser.add_argument("--per-class", type=int, nargs="+", default=list(PER_CLASS))
    args, run = open_run_for_report(parser, needs="labels")
    results = {}
    for name, (train, test) in codes_and_baselines(run).items():
        tic = time.perf_counter()
        results[name] = {n: probe_accuracy(train, run.data.train_labels, test, run.data.test_labels, n)
                         for n in args.per_class}
        results[name]["seconds"] = time.perf_counter() - tic
    print(f"run {args.run_dir}, member {args.member}, checkpoint epoch {run.epoch}: test accuracy, "
          f"mean +- std over 5 draws of the labelled images, {len(run.data.test_labels)} test images\n")
    print("| features | " + " | ".join(f"{n} per class" for n in args.per_class) + " |")
    print("| --- | " + " | ".join("---" for _ in args.per_class) + " |")
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(f"{r[n]['mean']:.3f} +- {r[n]['std']:.3f}" for n in args.per_class) + " |")
    Path(args.out).write_text(json.dumps(
        {"run_dir": str(args.run_dir), "member": args.member, "epoch": run.epoch, "results": results}, indent=1))


if __name__ == "__main__":
    main()
