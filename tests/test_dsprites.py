"""dSprites (`data=dsprites`) and `data=shapes_toy`: the grid, the renderer's geometry and
stability, the packed training rows, the original file's lookup and reader, the render cache."""

import hashlib
import logging
import time
import zipfile

import jax
import numpy as np
import pytest

from aejax.config import DataSpec, parse_run
from aejax.data import load_dataset
from aejax.data.dsprites import (DSPRITES, FILE, SHAPES_TOY, _edges, original_file, read_original, render,
                                 rendered_grid, sprite_values)
from aejax.data.ground_truth import GroundTruthData, grid_factors, grid_strides
from aejax.errors import ConfigError
from conftest import compose

# SHA-256 of the packed renders of FIXED_ROWS (below) and of the whole shapes_toy grid. A change
# means the images changed: bump RENDER_VERSION and RENDERED_SHA256 in aejax/data/dsprites.py.
FIXED_SHA256 = "9e36df48eebc334d871381c7c2886ea40e2ec92e1e4cde5fc1918a93e4022594"
TOY_SHA256 = "fc2fc3002e1c753a89a1ec6995a31ced9b19069d53c02240ef931fba8333aa2c"


def fixed_rows() -> np.ndarray:
    """300 random grid rows (fixed seed) and the 4 corner positions of every shape, scale 1, at 3 angles."""
    rng = np.random.default_rng(0)
    corners = [[s, 5, o, x, y] for s in range(3) for o in (0, 13, 39) for x in (0, 31) for y in (0, 31)]
    return np.concatenate([np.stack([rng.integers(n, size=300) for n in DSPRITES.factor_sizes], 1), corners])


def images(rows, grid=DSPRITES):
    return render(grid, np.asarray(rows)).reshape(-1, grid.size, grid.size)


