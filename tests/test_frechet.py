"""aejax/frechet.py: the Frechet distance against closed forms and scipy's matrix square root, and the
classifier whose features it reads (trained on the digits, deterministic)."""

import numpy as np
import pytest
import scipy.linalg

from aejax.frechet import features, frechet_distance, frechet_from_moments, train_classifier

rng = np.random.default_rng(0)


def test_diagonal_gaussians_match_the_closed_form():
    """For diagonal covariances the distance is ||m_a - m_b||^2 + sum_i (s_a,i - s_b,i)^2."""
    m_a, m_b = rng.normal(size=5), rng.normal(size=5)
    s_a, s_b = rng.uniform(0.2, 2, size=5), rng.uniform(0.2, 2, size=5)
    got = frechet_from_moments(m_a, np.diag(s_a**2), m_b, np.diag(s_b**2))
    np.testing.assert_allclose(got, np.sum((m_a - m_b) ** 2) + np.sum((s_a - s_b) ** 2), rtol=1e-9)


def test_full_covariances_match_scipy_sqrtm():
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    cov_a, cov_b = a @ a.T + 0.1 * np.eye(6), b @ b.T
    m_a, m_b = rng.normal(size=6), rng.normal(size=6)
    expected = np.sum((m_a - m_b) ** 2) + np.trace(cov_a + cov_b - 2 * np.real(scipy.linalg.sqrtm(cov_a @ cov_b)))
    np.testing.assert_allclose(frechet_from_moments(m_a, cov_a, m_b, cov_b), expected, rtol=1e-7)


def test_samples_of_one_gaussian_are_near_zero_and_a_shift_adds_its_square():
    x, y = rng.normal(size=(20000, 3)), rng.normal(size=(20000, 3))
    assert frechet_distance(x, x) == pytest.approx(0, abs=1e-9)
    assert frechet_distance(x, y) < 0.01
    assert frechet_distance(x, y + 2.0) == pytest.approx(12.0, abs=0.1)


def test_the_classifier_learns_the_digits_and_is_deterministic():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    params, accuracy = train_classifier(x[:1400], y[:1400], x[1400:], y[1400:], epochs=15, batch_size=64)
    again, accuracy_again = train_classifier(x[:1400], y[:1400], x[1400:], y[1400:], epochs=15, batch_size=64)
    assert accuracy > 0.85 and accuracy == accuracy_again
    np.testing.assert_array_equal(np.asarray(features(params, x[:5])), np.asarray(features(again, x[:5])))
    assert features(params, x[:5]).shape == (5, 128)
