"""Linear probes on few labels: balanced subsets, and accuracy that tracks how separable the features are."""

import numpy as np
import pytest

from aejax.studies.semi_supervised import labelled_subset, probe_accuracy


def test_subset_is_balanced_distinct_and_seeded():
    labels = np.repeat(np.arange(5), [30, 40, 50, 60, 70])
    chosen = labelled_subset(labels, 7, seed=0)
    assert len(set(chosen)) == 35
    np.testing.assert_array_equal(np.bincount(labels[chosen]), [7] * 5)
    np.testing.assert_array_equal(chosen, labelled_subset(labels, 7, seed=0))
    assert not np.array_equal(chosen, labelled_subset(labels, 7, seed=1))
    with pytest.raises(ValueError, match="per_class=31 is not allowed; expected at most 30"):
        labelled_subset(labels, 31, seed=0)


def test_probe_accuracy_separable_against_noise():
    rng = np.random.default_rng(0)
    y_train, y_test = np.repeat(np.arange(4), 100), np.repeat(np.arange(4), 50)
    centres = 5 * rng.normal(size=(4, 10))
    x_train, x_test = centres[y_train] + rng.normal(size=(400, 10)), centres[y_test] + rng.normal(size=(200, 10))
    good = probe_accuracy(x_train, y_train, x_test, y_test, per_class=5, seeds=(0, 1, 2))
    assert good["mean"] > 0.95 and len(good["per_seed"]) == 3
    noise = probe_accuracy(rng.normal(size=(400, 10)), y_train, rng.normal(size=(200, 10)), y_test, per_class=5,
                           seeds=(0, 1, 2))
    assert noise["mean"] < 0.45  # chance is 0.25


def test_report_script_on_a_finished_run(finished_digits_run, tmp_path, monkeypatch, capsys):
    import json

    from conftest import run_report

    out = tmp_path / "results.json"
    status, shown, _ = run_report("semi_supervised", [str(finished_digits_run), "--per-class", "1", "5",
                                                      "--out", str(out)], monkeypatch, capsys)
    assert status == 0
    results = json.loads(out.read_text())["results"]
    assert list(results) == ["pixels", "PCA 8", "autoencoder 8"]
    for name, row in results.items():  # the printed table is the file's figures
        cells = " | ".join(f"{row[n]['mean']:.3f} +- {row[n]['std']:.3f}" for n in ("1", "5"))
        assert f"| {name} | {cells} |" in shown
        assert len(row["5"]["per_seed"]) == 5
    # Labels line up with images: five pixel examples a class beat chance (0.1) by far.
    assert results["pixels"]["5"]["mean"] > 0.5
