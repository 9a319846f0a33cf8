"""IWAE against the VAE (experiment iwae_mnist): every member's test NLL with K importance samples, the NLL
against epochs, and Burda et al.'s Table 1 beside them.

    python experiments/iwae_mnist/make_report.py RUN_DIR [--samples 5000] [--test-images 1000] [--out DIR]

Test NLL: `aejax.studies.mnist_vae.iwae_nll` (task mnist_vae's estimator) with --samples per image on the
first --test-images of the run's test split (its one fixed binarisation). The curve: val/neg_iwae_bound_max
of metrics.jsonl, the bound with the population's largest k (the same K for every member) on the validation
images after every epoch (trainer.eval_every=1). Prints the README's table and writes results.json and
nll_against_epochs.png to --out (default: beside this script).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from aejax.restore import restore_population
from aejax.studies.mnist_vae import iwae_nll

PAPER = {1: 86.76, 5: 85.54, 50: 84.78}  # Burda et al. 2016, Table 1, one stochastic layer, IWAE (k=1: the VAE)
NAMES = {1: "VAE (k=1)", 5: "IWAE k=5", 50: "IWAE k=50"}


def curves(run_dir: Path, key: str) -> dict:
    """{member: (epochs, values)} of a validation metric in metrics.jsonl."""
    out: dict = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if key in row:
            out.setdefault(row["member"], ([], []))
            out[row["member"]][0].append(row["epoch"])
            out[row["member"]][1].append(row[key])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--samples", type=int, default=5000, help="importance samples per test image (multiple of 250)")
    parser.add_argument("--test-images", type=int, default=1000, help="the first N test images")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    if args.samples <= 0 or args.samples % 250:
        parser.error(f"--samples={args.samples} is not allowed; expected a positive multiple of 250")

    run = restore_population(args.run_dir, data_root=args.data_root)
    ks = [int(r["model.k"]) for r in run.rows]
    test = jnp.asarray(run.data.test[:args.test_images])
    nll_fn = jax.jit(lambda p, x: iwae_nll(nnx.merge(run.graph, p), x, jax.random.key(7), args.samples))
    summary = json.loads((args.run_dir / "summary.json").read_text())
    results = {"run": str(args.run_dir), "epochs": run.epoch, "samples": args.samples, "test_images": len(test),
               "train_seconds": summary.get("train_seconds"), "members": []}
    tic = time.perf_counter()
    per_image = {}
    for m, k in enumerate(ks):
        per_image[k] = np.asarray(nll_fn(jax.tree.map(lambda a: a[m], run.params), test), np.float64)
        nll = float(np.mean(per_image[k]))
        member = summary["members"][m]["test"]
        # the same images for every member: a difference's standard error is the paired one, far below each mean's
        diff = per_image[k] - per_image[ks[0]]
        results["members"].append({"k": k, "test_nll": nll, "paper_nll": PAPER.get(k),
                                   "test_nll_standard_error": float(np.std(per_image[k]) / np.sqrt(len(test))),
                                   f"minus_k{ks[0]}": float(diff.mean()),
                                   f"minus_k{ks[0]}_standard_error": float(np.std(diff) / np.sqrt(len(test))),
                                   "test_neg_iwae_bound": member["neg_iwae_bound"],
                                   "test_neg_iwae_bound_k_max": member["neg_iwae_bound_max"],
                                   "test_neg_elbo": member["neg_elbo"]})
    results["nll_seconds"] = time.perf_counter() - tic
    curve = curves(args.run_dir, "val/neg_iwae_bound_max")
    results["curve"] = {ks[m]: {"epoch": e, "val_neg_iwae_bound_k_max": v} for m, (e, v) in curve.items()}
    epochs = sorted(set.intersection(*(set(e) for e, _ in curve.values()))) if curve else []
    by_epoch = {e: [curve[m][1][curve[m][0].index(e)] for m in range(len(ks))] for e in epochs}
    order = np.argsort(ks)[::-1]  # largest k first: the paper's ordering is increasing along it
    results["ordering_holds_at_every_epoch"] = bool(epochs) and all(
        all(v[order[i]] < v[order[i + 1]] for i in range(len(order) - 1)) for v in by_epoch.values())

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    figure(results, ks, curve, args.out / "nll_against_epochs.png")

    print(f"run {args.run_dir}: {run.epoch} epochs; NLL with K = {args.samples} on the first {len(test)} test "
          f"images ({results['nll_seconds']:.0f} s)\n")
    print(f"| model | test NLL, K = {args.samples} (± s.e.) | minus k={ks[0]}'s, paired (± s.e.) | paper (Table 1) | "
          f"test -L_k at its k | test -L_{max(ks)} | test -ELBO |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results["members"]:
        name = NAMES.get(r["k"], f"k={r['k']}")
        print(f"| {name} | {r['test_nll']:.2f} ± {r['test_nll_standard_error']:.2f} | "
              f"{r[f'minus_k{ks[0]}']:+.2f} ± {r[f'minus_k{ks[0]}_standard_error']:.2f} | {r['paper_nll']} | "
              f"{r['test_neg_iwae_bound']:.2f} | {r['test_neg_iwae_bound_k_max']:.2f} | {r['test_neg_elbo']:.2f} |")
    print(f"\nval -L_{max(ks)} after each epoch (k = {', '.join(map(str, ks))}):")
    for e, v in by_epoch.items():
        print(f"  epoch {e}: " + ", ".join(f"{x:.2f}" for x in v))
    print(f"ordering k={max(ks)} < ... < k={min(ks)} at every epoch: {results['ordering_holds_at_every_epoch']}")


def figure(results: dict, ks: list, curve: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for m, k in enumerate(ks):
        colour = f"C{m}"
        if m in curve:
            ax.plot(*curve[m], "o-", color=colour, label=f"{NAMES.get(k, k)}: val -L_{max(ks)}")
        r = results["members"][m]
        ax.plot([results["epochs"]], [r["test_nll"]], "*", ms=12, color=colour,
                label=f"{NAMES.get(k, k)}: test NLL, K={results['samples']}")
        if r["paper_nll"]:
            ax.axhline(r["paper_nll"], ls="--", lw=0.8, color=colour)
    ax.set_xlabel("epoch (passes over the training images)")
    ax.set_ylabel("nats per image (lower is better)")
    ax.set_title("IWAE vs VAE, binarised MNIST (dashed: Burda et al., 3,280 passes)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
