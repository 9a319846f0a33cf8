"""data=activations (aejax/data/activations.py): a folder of .npy shards, scanned, split, streamed in an
order that is a function of (seed, epoch) alone, normalised as SAELens's expected_average_only_in."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

from aejax.config import parse_run
from aejax.data import load_dataset
from aejax.data.activations import RowStream, norm_sample, open_shards
from aejax.data.spec import DataSpec
from aejax.errors import ConfigError
from conftest import compose

D = 6


def write_shards(folder, sizes, dtype=np.float32, seed=0):
    """Shards of `sizes` rows; row i of the concatenation is i + 1 in column 0 (so rows can be told apart)
    and random values elsewhere. Returns the float32 rows written (before any rounding to `dtype`)."""
    folder.mkdir(exist_ok=True)
    x = np.random.default_rng(seed).normal(size=(sum(sizes), D)).astype(np.float32)
    x[:, 0] = np.arange(1, len(x) + 1)
    for i, (a, b) in enumerate(zip(np.cumsum([0, *sizes[:-1]]), np.cumsum(sizes))):
        np.save(folder / f"shard_{i:03d}.npy", x[a:b].astype(dtype))
    return x


def spec(path, **kw) -> DataSpec:
    settings = dict(name="activations", path=str(path), test_size=50, block_rows=16, shuffle_blocks=3,
                    normalize="none", norm_rows=100)
    return DataSpec(**{**settings, **kw})


@pytest.fixture
def data(tmp_path):
    x = write_shards(tmp_path / "acts", [100, 250, 7, 143])   # 500 rows, uneven shards
    return x, load_dataset(spec(tmp_path / "acts"))


def test_an_epoch_is_a_permutation_of_the_training_rows_and_excludes_the_test_rows(data):
    x, ds = data
    stream = ds.stream
    assert (stream.num_rows, stream.dim) == (450, D) and ds.train.shape == (0, D) and ds.val.shape == (0, D)
    ids = np.sort(stream.rows(0, 0, stream.num_rows)[:, 0]).astype(int)
    assert (ids == np.arange(1, 451)).all()                      # each training row once
    np.testing.assert_array_equal(ds.test, x[450:])             # the last rows, held out
    assert ds.test.dtype == np.float32


def test_epochs_differ_and_the_same_epoch_is_the_same(data):
    _, ds = data
    s = ds.stream
    e0, e1 = s.rows(0, 0, s.num_rows), s.rows(1, 0, s.num_rows)
    assert not np.array_equal(e0, e1)
    again = RowStream(s.shards, s.num_rows, s.block_rows, s.shuffle_blocks, s.seed)   # a resumed run
    np.testing.assert_array_equal(again.rows(1, 123, 77), e1[123:200])
    other_seed = RowStream(s.shards, s.num_rows, s.block_rows, s.shuffle_blocks, s.seed + 1)
    assert not np.array_equal(other_seed.rows(1, 0, s.num_rows), e1)


@pytest.mark.parametrize("a, n, m", [(0, 1, 449), (5, 40, 3), (47, 0, 10), (440, 10, 0), (100, 200, 150)])
def test_consecutive_reads_join_up(data, a, n, m):
    s = data[1].stream
    np.testing.assert_array_equal(np.concatenate([s.rows(2, a, n), s.rows(2, a + n, m)]), s.rows(2, a, n + m))
    assert s.rows(2, a, n).shape == (n, D)


def test_out_of_range_reads_are_refused(data):
    s = data[1].stream
    for start, count in ((-1, 2), (449, 2), (0, 451)):
        with pytest.raises(ValueError):
            s.rows(0, start, count)


def test_rows_are_shuffled_within_windows_and_a_read_touches_only_its_windows(data):
    """Bounded memory, from the block logic: a read materialises exactly the rows it returns, and they
    come from at most shuffle_blocks blocks per window it spans; the whole data is never read."""
    s = data[1].stream
    seen = []
    real_take = s.shards.take
    object.__setattr__(s.shards, "take", lambda rows: (seen.append(rows.copy()), real_take(rows))[1])
    try:
        for start in range(0, s.num_rows - 10, 10):
            s.rows(0, start, 10)
            rows = seen[-1]
            assert len(rows) == 10 and (np.diff(rows) >= 0).all()   # only these rows, in file order
            blocks = np.unique(rows // s.block_rows)
            window_starts = s._layout(0)[1]       # windows hold unequal rows when the short last block is in one
            first, last = np.searchsorted(window_starts, [start, start + 9], "right")
            windows = last - first + 1
            assert len(blocks) <= windows * s.shuffle_blocks
    finally:
        object.__delattr__(s.shards, "take")
    # Within a window the order is shuffled, across windows blocks are permuted: not the file order.
    ids = s.rows(0, 0, s.num_rows)[:, 0]
    assert not (np.diff(ids) > 0).all()
    first_window = s.rows(0, 0, s.block_rows * s.shuffle_blocks)[:, 0].astype(int) - 1
    assert len(np.unique(first_window // s.block_rows)) <= s.shuffle_blocks


@pytest.mark.parametrize("dtype, tol", [(np.float16, 1e-3), (ml_dtypes.bfloat16, 8e-3)])
def test_16_bit_shards_give_the_float32_values(tmp_path, dtype, tol):
    x = write_shards(tmp_path / "f32", [60, 60])
    write_shards(tmp_path / "low", [60, 60], dtype=dtype)
    assert open_shards(tmp_path / "low").dtype == np.dtype(dtype).name
    a, b = (load_dataset(spec(tmp_path / name, test_size=20, normalize="mean_norm")) for name in ("f32", "low"))
    ra, rb = a.stream.rows(3, 0, 100), b.stream.rows(3, 0, 100)
    assert rb.dtype == np.float32
    np.testing.assert_allclose(rb / b.stream.scale, ra / a.stream.scale, rtol=tol, atol=tol)
    np.testing.assert_allclose(b.test / b.stream.scale, x[100:], rtol=tol, atol=tol)


def test_mean_norm_makes_the_sample_norm_sqrt_d_and_scales_the_test_split_alike(tmp_path):
    x = write_shards(tmp_path / "acts", [300, 200]) * 7.0   # norms far from sqrt(D)
    for i, part in enumerate(np.split(x, [300])):
        np.save(tmp_path / "acts" / f"shard_{i:03d}.npy", part)
    ds = load_dataset(spec(tmp_path / "acts", norm_rows=40, normalize="mean_norm"))
    s = ds.stream
    sample = x[norm_sample(s.num_rows, 40)] * s.scale
    assert len(sample) == 40
    assert math.isclose(np.linalg.norm(sample, axis=1).mean(), math.sqrt(D), rel_tol=1e-5)
    np.testing.assert_allclose(ds.test, x[450:] * s.scale, rtol=1e-6)
    np.testing.assert_allclose(s.unscale(s.rows(0, 0, 5)), x[s.positions(0, 0, 5)], rtol=1e-6)
    assert load_dataset(spec(tmp_path / "acts", normalize="none")).stream.scale == 1.0


def refusal(path, **kw) -> str:
    with pytest.raises(ConfigError) as err:
        load_dataset(spec(path, **kw))
    message = str(err.value)
    assert "\n" not in message and f"data.path={str(path)!r}" in message or "data.test_size" in message, message
    return message


def test_every_refusal_is_one_line_naming_the_file(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no .npy file" in refusal(empty)
    (empty / "notes.txt").write_text("x")
    assert "no .npy file" in refusal(empty)
    assert "not a folder" in refusal(tmp_path / "missing")

    write_shards(tmp_path / "dims", [60, 60])
    np.save(tmp_path / "dims" / "shard_009.npy", np.zeros((5, D + 1), np.float32))
    assert "shard_009.npy has D=7" in refusal(tmp_path / "dims")

    write_shards(tmp_path / "mixed", [60, 60])
    np.save(tmp_path / "mixed" / "shard_009.npy", np.zeros((5, D), np.float16))
    assert "shard_009.npy is float16" in refusal(tmp_path / "mixed")

    write_shards(tmp_path / "flat", [60, 60])
    np.save(tmp_path / "flat" / "shard_009.npy", np.zeros((5, D, 2), np.float32))
    assert "shard_009.npy has shape (5, 6, 2)" in refusal(tmp_path / "flat")

    write_shards(tmp_path / "f64", [60, 60], dtype=np.float64)
    assert "shard_000.npy has dtype float64" in refusal(tmp_path / "f64")

    write_shards(tmp_path / "ints", [60, 60], dtype=np.int32)
    assert "expected float16, float32 or bfloat16" in refusal(tmp_path / "ints")

    write_shards(tmp_path / "st", [60, 60])
    (tmp_path / "st" / "layer6.safetensors").write_bytes(b"\0" * 16)
    assert "layer6.safetensors" in refusal(tmp_path / "st")

    write_shards(tmp_path / "small", [60, 60])
    assert "data.test_size=120" in refusal(tmp_path / "small", test_size=120)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, ml_dtypes.bfloat16])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_is_refused_with_its_file_and_row(tmp_path, dtype, bad, monkeypatch):
    import aejax.data.activations as activations

    monkeypatch.setattr(activations, "SCAN_BYTES", 64)   # many scan blocks: the row must be found across them
    x = write_shards(tmp_path / "acts", [60, 60, 60], dtype=dtype).astype(dtype)
    x[137, 3] = bad
    np.save(tmp_path / "acts" / "shard_002.npy", x[120:])
    np.save(tmp_path / "acts" / "shard_001.npy", x[60:120])
    assert "shard_002.npy row 17 holds NaN or inf" in refusal(tmp_path / "acts")
    x[137, 3] = 0
    x[61, 0] = bad
    np.save(tmp_path / "acts" / "shard_002.npy", x[120:])
    np.save(tmp_path / "acts" / "shard_001.npy", x[60:120])
    assert "shard_001.npy row 1 holds NaN or inf" in refusal(tmp_path / "acts")


def test_the_preset_composes_and_requires_a_path(tmp_path):
    run = parse_run(compose(["data=activations", f"data.path={tmp_path}"]))
    assert (run.data.name, run.data.test_size, run.data.normalize) == ("activations", 10000, "mean_norm")
    with pytest.raises(ConfigError, match="data.path"):
        parse_run(compose(["data=activations"]))
