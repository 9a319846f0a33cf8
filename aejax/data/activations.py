"""A model's activations, as sparse-autoencoder work stores them: `data=activations data.path=DIR`.

DIR holds `.npy` shards, each (rows, D), read in name order as one concatenation of N rows and opened
memory-mapped (`np.load(mmap_mode="r")`): the data may be many times larger than memory.

Accepted dtypes, one for every shard: float16 (`<f2`), float32 (`<f4`), and bfloat16 as `np.save`
writes an `ml_dtypes.bfloat16` array: numpy has no bfloat16, so the header says `|V2` (two raw bytes)
and every `|V2` shard is read as bfloat16 (`.view(ml_dtypes.bfloat16)`). Big-endian files, float64,
integers and anything else are refused. `.safetensors` files are refused (safetensors is not a
dependency): convert each with `np.save(name + ".npy", safetensors.numpy.load_file(f)[key])`.

Before any training `open_shards` (and `load_activations`) scans every value in blocks of about
32 MB (bounded memory) and refuses NaN or inf with its file and row. Every refusal is one
`ConfigError` line naming data.path.

- Test split: the last `data.test_size` rows of the concatenation (null: 10,000), held in memory;
  training uses rows [0, N - test_size) only.
- Epoch order (`RowStream.rows`): the training rows are cut into blocks of `data.block_rows` rows; each
  epoch permutes the blocks (`default_rng([seed, epoch, 0])`) and shuffles the rows within each window
  of `data.shuffle_blocks` consecutive blocks of that order (`default_rng([seed, epoch, 1, window])`).
  So the order is a pure function of (data.seed, epoch), a read touches only the windows it spans,
  and it materialises only the rows asked for.
- `data.normalize=mean_norm` (SAELens's `normalize_activations="expected_average_only_in"`,
  `ActivationScaler.estimate_scaling_factor`): every row is multiplied by `sqrt(D) / mean ||x||`, the
  mean over `data.norm_rows` evenly spaced training rows (SAELens takes the first batches of its
  shuffled stream instead). `RowStream.scale` holds the factor (1.0 for `none`); the test split is
  scaled by it too; `RowStream.unscale` undoes it.

Writing shards from a forward pass (torch; docs/activations.md has a fuller writer and JAX/Flax):

    buf = []
    def hook(module, inputs, output):                   # output: (batch, seq, D)
        buf.append(output.detach().reshape(-1, output.shape[-1]).to(torch.float16).cpu().numpy())
        if sum(len(b) for b in buf) >= 1_000_000:       # a shard of about a million rows
            np.save(f"acts/shard_{len(os.listdir('acts')):05d}.npy", np.concatenate(buf))
            buf.clear()
    handle = model.transformer.h[6].register_forward_hook(hook)
    # ... run the model over the corpus under torch.no_grad(), save what is left in buf, handle.remove()
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import ml_dtypes
import numpy as np

from aejax.data.dataset import Dataset
from aejax.data.spec import DataSpec
from aejax.errors import ConfigError

TEST_ROWS = 10_000            # data.test_size=null
SCAN_BYTES = 32 << 20         # the NaN/inf scan reads this much at a time
DTYPES = {"<f2": "float16", "<f4": "float32", "|V2": "bfloat16"}
ALLOWED = "float16, float32 or bfloat16 (ml_dtypes.bfloat16 saved with np.save, header |V2)"
# The exponent bits: all set means inf or NaN.
EXPONENT = {"float16": (np.uint16, 0x7C00), "bfloat16": (np.uint16, 0x7F80), "float32": (np.uint32, 0x7F800000)}


@dataclass(frozen=True)
class Shards:
    """The shards of data.path, memory-mapped: `arrays[i]` (rows_i, dim) in `dtype`, from `files[i]`."""
    path: str
    files: tuple[str, ...]
    arrays: tuple[np.ndarray, ...]
    dtype: str                # float16 | bfloat16 | float32
    dim: int
    starts: np.ndarray        # (len(files) + 1,) int64: shard i holds global rows [starts[i], starts[i+1])

    @property
    def num_rows(self) -> int:
        return int(self.starts[-1])

    def take(self, rows: np.ndarray) -> np.ndarray:
        """float32 (len(rows), dim) of the given global rows, which must be sorted ascending."""
        out = np.empty((len(rows), self.dim), np.float32)
        if len(rows) == 0:
            return out
        shard = np.searchsorted(self.starts, rows, side="right") - 1
        cuts = np.flatnonzero(np.diff(shard)) + 1
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(rows)]):
            i = shard[a]
            out[a:b] = self.arrays[i][rows[a:b] - self.starts[i]]
        return out


def _refuse(path, what: str, allowed: str):
    raise ConfigError(f"data.path={str(path)!r}: {what}, which is not allowed; expected {allowed}")


def open_shards(path, scan: bool = True) -> Shards:
    """Every `*.npy` in the folder `path`, in name order, memory-mapped and checked (one dim, one dtype,
    2-D, an accepted dtype; with `scan`, every value finite). One-line ConfigError otherwise."""
    folder = Path(path)
    if not folder.is_dir():
        _refuse(path, "it is not a folder", "a folder of .npy shards (N, D)")
    if sorted(folder.glob("*.safetensors")):
        _refuse(path, f"{sorted(folder.glob('*.safetensors'))[0].name} is a .safetensors file (safetensors is not "
                      f"installed with aejax)", "only .npy shards: convert with np.save(name + '.npy', "
                                                "safetensors.numpy.load_file(file)[key])")
    files = sorted(folder.glob("*.npy"))
    if not files:
        _refuse(path, "it holds no .npy file", "a folder of .npy shards (N, D)")
    arrays, dtypes = [], []
    for f in files:
        try:
            a = np.load(f, mmap_mode="r")
        except (ValueError, OSError) as err:
            _refuse(path, f"{f.name} cannot be read as .npy ({type(err).__name__}: {str(err).splitlines()[0]})",
                    "files written by np.save")
        if a.dtype.str not in DTYPES:
            _refuse(path, f"{f.name} has dtype {a.dtype} ({a.dtype.str})", ALLOWED)
        if a.ndim != 2 or a.shape[1] == 0:
            _refuse(path, f"{f.name} has shape {a.shape}", "2-D shards (rows, D) with D > 0")
        dtype = DTYPES[a.dtype.str]
        if arrays and a.shape[1] != arrays[0].shape[1]:
            _refuse(path, f"{f.name} has D={a.shape[1]} and {files[0].name} D={arrays[0].shape[1]}",
                    "one D for every shard")
        if dtypes and dtype != dtypes[0]:
            _refuse(path, f"{f.name} is {dtype} and {files[0].name} {dtypes[0]}", "one dtype for every shard")
        arrays.append(a.view(ml_dtypes.bfloat16) if dtype == "bfloat16" else a)
        dtypes.append(dtype)
    starts = np.concatenate([[0], np.cumsum([len(a) for a in arrays])]).astype(np.int64)
    shards = Shards(str(path), tuple(f.name for f in files), tuple(arrays), dtypes[0], arrays[0].shape[1], starts)
    if scan:
        scan_finite(shards)
    return shards


def scan_finite(shards: Shards) -> None:
    """Read every value once, SCAN_BYTES at a time, and refuse the first NaN or inf (file and row)."""
    uint, mask = EXPONENT[shards.dtype]
    for name, a in zip(shards.files, shards.arrays):
        step = max(1, SCAN_BYTES // (a.shape[1] * a.dtype.itemsize))
        for lo in range(0, len(a), step):
            bits = np.asarray(a[lo:lo + step]).view(uint) & uint(mask)
            bad = (bits == mask).any(axis=1)
            if bad.any():
                row = lo + int(np.argmax(bad))
                _refuse(shards.path, f"{name} row {row} holds NaN or inf", "finite values in every shard")


class RowStream:
    """The training rows of an epoch in a shuffled order, read on demand: `rows(epoch, start, count)`."""

    def __init__(self, shards: Shards, num_rows: int, block_rows: int, shuffle_blocks: int, seed: int,
                 scale: float = 1.0):
        self.shards, self.num_rows, self.dim = shards, int(num_rows), shards.dim
        self.block_rows, self.shuffle_blocks, self.seed, self.scale = block_rows, shuffle_blocks, seed, float(scale)
        self.num_blocks = math.ceil(self.num_rows / block_rows)
        self._layout = lru_cache(maxsize=2)(self._layout_of)
        self._window = lru_cache(maxsize=2)(self._window_of)

    def _layout_of(self, epoch: int):
        """The epoch's block order, and the first position of each window (then num_rows)."""
        order = np.random.default_rng([self.seed, epoch, 0]).permutation(self.num_blocks)
        sizes = np.minimum(self.block_rows, self.num_rows - order * self.block_rows)
        cum = np.concatenate([[0], np.cumsum(sizes)])
        return order, cum[np.r_[np.arange(0, self.num_blocks, self.shuffle_blocks), self.num_blocks]]

    def _window_of(self, epoch: int, w: int) -> np.ndarray:
        """The training rows (int64) of window w of the epoch, in their shuffled order."""
        order, _ = self._layout(epoch)
        blocks = order[w * self.shuffle_blocks:(w + 1) * self.shuffle_blocks]
        rows = np.concatenate([np.arange(b * self.block_rows, min((b + 1) * self.block_rows, self.num_rows))
                               for b in blocks])
        return rows[np.random.default_rng([self.seed, epoch, 1, w]).permutation(len(rows))]

    def positions(self, epoch: int, start: int, count: int) -> np.ndarray:
        """The training rows (int64, indices into the shards) at positions [start, start+count) of the epoch."""
        if not (0 <= start and count >= 0 and start + count <= self.num_rows):
            raise ValueError(f"rows [{start}, {start + count}) are outside the epoch's 0..{self.num_rows}")
        _, window_starts = self._layout(int(epoch))
        parts, pos, end = [], start, start + count
        w = int(np.searchsorted(window_starts, start, side="right")) - 1
        while pos < end:
            lo, hi = window_starts[w], window_starts[w + 1]
            parts.append(self._window(int(epoch), w)[pos - lo:min(end, hi) - lo])
            pos, w = min(end, hi), w + 1
        return np.concatenate(parts) if parts else np.empty(0, np.int64)

    def rows(self, epoch: int, start: int, count: int) -> np.ndarray:
        """float32 (count, dim): the rows at positions [start, start+count) of epoch `epoch`, times `scale`.
        Reads those rows only, in ascending file order."""
        ids = self.positions(epoch, start, count)
        order = np.argsort(ids, kind="stable")
        out = np.empty((count, self.dim), np.float32)
        out[order] = self.shards.take(ids[order])
        return out if self.scale == 1.0 else out * np.float32(self.scale)

    def unscale(self, x):
        """Rows in the model's own units again: x / scale."""
        return x / np.float32(self.scale)


