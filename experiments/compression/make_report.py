"""Lossy compression with a trained run's code, against PCA and JPEG, on its own data and on shifted data.

    python experiments/compression/make_report.py RUN_DIR [--data-root ../shared/data/mnist]
    python experiments/compression/make_report.py RUN_DIR --vqvae VQ_RUN_DIR [VQ_RUN_DIR ...]
    python experiments/compression/make_report.py --baseline experiments/compression/results.json --vqvae VQ_RUN_DIR ...

`--vqvae`: VQ-VAE runs (one per codebook size K) join the table and the figure as a rate against distortion
curve, each at P log2 K bits (P code positions; beside it, the entropy-coded size). `--baseline`: without
RUN_DIR, the autoencoder's and PCA's rows come from an earlier results.json (JPEG is measured again).

Rate: bytes per image (code units x bits / 8; JPEG: the whole file). Distortion: squared error per
image on the run's test images, pixels in [0, 1]. Then the same codecs on the test images moved
3 pixels to the right, images the autoencoder was not trained on. Prints the tables of
experiments/compression/README.md and writes results.json beside this script (or to --out), and
rate_distortion.png beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA

from aejax.errors import ConfigError
from aejax.latents import batched
from aejax.studies.compression import (code_rate_distortion, jpeg_rate_distortion, rate_distortion_figure,
                                       sse_per_image, vq_rate_distortion)
from aejax.trained import load_run

SHIFT = 3  # pixels to the right, zeros coming in from the left


def shifted(images: np.ndarray, image_shape: tuple) -> np.ndarray:
    grid = images.reshape(len(images), *image_shape[:2])
    out = np.zeros_like(grid)
    out[:, :, SHIFT:] = grid[:, :, :-SHIFT]
    return out.reshape(len(images), -1)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", nargs="?", help="an autoencoder run (its code is quantised to b bits a unit)")
    parser.add_argument("--vqvae", nargs="+", default=[], metavar="VQ_RUN_DIR", help="VQ-VAE runs, one per K")
    parser.add_argument("--baseline", help="without RUN_DIR: an earlier results.json for the autoencoder and PCA rows")
    parser.add_argument("--data-root", help="where the runs' data files are now, if they moved")
    parser.add_argument("--member", type=int, default=0, help="which member of each run's population")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results.json"), help="where results.json goes")
    args = parser.parse_args()
    if (args.run_dir is None) == (args.baseline is None):
        parser.exit(2, f"{Path(sys.argv[0]).name}: error: give RUN_DIR or --baseline (one of them)\n")
    if args.baseline and not args.vqvae:
        parser.exit(2, f"{Path(sys.argv[0]).name}: error: --baseline needs --vqvae runs to add to it\n")
    return parser, args


def open_run(parser, run_dir: str, args, family: str | None = None):
    try:
        run = load_run(run_dir, member=args.member, data_root=args.data_root)
    except ConfigError as error:
        parser.exit(2, f"{Path(sys.argv[0]).name}: error: {error}\n")
    if run.data.image_shape is None:
        parser.exit(2, f"{Path(sys.argv[0]).name}: error: data={run.spec.data.name} is not images; this report needs them\n")
    if family and run.spec.model.family != family:
        parser.exit(2, f"{Path(sys.argv[0]).name}: error: --vqvae {run_dir} is a model.family={run.spec.model.family} "
                       f"run; expected model.family={family}\n")
    return run


def vq_rows(runs, images: np.ndarray | None = None) -> list[dict]:
    """Each VQ-VAE run's rate and distortion on its test images (or on `images`)."""
    rows = []
    for run in runs:
        test = run.data.test if images is None else images
        indices = lambda x: batched(run.model.indices, x)
        row = vq_rate_distortion(indices(run.data.train), indices(test), run.spec.model.get("codebook_size"),
                                 run.reconstruct(test), test)
        rows.append(dict(row, epoch=run.epoch))
    return sorted(rows, key=lambda r: r["bits"])


