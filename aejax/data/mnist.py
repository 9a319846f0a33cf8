"""MNIST from the original IDX files (LeCun, Cortes & Burges).

The folder is `data.root` when set; else `$AEJAX_DATA_ROOT` (or its `mnist/` folder), else the
user cache folder `~/.cache/aejax/mnist` (`aejax.data.cache`). Missing files are downloaded
there from the canonical mirrors when `data.download` is true and the network allows; every
file is checked against its published SHA-256 before use.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import urllib.request
from pathlib import Path

import numpy as np

from aejax.errors import ConfigError
from aejax.data.cache import ENV_VAR, locate, search_folders, searched

FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
}
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
           "https://storage.googleapis.com/cvdf-datasets/mnist/")
NAMES = tuple(name for name, _ in FILES.values())


def resolve_root(root: str | None) -> Path:
    """The folder of the MNIST files: `data.root` when set; else the first of `$AEJAX_DATA_ROOT`,
    `$AEJAX_DATA_ROOT/mnist` and the user cache that holds all four, else the user cache (where
    `find_files` downloads them)."""
    return locate("mnist", NAMES, root) or search_folders("mnist", root)[-1]


def find_files(root: str | None, download: bool) -> Path:
    """`resolve_root`, with missing files downloaded where allowed. Without `data.root` and with
    files neither found nor downloadable: one line saying where it looked and what to set."""
    folder = resolve_root(root)
    missing = [name for name in NAMES if not (folder / name).exists()]
    if root or not missing:
        return folder  # verified_path downloads into data.root, or names the missing file
    if download:
        missing = [name for name in missing if not _download(name, folder / name)]
    if missing:
        why = "data.download=false" if not download else f"no MNIST mirror answered ({MIRRORS[0]}, ...)"
        raise ConfigError(f"data=mnist: the MNIST files are in none of {searched('mnist')}, and {why}; set "
                          f"{ENV_VAR}=DIR (or data.root=DIR) to a folder holding {', '.join(NAMES)} (SHA-256 "
                          f"checked), or run once where the network allows to fill the cache")
    return folder


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(name: str, dest: Path) -> bool:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home or root: nothing can be downloaded there
        return False
    for mirror in MIRRORS:
        partial = dest.with_suffix(".part")
        try:
            with urllib.request.urlopen(mirror + name, timeout=15) as response, open(partial, "wb") as f:
                shutil.copyfileobj(response, f)
            partial.replace(dest)  # atomic: a half-downloaded file never carries the real name
            return True
        except OSError:
            partial.unlink(missing_ok=True)
    return False


def verified_path(root: Path, key: str, download: bool) -> Path:
    name, expected = FILES[key]
    path = root / name
    if not path.exists() and download:
        _download(name, path)
    if not path.exists():
        raise ConfigError(f"MNIST folder {str(root)!r}: {name} is missing; expected a file with SHA-256 {expected} "
                          f"(copy it from {MIRRORS[0]}{name}, or allow data.download=true on a networked machine)")
    actual = sha256(path)
    if actual != expected:
        raise ConfigError(f"MNIST folder {str(root)!r}: {name} is corrupted (SHA-256 {actual}, expected {expected}); "
                          f"delete it and download it again from {MIRRORS[0]}{name}")
    return path


def read_idx(path: Path) -> np.ndarray:
    """Parse one gzipped IDX file: magic (2 zero bytes, dtype code, ndim), big-endian dims, data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ConfigError(f"{path.name} is not an unsigned-byte IDX file; expected the original MNIST release")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_mnist(root: str | None, download: bool = True) -> dict:
    """{"train_images": (60000, 784) float32 in [0, 1], "train_labels": (60000,), test_*: 10000}."""
    folder = find_files(root, download)
    out = {}
    for key in FILES:
        array = read_idx(verified_path(folder, key, download))
        out[key] = (array.reshape(len(array), -1).astype(np.float32) / 255.0 if key.endswith("images")
                    else array.astype(np.int32))
    return out
