"""VQ-VAE on MNIST: reconstruction against codebook size, and codebook use with and without restarts and EMA.

    python experiments/vqvae_mnist/make_report.py RUN_DIR [RUN_DIR ...] [--data-root ../shared/data/mnist]

Each RUN_DIR is a finished `experiment=vqvae_mnist` run (member 0). Prints the table of
experiments/vqvae_mnist/README.md (bits per image = P log2 K, test squared error per image, test
perplexity, codes in use and dead on the test set, dead codes logged at the end of training) and writes
results.json, reconstructions.png (test digits and each run's reconstruction) and codebook_use.png
(training perplexity and dead codes against steps) into --out (this folder by default).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from aejax import figures
from aejax.errors import ConfigError
from aejax.trained import load_run


def label(spec) -> str:
    m = spec.model
    return (f"K={m.get('codebook_size')}, {m.get('codebook_update')}, "
            f"{'restarts' if m.get('restarts') else 'no restarts'}")


def curves(run_dir: Path, keys=("train/perplexity", "train/dead", "train/codes_in_use")) -> dict:
    out = {k: [] for k in keys}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("member") == 0:
            for k in keys:
                if k in row:
                    out[k].append((row["step"], row[k]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+")
    parser.add_argument("--data-root", help="where the runs' data files are now, if they moved")
    parser.add_argument("--out", default=str(Path(__file__).parent), help="folder for results.json and the figures")
    args = parser.parse_args()
    rows, recons, series, test = [], [], {}, None
    for run_dir in map(Path, args.run_dirs):
        try:
            run = load_run(run_dir, data_root=args.data_root)
        except ConfigError as error:
            parser.exit(2, f"{Path(sys.argv[0]).name}: error: {error}\n")
        if run.spec.model.family != "vqvae":
            parser.exit(2, f"{Path(sys.argv[0]).name}: error: {run_dir} is a model.family={run.spec.model.family} "
                           "run; expected model.family=vqvae\n")
        summary = json.loads((run_dir / "summary.json").read_text())
        metrics = summary["members"][0]["test"]
        logged = curves(run_dir)
        name = label(run.spec)
        rows.append({"run": name, "run_dir": str(run_dir), "codebook_size": run.spec.model.get("codebook_size"),
                     "codebook_update": run.spec.model.get("codebook_update"), "restarts": run.spec.model.get("restarts"),
                     "steps": summary["steps"], "train_seconds": summary["train_seconds"],
                     "bits_per_image": metrics["bits_per_image"], "sse_per_image": metrics["sse_per_image"],
                     "perplexity": metrics["perplexity"], "codes_in_use": metrics["codes_in_use"],
                     "dead_codes": metrics["dead_codes"],
                     "train_dead_last": logged["train/dead"][-1][1] if logged["train/dead"] else None,
                     "train_perplexity_last": logged["train/perplexity"][-1][1] if logged["train/perplexity"] else None})
        test = run.data.test[:10] if test is None else test
        recons.append((name, run.reconstruct(test)))
        series[name] = logged
    print("| run | bits per image | test squared error per image | test perplexity | codes in use / dead (test) "
          "| dead codes (train, last 50 steps) |\n| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['run']} | {r['bits_per_image']:.0f} | {r['sse_per_image']:.2f} | {r['perplexity']:.1f} | "
              f"{r['codes_in_use']} / {r['dead_codes']} | {r['train_dead_last']:.1f} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    image_shape = run.data.image_shape
    paths = [figures.image_grid([test, *(r for _, r in recons)], image_shape, out / "reconstructions.png",
                                ["test input", *(n for n, _ in recons)])]
    fig, axes = figures.plt.subplots(1, 2, figsize=(11, 4))
    for name, logged in series.items():
        for ax, key in zip(axes, ("train/perplexity", "train/dead")):
            if logged[key]:
                ax.plot(*zip(*logged[key]), label=name)
    for ax, key in zip(axes, ("codebook perplexity (batch)", "dead codes (unused for dead_window steps)")):
        ax.set_xlabel("step")
        ax.set_title(key, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    paths.append(figures.save(fig, out / "codebook_use.png"))
    (out / "results.json").write_text(json.dumps({"runs": rows}, indent=1))
    print("figures: " + ", ".join(str(p) for p in paths))


if __name__ == "__main__":
    main()
