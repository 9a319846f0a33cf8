"""Lossy compression with a trained run's code, against PCA and JPEG, on its own data and on shifted data.

    python experiments/compression/make_report.py RUN_DIR [--data-root ../shared/data/mnist]

Rate: bytes per image (code units x bits / 8; JPEG: the whole file). Distortion: squared error per
image on the run's test images, pixels in [0, 1]. Then the same codecs on the test images moved
3 pixels to the right, images the autoencoder was not trained on. Prints the tables of
experiments/compression/README.md and writes results.json beside this script (or to --out).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA

from aejax.studies.compression import code_rate_distortion, jpeg_rate_distortion, sse_per_image
from aejax.trained import open_run_for_report, report_parser

SHIFT = 3  # pixels to the right, zeros coming in from the left


def shifted(images: np.ndarray, image_shape: tuple) -> np.ndarray:
    grid = images.reshape(len(images), *image_shape[:2])
    out = np.zeros_like(grid)
    out[:, :, SHIFT:] = grid[:, :, :-SHIFT]
    return out.reshape(len(images), -1)


def main() -> None:
    parser = report_parser(__doc__, __file__)
    args, run = open_run_for_report(parser, needs="images")
    train, test, k = run.data.train, run.data.test, run.spec.model.code_size
    pca = PCA(k, random_state=0).fit(train)
    codecs = {f"autoencoder {k}": (run.encode, run.decode), f"PCA {k}": (pca.transform, pca.inverse_transform)}
    results = {name: code_rate_distortion(enc, dec, train, test) for name, (enc, dec) in codecs.items()}
    results["JPEG"] = jpeg_rate_distortion(test, run.data.image_shape)

    print(f"run {args.run_dir}, member {args.member}, checkpoint epoch {run.epoch}; {len(test)} test images\n")
    print("| codec | setting | bytes per image | squared error per image |\n| --- | --- | --- | --- |")
    for name, rows in results.items():
        for r in rows:
            setting = (f"quality {r['quality']}" if "quality" in r else
                       "float32 (unquantised)" if r["bits"] is None else f"{r['bits']} bits a unit")
            size = f"{r['bytes']:.1f}" + (f" (scan alone: {r['scan_bytes']:.1f})" if "scan_bytes" in r else "")
            print(f"| {name} | {setting} | {size} | {r['sse_per_image']:.2f} |")

    moved = shifted(test, run.data.image_shape)
    eight_bits = lambda rows: next(r for r in rows if r["bits"] == 8)
    specificity = {f"{name}, 8 bits a unit": [eight_bits(results[name]),
                                              eight_bits(code_rate_distortion(enc, dec, train, moved, bits_list=(8,)))]
                   for name, (enc, dec) in codecs.items()}
    specificity["JPEG, quality 75"] = [next(r for r in results["JPEG"] if r["quality"] == 75),
                                       jpeg_rate_distortion(moved, run.data.image_shape, (75,))[0]]
    print(f"\n| codec | bytes per image | error, test digits | error, shifted {SHIFT} pixels | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for name, (a, b) in specificity.items():
        print(f"| {name} | {a['bytes']:.1f} / {b['bytes']:.1f} | {a['sse_per_image']:.2f} | "
              f"{b['sse_per_image']:.2f} | {b['sse_per_image'] / a['sse_per_image']:.1f}x |")
    shift_distance = sse_per_image(moved, test)
    print(f"\n(the shifted images differ from the originals by {shift_distance:.2f} per image)")
    Path(args.out).write_text(json.dumps({"run_dir": str(args.run_dir), "member": args.member, "epoch": run.epoch,
                                          "rate_distortion": results, "shifted": specificity}, indent=1))


if __name__ == "__main__":
    main()