def norm_sample(num_rows: int, norm_rows: int) -> np.ndarray:
    """The training rows (sorted int64) whose mean norm sets the factor: evenly spaced over all of them."""
    return np.unique(np.linspace(0, num_rows - 1, min(norm_rows, num_rows)).round().astype(np.int64))


def mean_norm_scale(shards: Shards, num_rows: int, norm_rows: int) -> float:
    """sqrt(D) / mean ||x|| over `norm_sample` (SAELens's expected_average_only_in)."""
    x = shards.take(norm_sample(num_rows, norm_rows))
    mean = float(np.linalg.norm(x.astype(np.float64), axis=1).mean())
    if mean == 0:
        _refuse(shards.path, f"the {len(x)} rows that set data.normalize=mean_norm are all zero",
                "rows with some non-zero values, or data.normalize=none")
    return math.sqrt(shards.dim) / mean


def load_activations(spec: DataSpec) -> Dataset:
    """data=activations: `Dataset.stream` reads the training rows; `test` holds the held-out rows
    (float32, scaled); `train` and `val` are empty (0, D)."""
    shards = open_shards(spec.path, scan=False)
    n_test = TEST_ROWS if spec.test_size is None else spec.test_size
    if n_test >= shards.num_rows:
        raise ConfigError(f"data.test_size={n_test} is not allowed for data.path={spec.path!r}; expected fewer than "
                          f"its {shards.num_rows} rows (the last data.test_size rows are held out for testing)")
    scan_finite(shards)
    n_train = shards.num_rows - n_test
    scale = mean_norm_scale(shards, n_train, spec.norm_rows) if spec.normalize == "mean_norm" else 1.0
    stream = RowStream(shards, n_train, spec.block_rows, spec.shuffle_blocks, spec.seed, scale)
    test = shards.take(np.arange(n_train, shards.num_rows)) * np.float32(scale)
    empty = np.zeros((0, shards.dim), np.float32)
    return Dataset(spec.name, empty, empty, test, source=str(spec.path), stream=stream)
