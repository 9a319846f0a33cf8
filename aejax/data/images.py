"""Your own images: `data=images data.path=DIR`, read with pillow.

- Image files directly in DIR: unlabelled data.
- One sub-folder per label (`DIR/cat/*.png`, `DIR/dog/*.png`): labels are the sub-folder names in
  sorted order, as integers 0..K-1; `Dataset.label_names` keeps the names.

PNG and JPEG (and BMP, GIF, TIFF, WebP: whatever pillow opens) with 8 bits per channel, read in
sorted order (by sub-folder, then file name), converted to `data.color` (grayscale: one channel,
pillow's ITU-R 601-2 luma; rgb: three, alpha dropped), resized to `data.image_size` ([H, W], or an
int for H = W; bilinear, antialiased) when it is set, scaled to [0, 1]. Without
`data.image_size` every image must have the same size. Hidden files and folders (".name") and
files of other types are skipped. The splits are those of `data=array` without a test split
(`aejax.data.arrays.from_arrays`): `data.test_fraction` held out after one fixed permutation.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from aejax.data.spec import DataSpec
from aejax.data.dataset import Dataset
from aejax.data.arrays import from_arrays
from aejax.errors import ConfigError

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _visible(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)


def _images_in(folder: Path) -> list[Path]:
    return [p for p in _visible(folder) if p.is_file() and p.suffix.lower() in SUFFIXES]


def list_images(spec: DataSpec) -> tuple[list[Path], np.ndarray | None, tuple | None]:
    """The image files `data=images` reads, in its order, with their labels and label names
    (None for a folder without label sub-folders)."""
    where = f"data.path={spec.path!r}"
    root = Path(spec.path).expanduser()
    if not root.is_dir():
        state = "it is a file; data=array reads .npy and .npz files" if root.exists() else "no such folder"
        if not root.is_absolute():
            state += f"; relative paths start from {Path.cwd()}"
        raise ConfigError(f"{where} is not allowed; expected a folder of images ({state})")
    direct = _images_in(root)
    folders = [p for p in _visible(root) if p.is_dir()]
    labelled = [(d, _images_in(d)) for d in folders]
    labelled = [(d, files) for d, files in labelled if files]
    if direct and labelled:
        raise ConfigError(f"{where} holds image files ({direct[0].name}, ...) and sub-folders of images "
                          f"({', '.join(d.name for d, _ in labelled[:3])}), which is not allowed; expected either "
                          f"images directly in it or one sub-folder per label")
    if direct:
        return direct, None, None
    if not labelled:
        empty = f" (its sub-folders {', '.join(d.name for d in folders[:3])} hold no images directly)" if folders else ""
        raise ConfigError(f"{where} holds no images{empty}, which is not allowed; expected {'/'.join(SUFFIXES)} "
                          f"files directly in it or in one sub-folder per label")
    files = [f for _, fs in labelled for f in fs]
    labels = np.concatenate([np.full(len(fs), i, np.int32) for i, (_, fs) in enumerate(labelled)])
    return files, labels, tuple(d.name for d, _ in labelled)


def _size(spec: DataSpec) -> tuple[int, int] | None:
    if spec.image_size is None:
        return None
    size = spec.image_size
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _read(path: Path, root: Path, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert(mode)
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            return np.asarray(image, np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        reason = " ".join(f"{type(err).__name__}: {err}".split())
        raise ConfigError(f"data.path={str(root)!r}: {path.relative_to(root)} cannot be read ({reason}), which is not "
                          f"allowed; expected image files pillow can open (PNG, JPEG)") from None


def load_images(spec: DataSpec) -> Dataset:
    files, labels, label_names = list_images(spec)
    root = Path(spec.path).expanduser()
    size = _size(spec)
    mode = "RGB" if spec.color == "rgb" else "L"
    workers = max(1, min(8, os.cpu_count() or 1, len(files) // 64))
    if workers > 1:  # pillow decodes without the GIL
        with ThreadPoolExecutor(workers) as pool:
            images = list(pool.map(lambda f: _read(f, root, mode, size), files))
    else:
        images = [_read(f, root, mode, size) for f in files]
    shapes = {}
    for f, image in zip(files, images):
        shapes.setdefault(image.shape[:2], f)
    if len(shapes) > 1:
        (s1, f1), (s2, f2) = list(shapes.items())[:2]
        raise ConfigError(f"data.image_size=None is not allowed for data.path={spec.path!r}: its images have "
                          f"different sizes ({s1[0]}x{s1[1]} in {f1.relative_to(root)}, {s2[0]}x{s2[1]} in "
                          f"{f2.relative_to(root)}); expected [H, W] (or an int) to resize them to")
    x = np.stack(images)
    return from_arrays(spec, x, labels, label_names=label_names, source=spec.path, names={"x": "images", "y": "labels"})
