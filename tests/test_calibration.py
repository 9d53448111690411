"""Calibration: the fitted temperature lowers NLL, ECE measures what it should, served probabilities sum to 1."""

from __future__ import annotations

import numpy as np
import pytest

from mnistserve.contracts import softmax
from training.metrics import expected_calibration_error, fit_temperature, nll


def _overconfident(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z) (a calibrated model), scores 5 z: the same model, far too sure of itself."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.0, (n, 10))
    p = softmax(z)
    labels = np.array([rng.choice(10, p=row) for row in p])
    return 5.0 * z, labels


def test_fitted_temperature_lowers_nll_and_ece_of_an_overconfident_model():
    scores, labels = _overconfident()
    t = fit_temperature(scores, labels)
    assert 4.0 < t < 6.0  # it finds the factor the scores were inflated by
    assert nll(scores, labels, t) < nll(scores, labels)
    assert (
        expected_calibration_error(softmax(scores, t), labels) < expected_calibration_error(softmax(scores), labels) / 3
    )


def test_fitted_temperature_is_the_minimum_of_nll():
    scores, labels = _overconfident(seed=1)
    t = fit_temperature(scores, labels)
    for other in (t * 0.8, t * 1.25):
        assert nll(scores, labels, t) <= nll(scores, labels, other)


def test_ece_is_zero_for_perfectly_calibrated_bins_and_large_for_confident_errors():
    labels = np.array([0, 0, 0, 0])
    sure_right = np.tile(np.eye(10)[0], (4, 1))
    assert expected_calibration_error(sure_right, labels) == pytest.approx(0.0)
    sure_wrong = np.tile(np.eye(10)[1], (4, 1))
    assert expected_calibration_error(sure_wrong, labels) == pytest.approx(1.0)
    half = np.tile(np.r_[0.5, 0.5, np.zeros(8)], (4, 1))  # 50 % sure, argmax 0, right every time
    assert expected_calibration_error(half, labels) == pytest.approx(0.5)


def test_softmax_rows_sum_to_one_at_any_temperature_and_keep_the_order():
    scores = np.array([[1000.0, 0.0, -1000.0] + [0.0] * 7, np.arange(10.0)])
    for t in (0.1, 1.0, 3.0):
        p = softmax(scores, t)
        assert np.allclose(p.sum(1), 1.0) and np.isfinite(p).all()
        assert (p.argmax(1) == scores.argmax(1)).all()
    assert softmax(scores, 3.0)[1].max() < softmax(scores, 1.0)[1].max()  # a higher temperature softens
