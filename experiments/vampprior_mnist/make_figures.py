"""The report's figures from the two runs of `aejax-train -m experiment=vampprior_mnist
model.prior=vampprior,standard`: 40 samples from each prior (samples.png) and the first 100 of the VampPrior's
500 pseudo-inputs (pseudo_inputs.png), and both runs' test numbers (results.json).

    uv run --locked python experiments/vampprior_mnist/make_figures.py VAMP_RUN STANDARD_RUN [--data-root DIR]
"""

import argparse
import json
from pathlib import Path

import jax
import numpy as np

from aejax.figures import image_grid
from aejax.trained import load_run

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("vamp_run")
    parser.add_argument("standard_run")
    parser.add_argument("--data-root", help="where the runs' MNIST files are now, if they moved")
    parser.add_argument("--out", default=str(HERE), help="folder for the PNGs and results.json")
    args = parser.parse_args()
    out = Path(args.out)
    rows, titles, results = [], [], {}
    for name, run_dir in (("VampPrior (K=500)", args.vamp_run), ("standard normal", args.standard_run)):
        run = load_run(run_dir, data_root=args.data_root)
        samples = np.asarray(run.model.sample(jax.random.key(0), 40))
        rows += [samples[i:i + 10] for i in range(0, 40, 10)]
        titles += [f"samples from the {name} prior"] + [""] * 3
        summary = json.loads((Path(run_dir) / "summary.json").read_text())
        results[name] = {"test": summary["members"][0]["test"], "study": summary["study"],
                         "train_seconds": summary["train_seconds"], "steps": summary["steps"]}
        if run.spec.model.family_settings.prior == "vampprior":
            pseudo = np.asarray(run.model.pseudo_inputs())[:100]
            image_grid([pseudo[i:i + 10] for i in range(0, 100, 10)], run.data.image_shape, out / "pseudo_inputs.png",
                       note="the first 100 of the 500 learned pseudo-inputs u_k = hardtanh(W_k)")
    image_grid(rows, run.data.image_shape, out / "samples.png", titles)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
