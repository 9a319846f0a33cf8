"""dSprites (`data=dsprites`) and its small twin `data=shapes_toy`: binary sprites on a grid of
ground-truth factors.

**dSprites** (Matthey et al. 2017, deepmind/dsprites-dataset): shape (3: square, ellipse,
heart), scale (6: 0.5..1), orientation (40: `linspace(0, 2 pi, 40)`, both ends included, so
index 0 and 39 are one angle), posX and posY (32 each: `linspace(0, 1, 32)`); 737,280 binary
64x64 images, image `i` has the factors `f` with `i = f @ [245760, 40960, 1024, 32, 1]`
(the original's order, posY fastest; its colour factor has one value and is dropped).

- The original file `dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz` is used when it is found:
  `data.path` (the file, or a folder holding it), else `$AEJAX_DATA_ROOT` (or its `dsprites/`
  folder), else the user cache folder (`~/.cache/aejax/dsprites`). Its SHA-256 goes to provenance.
- Without it, aejax renders the same grid itself (one log line says so). These are aejax's
  renderings, not the original pixels: a square (side 20 px at scale 1), an ellipse (20 x 10 px)
  and a heart (the curve (x^2 + y^2 - 1)^3 = x^2 y^3, 20 px wide), turned by the orientation
  (clockwise on screen: rows grow downward), centred at 16 + 32 * pos pixels (posX: column,
  posY: row), so every sprite stays inside the centre 16..48 px plus its 14.2 px reach. A pixel is
  on when its centre lies inside the shape (no anti-aliasing), computed in NumPy float64 with
  + - * / and cos/sin only. Over the whole grid no pixel centre comes closer to an edge than
  7.8e-13 (in the shape's level function; a last-bit difference in cos/sin moves it by ~1e-15),
  so the images are the same bits on every machine: their SHA-256 is RENDERED_SHA256. Rendering
  the whole grid takes about 30 s on 2 CPU cores; it is cached (`rendered_grid`).

**shapes_toy**: the same renderer at 16x16 with three factors (shape 3, posX 8, posY 7; scale 1,
orientation 0; square side 6.6 px, centres 5..11 px): 168 images, for fast end-to-end tests of the
objectives and the metrics. The factor sizes differ on purpose, so a transposed factor axis fails
a test.

Splits. `Dataset.train` holds `data.train_size` grid images (null: the whole grid; fewer: a fixed
random subset), bit-packed (`np.packbits`, one uint8 row of D/8 bytes per image: the full dSprites
grid is 377 MB, not 12 GB of float32); `Dataset.train_decode` (`unpack`) turns a batch of rows
into float32 {0, 1} inside the compiled step. Training draws rows from it like any other data
(epochs of a permutation: every image once per epoch; disentanglement_lib draws i.i.d. with
replacement; the marginal of each example is the same uniform law on the grid). Test: `data.test_size`
factor rows drawn i.i.d. from the whole grid (as the metrics do), validation:
`round(data.val_fraction * data.test_size)` more, each with its own fixed seed; both float32.
Labels are the shape factor. `Dataset.ground_truth` samples factors and their images.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aejax.data.spec import DataSpec
from aejax.settings import require
from aejax.data.dataset import SPLIT_SEED, Dataset
from aejax.data.cache import ENV_VAR, cache_dir, locate, searched
from aejax.data.ground_truth import GroundTruthData, grid_factors, grid_strides
from aejax.errors import ConfigError

log = logging.getLogger("aejax.data")

FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
SHAPES = ("square", "ellipse", "heart")
HEART = (1.1384, 0.118)   # the heart curve's half-width (so it spans u in [-1, 1]) and the shift that centres it
REACH = 2 ** 0.5          # farthest point of any shape from its centre, in half-sides (the square's corner)
RENDER_VERSION = 1        # bump when the geometry changes: names the cache file
# SHA-256 of the packed full grid's bytes (`rendered_grid()`): the same on every machine.
RENDERED_SHA256 = "4d430a0de096b822fbb9868d33ef6945f1f0b3fd86a85a2e42e44983b65bed7e"
CHUNK = 2048              # images rendered at once (about 100 MB of float64 temporaries)


@dataclass(frozen=True)
class Sprites:
    """A grid of sprites: its factors, the image side and the geometry in pixels."""
    name: str
    factor_names: tuple
    factor_sizes: tuple
    size: int        # image side
    half: float      # half the square's side at scale 1
    margin: float    # from the border to the outermost sprite centre (>= REACH * half: no sprite leaves)

    @property
    def num_images(self) -> int:
        return int(np.prod(self.factor_sizes))


DSPRITES = Sprites("dsprites", ("shape", "scale", "orientation", "posX", "posY"), (3, 6, 40, 32, 32), 64, 10.0, 16.0)
SHAPES_TOY = Sprites("shapes_toy", ("shape", "posX", "posY"), (3, 8, 7), 16, 3.3, 5.0)
GRIDS = {g.name: g for g in (DSPRITES, SHAPES_TOY)}


def sprite_values(grid: Sprites, factors: np.ndarray):
    """Factor rows -> (shape, scale, angle, x, y): scale 1 and angle 0 where the grid lacks them."""
    col = dict(zip(grid.factor_names, np.asarray(factors).T))
    size = dict(zip(grid.factor_names, grid.factor_sizes))
    ones = np.ones(len(factors))
    scale = np.linspace(0.5, 1, size["scale"])[col["scale"]] if "scale" in col else ones
    angle = np.linspace(0, 2 * np.pi, size["orientation"])[col["orientation"]] if "orientation" in col else 0 * ones
    x, y = (np.linspace(0, 1, size[k])[col[k]] for k in ("posX", "posY"))
    return col["shape"], scale, angle, x, y


def _edges(grid: Sprites, shape: int, scale, angle, x, y):
    """Images of one shape: their pixels near the sprite, `level` (m, w, w) (<= 0: inside the shape),
    and the flat pixel indices (m, w, w) those are. w covers the largest sprite's reach; all other
    pixels are off. Only + - * / and cos/sin: the level values are the same on every machine up to
    the last bits of cos/sin, and no pixel centre lies that close to an edge (see the module doc)."""
    reach = REACH * grid.half * scale.max()
    w = int(np.ceil(2 * reach)) + 2
    cx, cy = (grid.margin + p * (grid.size - 2 * grid.margin) for p in (x, y))
    c0, r0 = (np.clip(np.floor(c - reach).astype(np.int64), 0, grid.size - w) for c in (cx, cy))
    cols, rows = c0[:, None] + np.arange(w), r0[:, None] + np.arange(w)
    dx, dy = cols + 0.5 - cx[:, None], rows + 0.5 - cy[:, None]           # pixel centres from the sprite centre
    cos, sin, k = (v[:, None, None] for v in (np.cos(angle), np.sin(angle), 1 / (scale * grid.half)))
    u = (cos * dx[:, None, :] + sin * dy[:, :, None]) * k                # turned back by -angle, in half-sides
    v = (cos * dy[:, :, None] - sin * dx[:, None, :]) * k
    if shape == 0:     # square
        level = np.maximum(np.abs(u), np.abs(v)) - 1
    elif shape == 1:   # ellipse, half-axes 1 and 0.5
        level = u * u + 4 * (v * v) - 1
    else:              # heart, lobes up (rows grow downward, so y = -v)
        hx, hy = u * HEART[0], HEART[1] - v * HEART[0]
        hx2, t = hx * hx, hx * hx + hy * hy - 1
        level = t * t * t - hx2 * (hy * hy * hy)
    return level, rows[:, :, None] * grid.size + cols[:, None, :]


def render(grid: Sprites, factors: np.ndarray, packed: bool = False) -> np.ndarray:
    """Factor rows `(n, F)` -> images `(n, size * size)` float32 in {0, 1} (`packed`: uint8 `np.packbits` rows).

    Rendered in chunks of one shape and similar scales (in grid order), whatever the row order."""
    factors = np.asarray(factors, np.int64)
    out = np.zeros((len(factors), grid.size ** 2 // 8 if packed else grid.size ** 2),
                   np.uint8 if packed else np.float32)
    order = np.argsort(factors @ grid_strides(grid.factor_sizes), kind="stable")
    shapes = factors[order, 0]
    for start in range(0, len(order), CHUNK):
        rows = order[start:start + CHUNK]
        for shape in np.unique(shapes[start:start + CHUNK]):
            part = rows[shapes[start:start + CHUNK] == shape]
            _, *values = sprite_values(grid, factors[part])
            level, pixels = _edges(grid, int(shape), *values)
            images = np.zeros((len(part), grid.size ** 2), bool)
            np.put_along_axis(images, pixels.reshape(len(part), -1), (level <= 0).reshape(len(part), -1), axis=1)
            out[part] = np.packbits(images, axis=1) if packed else images
    return out


def unpack(rows):
    """Bit-packed rows `(B, D/8)` uint8 -> `(B, D)` float32 in {0, 1}: pure JAX (`Dataset.train_decode`)."""
    import jax.numpy as jnp  # here: choosing a dataset (aejax-train's pre-check) needs no JAX

    return jnp.unpackbits(rows, axis=-1).astype(jnp.float32)


def check_sprites_spec(spec: DataSpec) -> None:
    """The settings data=dsprites and data=shapes_toy read, against their grid (aejax.data.check_spec)."""
    grid, name = GRIDS[spec.name], spec.name
    n = grid.num_images
    require(spec.train_size is None or spec.train_size <= n, "data.train_size", spec.train_size,
            f"null (all {n} images of the {name} grid) or an integer in [1, {n}]")
    require(spec.test_size is not None and spec.test_size <= n, "data.test_size", spec.test_size,
            f"an integer in [1, {n}] for data.name={name} (test images drawn from its grid)")
    require(spec.binarize == "none", "data.binarize", spec.binarize,
            f"none for data.name={name} (its images are binary already)")
    if grid is SHAPES_TOY:
        require(spec.path is None, "data.path", spec.path, "null for data.name=shapes_toy (aejax renders it)")
    elif spec.path:
        original_file(spec)  # a data.path that names no file: one line now, before anything runs


def original_file(spec: DataSpec) -> Path | None:
    """The original dSprites file: `data.path` (the file, or a folder holding it), else
    $AEJAX_DATA_ROOT (or its dsprites/ folder), else the user cache folder (`aejax.data.cache`);
    None: render the grid."""
    if spec.path:
        path = Path(spec.path).expanduser()
        path = path / FILE if path.is_dir() else path
        if not path.is_file():
            raise ConfigError(f"data.path={spec.path!r} is not allowed; expected the dSprites file {FILE} or a folder "
                              f"holding it (no such file; null: look in ${ENV_VAR} and {cache_dir('dsprites')}, "
                              f"else render)")
        return path
    folder = locate("dsprites", [FILE])
    return None if folder is None else folder / FILE


def read_original(path: Path, grid: Sprites = DSPRITES) -> np.ndarray:
    """The original file's images as packed rows `(737280, 512)`, read in chunks (never 3 GB at once);
    its factor classes (colour first, one value) must be the grid in index order."""
    where = f"data.name={grid.name!r}: {path}"
    n, pixels = grid.num_images, grid.size ** 2
    try:
        with zipfile.ZipFile(path) as npz:
            missing = {"imgs.npy", "latents_classes.npy"} - set(npz.namelist())
            if missing:
                raise ConfigError(f"{where} lacks {', '.join(sorted(missing))}, which is not allowed; expected the "
                                  f"original {FILE} (keys imgs, latents_classes, latents_values)")
            with npz.open("latents_classes.npy") as f:
                classes = np.lib.format.read_array(f, allow_pickle=False)
            if classes.shape != (n, len(grid.factor_sizes) + 1) or not (
                    (classes[:, 0] == 0).all() and (classes[:, 1:] == grid_factors(grid.factor_sizes)).all()):
                raise ConfigError(f"{where}: latents_classes is not the dSprites grid in index order, which is not "
                                  f"allowed; expected the original {FILE}")
            with npz.open("imgs.npy") as f:
                version = np.lib.format.read_magic(f)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, fortran, dtype = read_header(f)
                if shape != (n, grid.size, grid.size) or dtype != np.uint8 or fortran:
                    raise ConfigError(f"{where}: imgs has shape {shape} and dtype {dtype}, which is not allowed; "
                                      f"expected ({n}, {grid.size}, {grid.size}) uint8 (the original {FILE})")
                out = np.empty((n, pixels // 8), np.uint8)
                for start in range(0, n, 16384):
                    count = min(16384, n - start)
                    block = np.frombuffer(f.read(count * pixels), np.uint8).reshape(count, pixels)
                    if block.max(initial=0) > 1:
                        raise ConfigError(f"{where}: imgs holds values above 1, which is not allowed; expected "
                                          f"the original binary images (0 or 1)")
                    out[start:start + count] = np.packbits(block, axis=1)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise ConfigError(f"{where} cannot be read ({type(err).__name__}: {err}); expected the original "
                          f"{FILE}") from None
    return out


def rendered_grid(grid: Sprites = DSPRITES, expected: str = RENDERED_SHA256) -> np.ndarray:
    """aejax's rendering of the whole grid, packed `(737280, 512)` for dSprites: from the cache
    file (in `cache_dir("dsprites")`) when its SHA-256 is `expected`, else rendered (about 30 s) and cached."""
    cache = cache_dir("dsprites") / f"aejax_render_v{RENDER_VERSION}_{grid.name}.npy"
    try:
        table = np.load(cache, allow_pickle=False)
        if table.shape == (grid.num_images, grid.size ** 2 // 8) and hashlib.sha256(table).hexdigest() == expected:
            return table
    except (OSError, ValueError):
        pass  # no cache yet, or a damaged one: render again
    start = time.perf_counter()
    table = render(grid, grid_factors(grid.factor_sizes), packed=True)
    log.info("%s: rendered the %d images in %.0f s", grid.name, len(table), time.perf_counter() - start)
    if hashlib.sha256(table).hexdigest() != expected:  # never cache other pixels than the reference's
        log.warning("dsprites: this machine's rendering differs from aejax's reference (SHA-256); not cached")
        return table
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_name(f"{cache.stem}.{os.getpid()}.part.npy")
        np.save(partial, table)
        partial.replace(cache)  # atomic: a half-written cache never carries the real name
    except OSError as err:
        log.info("dsprites: cannot cache the rendered grid in %s (%s)", cache.parent, err)
    return table


def load_sprites(spec: DataSpec) -> Dataset:
    """data=dsprites or data=shapes_toy: the Dataset described in the module doc."""
    grid = GRIDS[spec.name]
    check_sprites_spec(spec)
    n, strides = grid.num_images, grid_strides(grid.factor_sizes)
    source = original_file(spec) if grid is DSPRITES else None
    if grid is DSPRITES and source is None:
        log.warning("dsprites: %s is in none of %s: using aejax's own rendering of the dSprites grid, not the "
                    "original pixels", FILE, searched("dsprites"))
    whole = spec.train_size in (None, n)
    table = read_original(source) if source else rendered_grid() if grid is DSPRITES and whole else None
    if table is None and whole:  # shapes_toy: instant
        table = render(grid, grid_factors(grid.factor_sizes), packed=True)

    def observe(factors):
        return np.unpackbits(table[factors @ strides], axis=1).astype(np.float32) if table is not None \
            else render(grid, factors)

    truth = GroundTruthData(grid.factor_sizes, grid.factor_names, observe, (grid.size, grid.size, 1))
    if whole:
        train_factors, train = grid_factors(grid.factor_sizes), table
    else:
        subset = np.random.default_rng(SPLIT_SEED).permutation(n)[:spec.train_size]  # fixed, never a run's seed
        train_factors = grid_factors(grid.factor_sizes)[subset]
        train = table[train_factors @ strides] if table is not None else render(grid, train_factors, packed=True)
    test_factors = truth.sample_factors(spec.test_size, np.random.default_rng(SPLIT_SEED + 2))
    val_factors = truth.sample_factors(int(round(spec.val_fraction * spec.test_size)),
                                       np.random.default_rng(SPLIT_SEED + 1))
    val, test = truth.observations(val_factors), truth.observations(test_factors)
    labels = [f[:, 0].astype(np.int32) for f in (train_factors, val_factors, test_factors)]
    return Dataset(spec.name, train, val, test, *labels, image_shape=(grid.size, grid.size, 1), label_names=SHAPES,
                   source=None if source is None else str(source), train_decode=unpack, ground_truth=truth,
                   train_factors=train_factors, val_factors=val_factors, test_factors=test_factors)
