"""trainer.shuffle: each epoch's order of the rows (aejax/shuffle.py) and the engine's use of it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax.shuffle import feistel_permutation
from aejax.train import SHUFFLE, make_member_program


@pytest.mark.parametrize("n", [1, 2, 3, 5, 64, 1000, 4097, 102_400])
def test_feistel_gives_a_permutation_of_every_size(n):
    for seed in range(3):
        order = np.asarray(feistel_permutation(jax.random.key(seed), n))
        assert order.dtype == np.int32
        np.testing.assert_array_equal(np.sort(order), np.arange(n))


def test_feistel_is_drawn_from_its_key():
    a, b = (np.asarray(feistel_permutation(jax.random.key(s), 1000)) for s in (0, 1))
    np.testing.assert_array_equal(a, np.asarray(feistel_permutation(jax.random.key(0), 1000)))
    assert (a != b).mean() > 0.9
    assert (a != np.arange(1000)).mean() > 0.9


def test_feistel_places_each_row_uniformly_and_independently_of_its_neighbours():
    """Over 4,000 keys, the slot of each of 10 rows is uniform (a chi-square test of the 10 x 10 table of counts,
    400 expected in each cell; p = 1e-4 at 134 for 81 degrees of freedom) and, within one order of 100,000 rows,
    consecutive rows land far apart (neighbours stay neighbours in a weak permutation)."""
    orders = np.asarray(jax.vmap(lambda k: feistel_permutation(k, 10))(jax.random.split(jax.random.key(0), 4000)))
    counts = np.stack([np.bincount(orders[:, slot], minlength=10) for slot in range(10)])
    chi2 = ((counts - 400.0) ** 2 / 400.0).sum()
    assert chi2 < 134, chi2

    order = np.asarray(feistel_permutation(jax.random.key(1), 100_000))
    assert np.mean(np.abs(np.diff(order)) <= 10) < 0.001
    assert abs(np.corrcoef(np.arange(100_000), order)[0, 1]) < 0.02


@pytest.mark.parametrize("shuffle", ["sort", "feistel"])
def test_every_epoch_visits_each_row_once_in_its_own_order(shuffle):
    """The member program's batches: each epoch is a permutation of the rows, epochs differ, and the order is the
    method's draw from the member's shuffle key (sort: jax.random.permutation, the order of every run before the
    setting)."""
    n, batch = 96, 8

    def step(state, x, key, hp, with_norms):
        return state, {"loss": jnp.float32(0), "rows": x[:, 0]}

    program = make_member_program(step, n, batch, shuffle=shuffle)
    key = jax.random.key(7)
    state = {"params": jnp.zeros(()), "diverged_at": jnp.int32(0)}
    x = jnp.arange(n, dtype=jnp.float32)[:, None]
    _, terms = jax.jit(program, static_argnums=(5, 6))(state, key, x, {}, 0, 2, n // batch)
    rows = np.asarray(terms["rows"]).reshape(2, n).astype(int)
    for epoch in rows:
        np.testing.assert_array_equal(np.sort(epoch), np.arange(n))
    assert (rows[0] != rows[1]).any()
    draw = jax.random.permutation if shuffle == "sort" else feistel_permutation
    want = draw(jax.random.fold_in(jax.random.fold_in(key, SHUFFLE), 1), n)
    np.testing.assert_array_equal(rows[1], np.asarray(want))


def test_trainer_shuffle_reaches_the_run(tmp_path):
    """aejax-train's setting orders the rows of the run's program: the same run (same seed, so the same initial
    parameters) ends with other parameters under the other order, and the config that ran records it."""
    import yaml

    from conftest import TINY, compose, trained

    params = {}
    for shuffle in ("sort", "feistel"):
        _, params[shuffle] = trained(compose([*TINY, "trainer.epochs=1", f"trainer.shuffle={shuffle}"]),
                                     tmp_path / shuffle)
        assert yaml.safe_load((tmp_path / shuffle / "config.yaml").read_text())["trainer"]["shuffle"] == shuffle
    a, b = (jax.tree.leaves(params[s]) for s in ("sort", "feistel"))
    assert any(not np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))