def main() -> None:
    parser, args = parse_args()
    vq_runs = [open_run(parser, d, args, family="vqvae") for d in args.vqvae]
    if args.run_dir:
        run = open_run(parser, args.run_dir, args)
        train, test, k = run.data.train, run.data.test, run.spec.model.code_size
        pca = PCA(k, random_state=0).fit(train)
        codecs = {f"autoencoder {k}": (run.encode, run.decode), f"PCA {k}": (pca.transform, pca.inverse_transform)}
        results = {name: code_rate_distortion(enc, dec, train, test) for name, (enc, dec) in codecs.items()}
        image_shape, source = run.data.image_shape, f"run {args.run_dir}, member {args.member}, checkpoint epoch {run.epoch}"
    else:
        baseline = json.loads(Path(args.baseline).read_text())
        results = {name: rows for name, rows in baseline["rate_distortion"].items() if name not in ("JPEG", "VQ-VAE")}
        codecs, test, image_shape = {}, vq_runs[0].data.test, vq_runs[0].data.image_shape
        source = f"autoencoder and PCA rows from {args.baseline} (run {baseline['run_dir']}, epoch {baseline['epoch']})"
    results["JPEG"] = jpeg_rate_distortion(test, image_shape)
    if vq_runs:
        results["VQ-VAE"] = vq_rows(vq_runs)

    print(f"{source}; {len(test)} test images\n")
    print("| codec | setting | bytes per image | squared error per image |\n| --- | --- | --- | --- |")
    for name, rows in results.items():
        for r in rows:
            setting = (f"quality {r['quality']}" if "quality" in r else
                       f"K = {r['codebook_size']}, {r['positions']} positions" if "codebook_size" in r else
                       "float32 (unquantised)" if r["bits"] is None else f"{r['bits']} bits a unit")
            size = f"{r['bytes']:.1f}" + (f" (scan alone: {r['scan_bytes']:.1f})" if "scan_bytes" in r else
                                          f" (entropy-coded: {r['entropy_bits'] / 8:.1f})" if "entropy_bits" in r else "")
            print(f"| {name} | {setting} | {size} | {r['sse_per_image']:.2f} |")

    moved = shifted(test, image_shape)
    eight_bits = lambda rows: next(r for r in rows if r["bits"] == 8)
    specificity = {f"{name}, 8 bits a unit": [eight_bits(results[name]),
                                              eight_bits(code_rate_distortion(enc, dec, train, moved, bits_list=(8,)))]
                   for name, (enc, dec) in codecs.items()}
    if vq_runs:
        largest = max(vq_runs, key=lambda r: r.spec.model.get("codebook_size"))
        specificity[f"VQ-VAE, K = {largest.spec.model.get('codebook_size')}"] = [
            next(r for r in results["VQ-VAE"] if r["codebook_size"] == largest.spec.model.get("codebook_size")),
            vq_rows([largest], moved)[0]]
    specificity["JPEG, quality 75"] = [next(r for r in results["JPEG"] if r["quality"] == 75),
                                       jpeg_rate_distortion(moved, image_shape, (75,))[0]]
    print(f"\n| codec | bytes per image | error, test digits | error, shifted {SHIFT} pixels | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for name, (a, b) in specificity.items():
        print(f"| {name} | {a['bytes']:.1f} / {b['bytes']:.1f} | {a['sse_per_image']:.2f} | "
              f"{b['sse_per_image']:.2f} | {b['sse_per_image'] / a['sse_per_image']:.1f}x |")
    shift_distance = sse_per_image(moved, test)
    print(f"\n(the shifted images differ from the originals by {shift_distance:.2f} per image)")
    out = Path(args.out)
    figure = rate_distortion_figure(curves(results), out.parent / "rate_distortion.png", note=source[:120])
    print(f"figure: {figure}")
    out.write_text(json.dumps({"run_dir": str(args.run_dir) if args.run_dir else None, "baseline": args.baseline,
                               "vqvae_runs": args.vqvae, "member": args.member,
                               "epoch": run.epoch if args.run_dir else None,
                               "rate_distortion": results, "shifted": specificity}, indent=1))


def curves(results: dict) -> dict:
    """{codec: [(bits per image, squared error per image)]}: quantised codes (not the float32 row), JPEG's
    file and scan, the VQ-VAE indices and their entropy-coded size."""
    out = {}
    for name, rows in results.items():
        if name == "JPEG":
            out["JPEG, whole file"] = [(8 * r["bytes"], r["sse_per_image"]) for r in rows]
            out["JPEG, scan alone"] = [(8 * r["scan_bytes"], r["sse_per_image"]) for r in rows]
        elif name == "VQ-VAE":
            out["VQ-VAE, P log2 K"] = [(r["bits"], r["sse_per_image"]) for r in rows]
            out["VQ-VAE, entropy-coded"] = [(r["entropy_bits"], r["sse_per_image"]) for r in rows]
        else:
            out[f"{name}, b bits a unit"] = [(8 * r["bytes"], r["sse_per_image"]) for r in rows if r["bits"] is not None]
    return {k: v for k, v in out.items() if v and all(math.isfinite(b) and b > 0 for b, _ in v)}


if __name__ == "__main__":
    main()
