"""serving.ink's and serving.regions' fast helpers give exactly what the plain numpy they replace gives."""

from __future__ import annotations

import numpy as np
import pytest

from serving import ink
from serving.regions import _erode, _label_image, components, paint


def _random_values(rng: np.random.Generator, n: int, dtype: type) -> np.ndarray:
    """Values with ties (a coarse grid) or without, at scales from 1e-3 to 255."""
    values = rng.random(n) * rng.choice([1e-3, 1.0, 255.0])
    if rng.random() < 0.4:
        values = np.round(values * 8) / 8
    return values.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_median_and_percentile_equal_numpy_bit_for_bit(dtype):
    rng = np.random.default_rng(0)
    for _ in range(2000):
        values = _random_values(rng, int(rng.integers(1, 300)), dtype)
        assert ink._median(values) == float(np.median(values))
        for percent in (0, 10, 50, 90, 99.5, 100):
            assert ink._percentile(values, percent) == float(np.percentile(values, percent)), (values.size, percent)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_block_ranks_are_those_of_a_full_sort(dtype):
    rng = np.random.default_rng(1)
    for i in range(300):
        shape = rng.integers(1, 8 if i % 3 == 0 else 120, 2)  # tiny images: blocks of 1 to 4 pixels
        grey = np.round(rng.normal(128, 20, shape) * (4 if i % 2 else 1000)) / (4 if i % 2 else 1000)  # ties or not
        grey = grey.astype(dtype)
        ranked, side = ink._blocks(grey)
        h, w = grey.shape
        gh, gw, n = ranked.shape
        full = np.sort(
            np.pad(grey, ((0, gh * side - h), (0, gw * side - w)), mode="edge")
            .reshape(gh, side, gw, side)
            .transpose(0, 2, 1, 3)
            .reshape(gh, gw, -1),
            axis=2,
        )
        for r in {n // 4, n // 2, n - 1 - n // 4, int(rng.integers(0, n))}:
            np.testing.assert_array_equal(ink._rank(ranked, r), full[..., r])
        assert ink._second_extremes(ranked) == (full[..., min(1, n - 1)].min(), full[..., max(n - 2, 0)].max())


def _disc_by_offsets(image: np.ndarray, radius: int, reduce: np.ufunc) -> np.ndarray:
    """The disc filter written out: every offset of the disc in turn on the zero-padded image."""
    padded = np.pad(image, radius)
    out = padded.copy()
    h, w = padded.shape
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx <= radius * radius:
                view = out[max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
                reduce(view, padded[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)], out=view)
    return out if reduce is np.maximum else out[radius:-radius, radius:-radius]


@pytest.mark.parametrize("reduce", [np.maximum, np.minimum])
def test_disc_filter_equals_reducing_over_every_offset(reduce):
    rng = np.random.default_rng(2)
    for radius in (1, 2, 3, 5, 8, 13):
        image = rng.random((int(rng.integers(1, 40)), int(rng.integers(1, 40)))) * (rng.random() < 0.5 or 255)
        image = np.where(rng.random(image.shape) < 0.7, 0, image).astype(np.float32)  # sparse, like ink
        np.testing.assert_array_equal(ink._disc_filter(image, radius, reduce), _disc_by_offsets(image, radius, reduce))


def test_grow_and_bounds_match_the_disc_of_radius_one_and_nonzero():
    rng = np.random.default_rng(3)
    for _ in range(200):
        mask = rng.random((int(rng.integers(1, 30)), int(rng.integers(1, 30)))) < rng.random() * 0.2
        grown = _disc_by_offsets(mask.astype(np.float32), 1, np.maximum)[1:-1, 1:-1] > 0
        np.testing.assert_array_equal(ink._grow(mask), grown)
        rows, cols = np.nonzero(mask)
        expected = None if rows.size == 0 else (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1)
        assert ink._bounds(mask) == expected


def test_stroke_width_counts_the_border_as_paper():
    rng = np.random.default_rng(4)
    for _ in range(200):
        ink_levels = rng.random((int(rng.integers(1, 30)), int(rng.integers(1, 30))))
        mask = np.pad(ink_levels >= 0.5, 1)
        edges = np.count_nonzero(mask[1:] != mask[:-1]) + np.count_nonzero(mask[:, 1:] != mask[:, :-1])
        assert ink._stroke_width(ink_levels) == 2.0 * np.count_nonzero(mask) / max(edges, 1)


def test_runs_paint_back_the_mask_and_label_every_pixel_once():
    rng = np.random.default_rng(5)
    for _ in range(100):
        mask = rng.random((int(rng.integers(1, 40)), int(rng.integers(1, 40)))) < rng.random()
        rows, starts, ends, label = components(mask)
        np.testing.assert_array_equal(paint(mask.shape, rows, starts, ends), mask)
        labels = _label_image(mask.shape, rows, starts, ends, label)
        np.testing.assert_array_equal(labels > 0, mask)
        for r, s, e, k in zip(rows, starts, ends, label, strict=True):
            assert (labels[r, s:e] == k + 1).all()


def test_erode_is_the_cross_with_paper_beyond_the_border():
    rng = np.random.default_rng(6)
    for _ in range(100):
        mask = rng.random((int(rng.integers(1, 30)), int(rng.integers(1, 30)))) < 0.8
        p = np.pad(mask, 1)
        expected = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
        np.testing.assert_array_equal(_erode(mask), expected)
