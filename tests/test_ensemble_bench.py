"""benchmarks.ensemble: its test-time views and its scoring of averaged probabilities."""

from __future__ import annotations

import numpy as np

from benchmarks.ensemble import VIEWS, summary, view


def frame() -> np.ndarray:
    """A 28x28 frame with a bar of ink off the middle."""
    f = np.zeros((28, 28), np.float32)
    f[6:20, 10:13] = 1.0
    return f


def centre(f: np.ndarray) -> tuple[float, float]:
    """(x, y) of the ink's centre of mass."""
    y, x = np.mgrid[0:28, 0:28]
    return float((f * x).sum() / f.sum()), float((f * y).sum() / f.sum())


def test_the_served_view_is_the_frame_and_shifts_move_the_ink():
    f = frame()
    assert np.array_equal(view(f, *VIEWS["as served"]), f)
    x0, y0 = centre(f)
    x1, y1 = centre(view(f, *VIEWS["right 1 px"]))
    assert abs(x1 - x0 - 1) < 1e-4 and abs(y1 - y0) < 1e-4
    assert view(f, *VIEWS["bolder"]).sum() > f.sum() > view(f, *VIEWS["thinner"]).sum()


def test_summary_finds_the_worst_condition_and_flags_the_unsure_wrong_answer():
    labels = np.array([0, 1, 2, 3])
    conditions = np.array(["a", "a", "b", "b"])
    probabilities = np.full((4, 10), 0.01)
    probabilities[[0, 1, 2], labels[:3]] = 0.91  # right and sure
    probabilities[3, 5] = 0.5  # wrong, and unsure of it
    r = summary(probabilities, labels, conditions, 0.5)
    assert r["accuracy"] == 0.75
    assert r["worst"] == ["b", 0.5]
    assert r["caught"] == 1.0 and r["flagged_right"] == 0.0 and r["confident_wrong"] == 0.0