def test_grid_size_and_index_order_are_the_originals():
    assert DSPRITES.factor_sizes == (3, 6, 40, 32, 32) and DSPRITES.num_images == 737_280
    strides = grid_strides(DSPRITES.factor_sizes)
    np.testing.assert_array_equal(strides, [245760, 40960, 1024, 32, 1])  # latents_bases without colour
    factors = grid_factors(DSPRITES.factor_sizes)
    assert factors.shape == (737_280, 5) and factors.dtype == np.int64
    np.testing.assert_array_equal(factors @ strides, np.arange(737_280))  # index = factors . bases
    np.testing.assert_array_equal(factors[[0, 1, 32, 1024, 40960, 245760, -1]],
                                  [[0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [0, 0, 1, 0, 0],
                                   [0, 1, 0, 0, 0], [1, 0, 0, 0, 0], [2, 5, 39, 31, 31]])
    # The factor values of the original's metadata.
    shape, scale, angle, x, y = sprite_values(DSPRITES, factors[[0, -1]])
    np.testing.assert_allclose([scale[1], angle[1], x[1], y[1]], [1, 2 * np.pi, 1, 1])
    np.testing.assert_allclose(sprite_values(DSPRITES, [[0, 1, 1, 1, 0]])[1:4], [[0.6], [0.16110732], [0.03225806]],
                               rtol=1e-6)


def test_area_grows_with_scale():
    for shape in range(3):
        for orientation in (0, 7):
            area = images([[shape, s, orientation, 16, 16] for s in range(6)]).sum(axis=(1, 2))
            assert np.all(np.diff(area) > 0), (shape, orientation, area)
    # About (scale * 20 px)^2 for the square at angle 0.
    square = images([[0, s, 0, 16, 16] for s in range(6)]).sum(axis=(1, 2))
    np.testing.assert_allclose(square, (np.linspace(0.5, 1, 6) * 20) ** 2, rtol=0.15)


def test_orientation_turns_the_sprite_and_a_full_turn_is_the_same_image():
    for shape in range(3):
        for scale in range(6):
            turns = images([[shape, scale, o, 10, 20] for o in range(40)])
            np.testing.assert_array_equal(turns[0], turns[39])  # 0 and 2 pi: bitwise the same
            # A turn keeps the area (up to pixel rounding) but moves pixels.
            area = turns.sum(axis=(1, 2))
            assert area.max() <= 1.25 * area.min() + 4, (shape, scale, area)
            assert (turns[0] != turns[5]).any(), (shape, scale)
    heart = images([[2, 5, o, 16, 16] for o in range(39)])
    assert len({im.tobytes() for im in heart}) == 39  # the heart has no symmetry: every angle differs
    # Half a turn flips the heart upside down (20 of 39 steps is not exactly pi: compare rows' mass).
    up, down = heart[0].sum(axis=1), images([[2, 5, 19, 16, 16], [2, 5, 20, 16, 16]]).sum(axis=2).mean(0)
    assert np.argmax(up) < 32 < np.argmax(down)  # the wide lobes on top, then at the bottom


def test_position_moves_the_centroid_monotonically():
    cols, rows = np.arange(64), np.arange(64)[:, None]
    for shape in range(3):
        along_x = images([[shape, 3, 11, p, 9] for p in range(32)])
        along_y = images([[shape, 3, 11, 9, p] for p in range(32)])
        cx = (along_x * cols).sum(axis=(1, 2)) / along_x.sum(axis=(1, 2))
        cy = (along_y * rows).sum(axis=(1, 2)) / along_y.sum(axis=(1, 2))
        assert np.all(np.diff(cx) > 0) and np.all(np.diff(cy) > 0), shape
        # About 32/31 px a step, from the centre half's edge to the other; the other axis stays.
        np.testing.assert_allclose(np.diff(cx), 32 / 31, atol=0.5)
        np.testing.assert_allclose(np.ptp((along_x * rows).sum(axis=(1, 2)) / along_x.sum(axis=(1, 2))), 0, atol=0.6)


def test_no_sprite_leaves_the_image():
    rows = [[s, 5, o, x, y] for s in range(3) for o in range(40) for x in (0, 31) for y in (0, 31)]
    im = images(rows)
    assert im.sum(axis=(1, 2)).min() > 100
    assert not im[:, [0, -1], :].any() and not im[:, :, [0, -1]].any()
    toy = images(grid_factors(SHAPES_TOY.factor_sizes), SHAPES_TOY)
    assert toy.sum(axis=(1, 2)).min() > 15 and not toy[:, [0, -1], :].any() and not toy[:, :, [0, -1]].any()


def test_renderer_is_bitwise_stable_and_far_from_every_edge():
    rows = fixed_rows()
    assert hashlib.sha256(render(DSPRITES, rows, packed=True)).hexdigest() == FIXED_SHA256
    toy = render(SHAPES_TOY, grid_factors(SHAPES_TOY.factor_sizes), packed=True)
    assert hashlib.sha256(toy).hexdigest() == TOY_SHA256
    # No pixel centre is within reach of a last-bit difference in cos/sin (~1e-15 in the level).
    for grid, factors in ((DSPRITES, rows), (SHAPES_TOY, grid_factors(SHAPES_TOY.factor_sizes))):
        for shape in range(3):
            part = factors[factors[:, 0] == shape]
            level, _ = _edges(grid, shape, *sprite_values(grid, part)[1:])
            assert np.abs(level).min() > 1e-12, (grid.name, shape)
    # Rendering is independent of the order and the company of the rows.
    np.testing.assert_array_equal(render(DSPRITES, rows[::-1])[::-1], render(DSPRITES, rows))
    np.testing.assert_array_equal(render(DSPRITES, rows[:1]), render(DSPRITES, rows)[:1])


def test_dsprites_with_a_small_train_size_loads_fast_and_its_rows_decode_to_the_renders(caplog):
    config = compose(["data=dsprites", "data.train_size=3000", "data.test_size=400"])
    start = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="aejax"):
        data = load_dataset(parse_run(config).data)
    assert time.perf_counter() - start < 15
    assert sum("aejax's own rendering" in r.getMessage() for r in caplog.records) == 1
    assert data.source is None and data.image_shape == (64, 64, 1) and data.dim == 4096
    assert data.train.shape == (3000, 512) and data.train.dtype == np.uint8  # 512 bytes an image
    assert data.val.shape == (40, 4096) and data.test.shape == (400, 4096) and data.test.dtype == np.float32
    assert data.train_factors.shape == (3000, 5) and data.train_factors.dtype == np.int64
    assert len({tuple(f) for f in data.train_factors}) == 3000  # a subset of the grid, no repeats
    np.testing.assert_array_equal(data.train_labels, data.train_factors[:, 0])
    assert data.label_names == ("square", "ellipse", "heart")
    decoded = jax.jit(data.train_decode)(data.train[:64])
    assert decoded.dtype == np.float32 and decoded.shape == (64, 4096)
    np.testing.assert_array_equal(np.asarray(decoded), render(DSPRITES, data.train_factors[:64]))
    truth = data.ground_truth
    assert isinstance(truth, GroundTruthData) and truth.image_shape == (64, 64, 1)
    assert truth.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    assert truth.factor_sizes == (3, 6, 40, 32, 32)
    np.testing.assert_array_equal(truth.observations(data.test_factors), data.test)
    np.testing.assert_array_equal(truth.observations(data.val_factors), data.val)
    # Fixed splits: the same whatever the run.
    again = load_dataset(DataSpec(name="dsprites", train_size=3000, test_size=400))
    np.testing.assert_array_equal(again.train, data.train)
    np.testing.assert_array_equal(again.test_factors, data.test_factors)


