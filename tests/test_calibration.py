"""Calibration: the fitted temperature lowers NLL, ECE measures what it should, served probabilities sum to 1."""

from __future__ import annotations

import numpy as np
import pytest

from mnistserve.contracts import softmax
from training.metrics import expected_calibration_error, fit_temperature, flag_stats, flag_threshold, nll


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


def test_flag_stats_counts_what_the_unsure_flag_catches_and_costs() -> None:
    p = np.array([[0.95, 0.05], [0.6, 0.4], [0.3, 0.7], [0.92, 0.08], [0.55, 0.45]])
    labels = np.array([0, 0, 0, 1, 1])  # rows 2, 3, 4 are wrong; row 3 is wrong with 0.92
    stats = flag_stats(p, labels, flag_below=0.7)
    assert stats["wrong"] == pytest.approx(3 / 5)
    assert stats["caught"] == pytest.approx(1 / 3)  # only row 4 (0.55) of the wrong ones is under 0.7
    assert stats["flagged_right"] == pytest.approx(1 / 2)  # row 1 (0.6) of the two right ones
    assert stats["confident_wrong"] == pytest.approx(1 / 5)


def test_flag_threshold_catches_the_share_asked_within_the_budget() -> None:
    rng = np.random.default_rng(0)
    right = np.column_stack([u := rng.uniform(0.8, 1.0, 900), 1 - u])
    wrong = np.column_stack([v := rng.uniform(0.5, 0.9, 100), 1 - v])  # predicted 0, true 1
    p, labels = np.vstack([right, wrong]), np.r_[np.zeros(900, int), np.ones(100, int)]
    t = flag_threshold(p, labels, catch=0.8, budget=0.5)
    assert flag_stats(p, labels, t)["caught"] >= 0.8
    tight = flag_threshold(p, labels, catch=0.8, budget=0.02)  # catching 80% would flag more than 2% of right ones
    assert flag_stats(p, labels, tight)["flagged_right"] <= 0.02 < flag_stats(p, labels, t)["flagged_right"]


def test_flag_threshold_with_the_whole_budget_catches_every_wrong_answer() -> None:
    p = np.array([[0.99, 0.01], [0.6, 0.4], [0.97, 0.03]])  # rows 0 and 1 right (digit 0), row 2 wrong
    labels = np.array([0, 0, 1])
    t = flag_threshold(p, labels, catch=1.0, budget=1.0)
    assert flag_stats(p, labels, t)["caught"] == 1.0
    assert flag_threshold(p, labels, catch=1.0, budget=0.0) == pytest.approx(0.6)  # flags none of the right ones
    assert flag_stats(p, labels, flag_threshold(p, labels, catch=1.0, budget=0.0))["flagged_right"] == 0.0
