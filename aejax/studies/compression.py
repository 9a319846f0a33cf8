"""Lossy compression with a code: quantise each code unit to b bits, decode, count the error.

An image is stored as its code, each unit quantised uniformly to `bits` levels over the range it
takes on the training images (the quantiser is part of the codec, like the decoder's weights).
Size per image: code_size x bits / 8 bytes. JPEG, a codec made for every image, is the generic
baseline, counted two ways: the whole file a user would store, and its entropy-coded scan alone
(the file less its headers and tables, which dominate at 28 x 28 pixels).

A VQ-VAE's code is already discrete: P codebook indices, P log2 K bits (`vq_rate_distortion`), and beside
it the size an arithmetic coder would reach with each position's code frequencies on the training
images as its (static) model.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image


class UniformQuantizer:
    """2^bits evenly spaced levels per unit, between its minimum and maximum on `reference`."""

    def __init__(self, reference: np.ndarray, bits: int):
        if not 1 <= bits <= 16:
            raise ValueError(f"bits={bits} is not allowed; expected an integer in [1, 16]")
        self.low, self.high = reference.min(axis=0), reference.max(axis=0)
        self.levels = 2**bits - 1
        self.step = np.maximum(self.high - self.low, 1e-12) / self.levels

    def indices(self, codes: np.ndarray) -> np.ndarray:
        return np.clip(np.round((codes - self.low) / self.step), 0, self.levels).astype(np.int64)

    def values(self, indices: np.ndarray) -> np.ndarray:
        return (self.low + indices * self.step).astype(np.float32)

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        return self.values(self.indices(codes))


def sse_per_image(recon: np.ndarray, x: np.ndarray) -> float:
    return float(np.mean(np.sum((recon - x) ** 2, axis=1)))


def code_rate_distortion(encode: Callable, decode: Callable, train: np.ndarray, test: np.ndarray,
                         bits_list=(2, 3, 4, 6, 8)) -> list[dict]:
    """Bytes per image and test squared error per image, for each bit depth of the code."""
    train_codes, test_codes = encode(train), encode(test)
    rows = [{"bits": None, "bytes": 4 * test_codes.shape[1], "sse_per_image": sse_per_image(decode(test_codes), test)}]
    for bits in bits_list:
        quantise = UniformQuantizer(train_codes, bits)
        rows.append({"bits": bits, "bytes": test_codes.shape[1] * bits / 8,
                     "sse_per_image": sse_per_image(decode(quantise(test_codes)), test)})
    return rows


def jpeg_scan_bytes(jpeg: bytes) -> int:
    """Bytes of a baseline JPEG's entropy-coded scan: from the end of the SOS header to EOI.

    Walks the header segments by their lengths (a byte search for the SOS marker could hit a
    0xFF 0xDA pair inside a quantisation or Huffman table)."""
    position = 2  # after SOI
    while jpeg[position + 1] != 0xDA:  # every header segment: 0xFF, marker, 2-byte length, body
        position += 2 + int.from_bytes(jpeg[position + 2:position + 4], "big")
    scan_start = position + 2 + int.from_bytes(jpeg[position + 2:position + 4], "big")
    return jpeg.rindex(b"\xff\xd9") - scan_start


def jpeg_rate_distortion(images: np.ndarray, image_shape: tuple, qualities=(5, 25, 50, 75, 95)) -> list[dict]:
    """Mean JPEG file and scan sizes and squared error per image of `images` in [0, 1] (grayscale)."""
    rows = []
    pixels = np.round(images * 255).astype(np.uint8).reshape(len(images), *image_shape[:2])
    for quality in qualities:
        sizes, scans, decoded = [], [], []
        for image in pixels:
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
            sizes.append(buffer.tell())
            scans.append(jpeg_scan_bytes(buffer.getvalue()))
            buffer.seek(0)
            decoded.append(np.asarray(Image.open(buffer), np.float32).reshape(-1) / 255)
        rows.append({"quality": quality, "bytes": float(np.mean(sizes)), "scan_bytes": float(np.mean(scans)),
                     "sse_per_image": sse_per_image(np.stack(decoded), images)})
    return rows


def vq_rate_distortion(train_indices: np.ndarray, test_indices: np.ndarray, codebook_size: int,
                       test_recon: np.ndarray, test: np.ndarray) -> dict:
    """A VQ-VAE's rate and distortion on the test images, from their code indices `(N, P)`.

    bits: P log2 K, the indices stored as they are (exact). entropy_bits: the mean over test images of
    sum_p -log2 q_p(k_p), q_p the frequencies of the codes at position p over the training images, each
    count plus one (Laplace: an unseen code still costs finite bits): what an arithmetic coder with that
    static model would spend, within 2 bits an image, the model itself not counted."""
    positions = test_indices.shape[1]
    counts = np.ones((positions, codebook_size))
    for p in range(positions):
        counts[p] += np.bincount(train_indices[:, p], minlength=codebook_size)
    log_q = np.log2(counts / counts.sum(axis=1, keepdims=True))
    entropy = -np.mean(np.sum(log_q[np.arange(positions), test_indices], axis=1))
    bits = positions * math.log2(codebook_size)
    return {"codebook_size": codebook_size, "positions": positions, "bits": bits, "bytes": bits / 8,
            "entropy_bits": float(entropy), "sse_per_image": sse_per_image(test_recon, test)}


def rate_distortion_figure(curves: dict, path: Path, note: str = "") -> Path:
    """Squared error per image against bits per image (log axes), one line per codec:
    `curves` {name: [(bits, sse), ...]}."""
    from aejax import figures

    plt = figures.plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, points in curves.items():
        bits, sse = zip(*sorted(points))
        ax.plot(bits, sse, "o-" if len(points) > 1 else "o", label=name, markersize=4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("bits per image")
    ax.set_ylabel("squared error per image (test)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if note:
        ax.set_title(note, fontsize=8)
    fig.tight_layout()
    return figures.save(fig, path)