def test_shapes_toy_is_the_whole_small_grid():
    data = load_dataset(parse_run(compose(["data=shapes_toy"])).data)
    assert data.ground_truth.factor_sizes == (3, 8, 7) and data.ground_truth.factor_names == ("shape", "posX", "posY")
    assert data.train.shape == (168, 32) and data.dim == 256 and data.image_shape == (16, 16, 1)
    np.testing.assert_array_equal(data.train_factors, grid_factors((3, 8, 7)))
    np.testing.assert_array_equal(np.asarray(data.train_decode(data.train)),
                                  render(SHAPES_TOY, grid_factors((3, 8, 7))))
    assert data.test.shape == (128, 256) and data.val.shape == (32, 256)
    assert len({r.tobytes() for r in data.train}) == 168  # every factor row is its own image


def test_ground_truth_sampling():
    truth = load_dataset(DataSpec(name="shapes_toy", test_size=10)).ground_truth
    f = truth.sample_factors(5000, np.random.default_rng(1))
    assert f.shape == (5000, 3) and f.dtype == np.int64
    assert (f.min(0) == 0).all() and (f.max(0) == np.array([2, 7, 6])).all()
    np.testing.assert_array_equal(f, truth.sample_factors(5000, np.random.default_rng(1)))
    for bad in (f[:, :2], f.astype(float), f + np.array([0, 0, 1])):
        with pytest.raises(ValueError):
            truth.observations(bad)


def test_the_original_file_is_found_and_read(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("AEJAX_DATA_ROOT", str(tmp_path / "root"))
    assert original_file(DataSpec(name="dsprites")) is None
    for place in (tmp_path / "cache" / "aejax" / "dsprites", tmp_path / "root" / "dsprites", tmp_path / "root"):
        place.mkdir(parents=True, exist_ok=True)
        (place / FILE).write_bytes(b"")
        assert original_file(DataSpec(name="dsprites")) == place / FILE  # data root before the cache
    mine = tmp_path / "mine.npz"
    mine.write_bytes(b"")
    assert original_file(DataSpec(name="dsprites", path=str(mine))) == mine
    assert original_file(DataSpec(name="dsprites", path=str(tmp_path / "root"))) == tmp_path / "root" / FILE
    with pytest.raises(ConfigError, match=r"^data.path='/nowhere/x.npz' is not allowed; expected the dSprites file"):
        load_dataset(DataSpec(name="dsprites", path="/nowhere/x.npz", test_size=10))
    with pytest.raises(ConfigError, match="cannot be read"):
        load_dataset(DataSpec(name="dsprites", path=str(mine), train_size=10, test_size=10))
    # The reader, on a file laid out as the original (colour column first), at shapes_toy's size.
    factors = grid_factors(SHAPES_TOY.factor_sizes)
    imgs = images(factors, SHAPES_TOY).astype(np.uint8)
    classes = np.concatenate([np.zeros((168, 1), np.int64), factors], axis=1)
    np.savez_compressed(tmp_path / "toy.npz", imgs=imgs, latents_classes=classes, latents_values=classes * 1.0)
    np.testing.assert_array_equal(read_original(tmp_path / "toy.npz", SHAPES_TOY),
                                  render(SHAPES_TOY, factors, packed=True))
    np.savez(tmp_path / "shuffled.npz", imgs=imgs, latents_classes=classes[::-1])
    with pytest.raises(ConfigError, match="latents_classes is not the dSprites grid in index order"):
        read_original(tmp_path / "shuffled.npz", SHAPES_TOY)
    with zipfile.ZipFile(tmp_path / "nokeys.npz", "w") as z:
        z.writestr("other.npy", b"")
    with pytest.raises(ConfigError, match="lacks imgs.npy"):
        read_original(tmp_path / "nokeys.npz", SHAPES_TOY)


def test_the_rendered_grid_is_cached_by_checksum(tmp_path, monkeypatch):
    import aejax.data.dsprites as dsprites

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    table = rendered_grid(SHAPES_TOY, TOY_SHA256)
    (cache,) = (tmp_path / "aejax" / "dsprites").iterdir()
    assert cache.name == "aejax_render_v1_shapes_toy.npy"
    monkeypatch.setattr(dsprites, "render", lambda *a, **k: pytest.fail("rendered again"))
    np.testing.assert_array_equal(rendered_grid(SHAPES_TOY, TOY_SHA256), table)
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    np.save(cache, table ^ 1)  # damaged: rendered again and rewritten
    np.testing.assert_array_equal(rendered_grid(SHAPES_TOY, TOY_SHA256), table)
    np.testing.assert_array_equal(np.load(cache), table)
    cache.unlink()
    rendered_grid(SHAPES_TOY, "another checksum")  # a rendering that is not the reference is never cached
    assert not cache.exists()
