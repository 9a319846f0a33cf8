"""Lossy compression: the quantiser, rate-distortion of a code, JPEG sizes, the report script."""

import io

import numpy as np
import pytest
from PIL import Image

from aejax.studies.compression import UniformQuantizer, code_rate_distortion, jpeg_rate_distortion, jpeg_scan_bytes


def test_quantiser_error_is_half_a_step_and_falls_with_bits():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(500, 4)) * [1, 2, 5, 10]
    errors = []
    for bits in (1, 2, 4, 8):
        quantise = UniformQuantizer(reference, bits)
        assert np.all(np.abs(quantise(reference) - reference) <= quantise.step / 2 + 1e-5)
        assert quantise.indices(reference).max() == 2**bits - 1 and quantise.indices(reference).min() == 0
        errors.append(np.mean((quantise(reference) - reference) ** 2))
    assert errors == sorted(errors, reverse=True)
    np.testing.assert_allclose(UniformQuantizer(reference, 3)(reference.max(axis=0) + 100), reference.max(axis=0),
                               rtol=1e-6)  # outside the range: clipped to the last level
    with pytest.raises(ValueError, match="bits=0 is not allowed; expected an integer in \\[1, 16\\]"):
        UniformQuantizer(reference, 0)


def test_code_rate_distortion_of_the_identity_code():
    rng = np.random.default_rng(1)
    train, test = rng.random((200, 6)), rng.random((50, 6))
    rows = code_rate_distortion(lambda x: x, lambda h: h, train, test, bits_list=(2, 8))
    assert [r["bits"] for r in rows] == [None, 2, 8]
    assert [r["bytes"] for r in rows] == [24, 1.5, 6.0]
    assert rows[0]["sse_per_image"] == 0.0
    assert rows[1]["sse_per_image"] > rows[2]["sse_per_image"] > 0.0


def test_jpeg_scan_is_the_part_that_depends_on_the_image():
    rng = np.random.default_rng(2)
    files = []
    for image in (np.zeros((16, 16), np.uint8), (rng.random((16, 16)) * 255).astype(np.uint8)):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=50)
        files.append(buffer.getvalue())
    # Same quality, same tables and headers: the files differ in size exactly as their scans do.
    assert len(files[1]) - len(files[0]) == jpeg_scan_bytes(files[1]) - jpeg_scan_bytes(files[0]) > 0
    images = rng.random((20, 64)).astype(np.float32)
    low, high = jpeg_rate_distortion(images, (8, 8, 1), qualities=(5, 95))
    assert low["bytes"] < high["bytes"] and low["scan_bytes"] < low["bytes"]
    assert low["sse_per_image"] > high["sse_per_image"]


def test_report_script_on_a_finished_run(finished_digits_run, tmp_path, monkeypatch, capsys):
    import json

    from conftest import run_report

    out = tmp_path / "results.json"
    status, shown, _ = run_report("compression", [str(finished_digits_run), "--out", str(out)], monkeypatch, capsys)
    assert status == 0
    results = json.loads(out.read_text())
    assert list(results["rate_distortion"]) == ["autoencoder 8", "PCA 8", "JPEG"]
    for row in results["rate_distortion"]["autoencoder 8"][1:]:
        assert f"| autoencoder 8 | {row['bits']} bits a unit | {row['bytes']:.1f} | {row['sse_per_image']:.2f} |" in shown
    # The shifted images are new to every codec but JPEG: its error barely moves.
    jpeg_original, jpeg_shifted = results["shifted"]["JPEG, quality 75"]
    assert jpeg_shifted["sse_per_image"] < 2 * jpeg_original["sse_per_image"] + 0.1


def test_vq_rate_is_positions_times_log2_k_and_entropy_coding_uses_training_frequencies():
    from aejax.studies.compression import vq_rate_distortion

    train = np.array([[0, 1], [0, 1], [0, 2], [1, 1]])          # 2 positions, K = 4
    test = np.array([[0, 1], [3, 2]])
    x = np.zeros((2, 3))
    recon = np.array([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    row = vq_rate_distortion(train, test, 4, recon, x)
    assert row["bits"] == 4.0 and row["bytes"] == 0.5 and row["positions"] == 2
    # position 0 counts +1: [4, 2, 1, 1] / 8; position 1: [1, 4, 2, 1] / 8
    first = -np.log2(4 / 8) - np.log2(4 / 8)
    second = -np.log2(1 / 8) - np.log2(2 / 8)
    np.testing.assert_allclose(row["entropy_bits"], (first + second) / 2)
    assert row["sse_per_image"] == 2.0


def test_report_script_adds_vqvae_runs_to_an_earlier_baseline(finished_digits_run, tmp_path, monkeypatch, capsys):
    """--baseline (an earlier results.json) and --vqvae: the VQ-VAE rows, at P log2 K bits, join JPEG's."""
    import json

    from aejax.run import train_and_evaluate
    from conftest import TINY, compose, run_report

    vq = tmp_path / "vq"
    train_and_evaluate(compose(TINY + ["model=vqvae", "model.architecture=mlp", "model.hidden=[16]", "model.code_size=8",
                                       "model.embedding_dim=4", "model.codebook_size=8", "trainer.epochs=1"]), vq)
    baseline = tmp_path / "baseline.json"   # an earlier results.json: its autoencoder and PCA rows are kept
    rows = [{"bits": None, "bytes": 32, "sse_per_image": 1.5}, {"bits": 8, "bytes": 8.0, "sse_per_image": 1.6}]
    baseline.write_text(json.dumps({"run_dir": "earlier", "epoch": 2, "rate_distortion": {
        "autoencoder 8": rows, "PCA 8": rows, "JPEG": [{"quality": 5, "bytes": 1, "scan_bytes": 1, "sse_per_image": 9}]}}))
    out = tmp_path / "with_vq.json"
    status, shown, _ = run_report("compression", ["--baseline", str(baseline), "--vqvae", str(vq), "--out", str(out)],
                                  monkeypatch, capsys)
    assert status == 0
    results = json.loads(out.read_text())
    assert list(results["rate_distortion"]) == ["autoencoder 8", "PCA 8", "JPEG", "VQ-VAE"]
    assert results["rate_distortion"]["autoencoder 8"] == rows and len(results["rate_distortion"]["JPEG"]) == 5
    (row,) = results["rate_distortion"]["VQ-VAE"]
    assert row["positions"] == 2 and row["bits"] == 6.0 and row["entropy_bits"] > 0
    assert f"| VQ-VAE | K = 8, 2 positions | 0.8 (entropy-coded: {row['entropy_bits'] / 8:.1f}) |" in shown
    assert (tmp_path / "rate_distortion.png").exists()
    # Not a VQ-VAE run: refused in one line.
    status, _, err = run_report("compression", ["--baseline", str(baseline), "--vqvae", str(finished_digits_run)],
                                monkeypatch, capsys)
    assert status == 2 and "expected model.family=vqvae" in err and len(err.strip().splitlines()) == 1
