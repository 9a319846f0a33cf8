"""Retrieval with compact codes: precision at k against a brute-force count, bits, bad input."""

import numpy as np
import pytest

from aejax.studies import retrieval
from aejax.studies.retrieval import precision_at_k, to_bits


def brute_force(database, labels, queries, query_labels, k, distance):
    if distance == "euclidean":
        d = ((queries[:, None, :] - database[None, :, :]) ** 2).sum(-1)
    else:
        d = (queries[:, None, :] != database[None, :, :]).sum(-1)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]  # ties in database order
    return float((labels[order] == query_labels[:, None]).mean())


@pytest.mark.parametrize("distance", ["euclidean", "hamming"])
def test_precision_matches_brute_force(distance, monkeypatch):
    monkeypatch.setattr(retrieval, "QUERY_CHUNK", 7)  # several chunks and a partial last one
    rng = np.random.default_rng(0)
    database, queries = rng.normal(size=(300, 6)), rng.normal(size=(40, 6))
    if distance == "hamming":
        database, queries = to_bits(database, database), to_bits(queries, database)
    labels, query_labels = rng.integers(0, 3, 300), rng.integers(0, 3, 40)
    got = precision_at_k(database, labels, queries, query_labels, ks=(1, 5, 20), distance=distance)
    for k in (1, 5, 20):
        want = brute_force(database, labels, queries, query_labels, k, distance)
        assert got[k] == pytest.approx(want, abs=1e-9), k


def test_class_separated_codes_retrieve_perfectly_and_noise_does_not():
    rng = np.random.default_rng(1)
    labels, query_labels = np.repeat(np.arange(4), 50), np.repeat(np.arange(4), 5)
    centres = 10 * np.eye(4)
    database = centres[labels] + rng.normal(size=(200, 4))
    queries = centres[query_labels] + rng.normal(size=(20, 4))
    assert precision_at_k(database, labels, queries, query_labels, ks=(10,))[10] == 1.0
    shuffled = rng.permutation(labels)
    assert precision_at_k(database, shuffled, queries, query_labels, ks=(10,))[10] < 0.6


def test_bits_split_the_database_in_half_and_bad_distance_is_named():
    rng = np.random.default_rng(2)
    codes = rng.normal(size=(1000, 8))
    bits = to_bits(codes, codes)
    assert set(np.unique(bits)) == {-1.0, 1.0}
    np.testing.assert_allclose((bits > 0).mean(axis=0), 0.5)
    with pytest.raises(ValueError, match="distance='cosine' is not allowed; expected euclidean or hamming"):
        precision_at_k(codes, np.zeros(1000), codes[:3], np.zeros(3), distance="cosine")


def test_report_script_on_a_finished_run(finished_digits_run, tmp_path, monkeypatch, capsys):
    import json

    from conftest import run_report

    out = tmp_path / "results.json"
    status, shown, _ = run_report("retrieval", [str(finished_digits_run), "--out", str(out)], monkeypatch, capsys)
    assert status == 0
    results = json.loads(out.read_text())["results"]
    assert list(results) == ["pixels, floats", "PCA 8, floats", "autoencoder 8, floats",
                             "random projection 8, bits", "PCA 8, bits", "autoencoder 8, bits"]
    for name, row in results.items():  # the printed table is the file's figures
        assert f"| {name} | {row['cost']} | {row['P@1']:.3f} | {row['P@10']:.3f} | {row['P@100']:.3f} |" in shown
        assert all(0.0 <= row[f"P@{k}"] <= 1.0 for k in (1, 10, 100))
    # Labels line up with images: nearest-neighbour pixels find the class (chance is 0.1).
    assert results["pixels, floats"]["P@1"] > 0.7
