"""Exact top-k selection (aejax/selection.py): the sorting network and the bit search give the same mask as
NumPy, and an SAE population trains bitwise the same with either."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax import selection
from aejax.config import parse_run
from aejax.selection import at_least_kth_largest, bit_search, network_size, ordered_keys, sorting_network
from tests.conftest import trained
from tests.test_sae import sae_config


def awkward_rows(width: int) -> np.ndarray:
    """Three members' rows: distinct values, ties at zero, ties everywhere, -inf and +inf, all negative."""
    rng = np.random.default_rng(0)
    h = rng.normal(size=(3, 6, width)).astype(np.float32)
    h[0, 1, : width // 2] = 0.0
    h[1, 2] = np.round(h[1, 2], 1)
    h[2, 3, ::3] = -np.inf
    h[2, 5, 1::7] = np.inf
    h[2, 4] = -np.abs(h[2, 4])
    return h


@pytest.mark.parametrize("width,k_max", [(40, 8), (96, 16), (256, 16), (256, 60), (33, 1), (50, 16), (200, 16)])
def test_the_sorting_network_gives_numpys_mask_for_each_members_own_k(width, k_max):
    """Odd numbers of blocks to merge (40 of 8: 5; 96 of 16: 6, then 3; 33 of 1), widths padded to whole blocks
    (50 and 200 of 16), k per member under vmap up to k_max, and the bit search on the same rows."""
    h = awkward_rows(width)
    ks = np.array([1, max(1, k_max // 2), k_max])
    kth = np.take_along_axis(-np.sort(-h, axis=-1), (ks - 1)[:, None, None].repeat(6, 1), axis=-1)
    network = jax.jit(jax.vmap(lambda a, k: sorting_network(a, k, k_max)))(jnp.asarray(h), jnp.asarray(ks))
    np.testing.assert_array_equal(np.asarray(network), h >= kth)
    searched = jax.jit(jax.vmap(bit_search))(jnp.asarray(h), jnp.asarray(ks))
    np.testing.assert_array_equal(np.asarray(network), np.asarray(searched))


def test_both_methods_order_negative_zero_below_zero():
    """NumPy's >= calls -0.0 and 0.0 equal; the keys put -0.0 first, and both methods keep that order."""
    h = jnp.asarray([[3.0, -0.0, 0.0, -1.0, -0.0, 2.0, 0.0, -2.0]])
    for k in (3, 4, 5):
        network, searched = sorting_network(h, k, 8), bit_search(h, k)
        np.testing.assert_array_equal(network, searched)
        assert int(network.sum()) == {3: 4, 4: 4, 5: 6}[k]  # the ties at 0.0 (k = 3, 4) and -0.0 (k = 5) kept
    keys = np.asarray(ordered_keys(jnp.asarray([-np.inf, -1.0, -0.0, 0.0, 1e-30, np.inf])))
    assert (np.diff(keys.astype(np.int64)) > 0).all()


def test_network_size_is_the_power_of_two_at_or_above_k_max():
    assert [network_size(k) for k in (1, 2, 3, 16, 17, 60)] == [1, 2, 4, 16, 32, 64]


def test_an_sae_population_bounds_its_k_by_the_grid():
    with_grid = parse_run(sae_config("model.sae=topk", "+population.grid.model.k=[2,8]", "model.k=20"))
    assert with_grid.model.family_settings.k_max == 8   # model.k=20 is no member's k
    alone = parse_run(sae_config("model.sae=topk", "model.k=5"))
    assert alone.model.family_settings.k_max == 5


def test_a_topk_population_trains_bitwise_the_same_with_the_network_or_the_bit_search(tmp_path, monkeypatch):
    """Width 32, k 2 and 4: the network serves the code (K = 4 <= 32 / 8); AuxK runs too (dead after 5 steps)."""
    config = sae_config("model.sae=topk", "+population.grid.model.k=[2,4]", "model.dead_window=5", "trainer.epochs=2")
    assert selection.network_pays(32, 4)
    _, with_network = trained(config, tmp_path / "network")
    monkeypatch.setattr(selection, "network_pays", lambda width, k_max: False)
    _, with_search = trained(config, tmp_path / "search")
    for name in with_network:
        np.testing.assert_array_equal(np.asarray(with_network[name]), np.asarray(with_search[name]), err_msg=name)


def test_a_concrete_k_above_the_bound_takes_the_bit_search():
    """k = 20 with a bound of 8, eager or as a constant under jit (a user's own call), is still exact."""
    h = jnp.asarray(awkward_rows(64)[0])
    kth = -np.sort(-np.asarray(h), axis=-1)[:, 19:20]
    np.testing.assert_array_equal(np.asarray(at_least_kth_largest(h, jnp.int32(20), k_max=8)), np.asarray(h) >= kth)
    for k in (np.int64(20), jnp.int32(20)):
        got = jax.jit(lambda a: at_least_kth_largest(a, k, k_max=8))(h)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(h) >= kth)


def test_an_saes_own_k_is_bounded_only_by_what_member_call_hands_it():
    """A model built for model.k=4 (no grid) asked, under jit, for a traced k = 16: no bound comes with it, so
    the bit search keeps 16 a row; with member_call's bound the network serves (width 256, K = 4)."""
    from aejax.families import sae
    from aejax.config import model_spec
    from aejax.models import build_model

    spec = model_spec(family="sae", hidden=[], code_size=256, sae="topk", k=4)
    m = build_model(spec, 8, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (20, 8))
    pre = np.asarray(m.pre_activations(x))
    own = jax.jit(lambda a, k: m.encode(a, k=k))(x, 16)
    np.testing.assert_array_equal(np.asarray(own), np.maximum(np.where(pre >= np.sort(pre)[:, -16:-15], pre, 0), 0))
    call = sae.member_call(spec.family_settings, {"k": jnp.int32(3)})
    assert call["k_max"] == 4 and selection.network_pays(256, call["k_max"])
    bounded = jax.jit(lambda a, k: m.encode(a, **dict(call, k=k)))(x, 3)
    np.testing.assert_array_equal(np.asarray(bounded), np.maximum(np.where(pre >= np.sort(pre)[:, -3:-2], pre, 0), 0))
