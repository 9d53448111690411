"""serving.ink's, serving.paper's and serving.regions' helpers around OpenCV give what the plain numpy definitions give:
the borders, anchors, paddings and shapes OpenCV needs told are the ones the preprocessing means."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from serving import ink, paper, regions


def _random_values(rng: np.random.Generator, n: int, dtype: type) -> np.ndarray:
    """Values with ties (a coarse grid) or without, at scales from 1e-3 to 255."""
    values = rng.random(n) * rng.choice([1e-3, 1.0, 255.0])
    if rng.random() < 0.4:
        values = np.round(values * 8) / 8
    return values.astype(dtype)


def _sparse_image(rng: np.random.Generator, high: int = 40) -> np.ndarray:
    """A float32 image, mostly paper (0), with ink of random strength: like a crop of a digit."""
    image = rng.random((int(rng.integers(1, high)), int(rng.integers(1, high))))
    return np.where(rng.random(image.shape) < 0.7, 0, image).astype(np.float32)


def _disc_by_offsets(image: np.ndarray, radius: int, reduce: np.ufunc) -> np.ndarray:
    """The disc filter written out: every offset of the disc in turn on the zero-padded image (grown by radius)."""
    padded = np.pad(image, radius)
    out = padded.copy()
    h, w = padded.shape
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx <= radius * radius:
                view = out[max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
                reduce(view, padded[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)], out=view)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_upper_median_and_second_extremes_are_those_of_a_sort(dtype):
    rng = np.random.default_rng(0)
    for _ in range(2000):
        values = _random_values(rng, int(rng.integers(1, 300)), dtype)
        ordered = np.sort(values)
        assert paper.upper_median(values) == ordered[values.size // 2]
        expected = (ordered[min(1, values.size - 1)], ordered[max(values.size - 2, 0)]) if values.size >= 3 else None
        assert paper.second_extremes(values) == (expected or (ordered[0], ordered[-1]))


def test_lattice_blocks_are_sorted_area_averages_of_the_edge_padded_image():
    rng = np.random.default_rng(1)
    for i in range(300):
        shape = rng.integers(1, 8 if i % 3 == 0 else 260, 2)  # tiny images too: cells of one pixel
        small = (rng.random(shape) * 255).astype(np.float32)
        blocks, side = paper.lattice(small)
        gh, gw, n = blocks.shape
        assert n == paper.CELLS**2 and side % paper.CELLS == 0 and max(gh, gw) <= 2 * paper.GRID
        h, w = small.shape
        cell = side // paper.CELLS
        padded = np.pad(small, ((0, gh * side - h), (0, gw * side - w)), mode="edge").astype(np.float64)
        cells = padded.reshape(gh * paper.CELLS, cell, gw * paper.CELLS, cell).mean(axis=(1, 3))
        expected = np.sort(cells.reshape(gh, paper.CELLS, gw, paper.CELLS).transpose(0, 2, 1, 3).reshape(gh, gw, n), 2)
        np.testing.assert_allclose(blocks, expected, rtol=1e-5, atol=1e-3)


def test_max_pool_is_the_block_maximum_with_partial_blocks_at_the_edges():
    rng = np.random.default_rng(2)
    for _ in range(200):
        image, factor = _sparse_image(rng), int(rng.integers(1, 7))
        h, w = image.shape
        padded = np.pad(image, ((0, -h % factor), (0, -w % factor)))
        expected = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor).max((1, 3))
        np.testing.assert_array_equal(regions.max_pool(image, factor), expected)


def test_thicken_grows_strokes_by_a_disc_beyond_the_crop():
    rng = np.random.default_rng(3)
    for radius in (1, 2, 3, 5, 8, 13):
        image = _sparse_image(rng)
        padded = cv2.copyMakeBorder(image, radius, radius, radius, radius, cv2.BORDER_CONSTANT, value=0)
        grown = cv2.dilate(padded, ink._disc(radius))
        np.testing.assert_array_equal(grown, _disc_by_offsets(image, radius, np.maximum))


def test_thinning_erodes_with_paper_beyond_the_border():
    rng = np.random.default_rng(4)
    for step in range(100):
        image = _sparse_image(rng) + (rng.random() < 0.5)  # some touch the border with full ink
        kernel = ink.SQUARE if step % 2 else ink.CROSS
        eroded = cv2.erode(image, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        p = np.pad(image, 1)
        cross = np.minimum.reduce([p[1:-1, 1:-1], p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]])
        corners = np.minimum.reduce([p[:-2, :-2], p[:-2, 2:], p[2:, :-2], p[2:, 2:]])
        np.testing.assert_array_equal(eroded, np.minimum(cross, corners) if step % 2 else cross)


def test_bounds_and_moments_match_numpy_for_every_shape():
    rng = np.random.default_rng(5)
    for _ in range(300):
        shape = (int(rng.integers(1, 30)), int(rng.choice([1, 2, 3, int(rng.integers(1, 30))])))  # (N, 2) too
        image = np.where(rng.random(shape) < rng.random() * 0.3, rng.random(shape), 0).astype(np.float32)
        rows, cols = np.nonzero(image > 0)
        expected = None if rows.size == 0 else (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1)
        assert ink._bounds(image > 0) == expected
        if rows.size:  # OpenCV reads an (N, 2) array as N points unless told otherwise
            m, (r, c) = ink._moments(image), np.indices(shape)
            mass = image.sum(dtype=np.float64)
            assert m["m00"] == pytest.approx(mass, rel=1e-5)
            assert m["m01"] / m["m00"] == pytest.approx((r * image).sum() / mass, rel=1e-5, abs=1e-6)
            assert m["m10"] / m["m00"] == pytest.approx((c * image).sum() / mass, rel=1e-5, abs=1e-6)


def test_stroke_width_counts_the_border_as_paper():
    rng = np.random.default_rng(6)
    for _ in range(200):
        ink_levels = rng.random((int(rng.integers(1, 30)), int(rng.integers(1, 30))))
        mask = np.pad(ink_levels >= 0.5, 1)
        edges = np.count_nonzero(mask[1:] != mask[:-1]) + np.count_nonzero(mask[:, 1:] != mask[:, :-1])
        assert ink._stroke_width(ink_levels) == 2.0 * np.count_nonzero(mask) / max(edges, 1)


def _brute_half_widths(labels: np.ndarray, count: int) -> np.ndarray:
    """Each label's deepest pixel's Euclidean distance to the nearest pixel of label 0, pair by pair."""
    hole, other = np.argwhere(labels > 0), np.argwhere(labels == 0)
    nearest = np.sqrt(((hole[:, None, :] - other[None, :, :]) ** 2).sum(-1)).min(1) if hole.size else []
    expected = np.zeros(count)
    np.maximum.at(expected, labels[labels > 0], nearest)
    return expected


def test_hole_half_width_is_its_deepest_pixels_euclidean_distance_to_the_ink():
    rng = np.random.default_rng(7)
    for _ in range(60):
        h, w = int(rng.integers(8, 40)), int(rng.integers(8, 40))
        glyph = np.ones((h, w), np.uint8)  # ink, with paper bands and blobs cut out of it: holes of many depths
        for _ in range(int(rng.integers(1, 4))):
            x1, x2 = rng.integers(2, w - 2, 2)
            y1, y2 = rng.integers(2, h - 2, 2)
            cv2.line(glyph, (int(x1), int(y1)), (int(x2), int(y2)), 0, int(rng.integers(1, 8)))
        glyph = (glyph > 0) | (rng.random((h, w)) < 0.05)
        count, labels = regions._holes(glyph)
        assert not (labels[0].any() or labels[-1].any() or labels[:, 0].any() or labels[:, -1].any())  # outside
        assert not (labels[glyph] > 0).any()  # the ink is no hole
        np.testing.assert_allclose(regions._half_widths(labels, count), _brute_half_widths(labels, count), rtol=1e-5)


def test_half_widths_of_many_holes_take_the_same_depths():
    # Over 16 labels (a page of noise) the maxima come from one pass over all pixels, not one masked pass a label.
    glyph = np.ones((90, 90), np.uint8)
    for i in range(6):
        for j in range(6):  # 36 holes: diagonal bars 1-6 px wide, where city-block and Euclidean depth differ
            x, y = 3 + 15 * j, 3 + 15 * i
            cv2.line(glyph, (x + 2, y + 2), (x + 9, y + 9), 0, 1 + (i + j) % 6)
    count, labels = regions._holes(glyph > 0)
    assert count - 1 > 16
    np.testing.assert_allclose(regions._half_widths(labels, count), _brute_half_widths(labels, count), rtol=1e-5)


def test_a_crossing_of_two_bands_is_as_deep_as_a_disc_fits_not_twice_the_band():
    hole = np.zeros((61, 61), bool)  # a plus of two 11 px bands (an arm's middle is 6 px from the ink)
    hole[25:36, 5:56] = hole[5:56, 25:36] = True
    count, labels = regions._holes(~hole)
    # From the middle to the nearest ink, a corner of the crossing 6 px down and across: city-block distance made
    # that 12, a band twice as wide.
    assert regions._half_widths(labels, count).max() == pytest.approx(6 * 2**0.5, abs=1e-3)


def test_otsu_splits_two_levels_and_stays_within_its_bounds():
    strength = np.zeros((40, 40), np.float32)
    strength[10:30, 18:22] = 0.9  # a stroke on paper
    strength[0, 0] = 3.0  # one very dark pixel: the bound keeps the stroke
    threshold, mask = paper.otsu(strength, float(strength.max()))
    assert 0.2 * 3.0 <= threshold <= 0.6 * 3.0
    np.testing.assert_array_equal(mask.view(bool), strength >= threshold)
    strength[0, 0] = 0.9
    threshold, mask = paper.otsu(strength, 0.9)
    assert 0.2 * 0.9 <= threshold <= 0.6 * 0.9 and (mask.view(bool) == (strength > 0)).all()


def test_thinning_keeps_what_lies_within_a_disc_of_the_thinned_ink():
    """_thin's survivors by a distance transform: a dilation by the disc, within a pixel at its rim."""
    rng = np.random.default_rng(8)
    for radius in (1, 2, 3, 5, 8, 13):
        for _ in range(10):
            mask = _sparse_image(rng, 60) >= 0.9
            within = ink._within(mask.view(np.uint8), radius)
            by_disc = {
                r: _disc_by_offsets(mask.astype(np.float32), r, np.maximum)[r:-r, r:-r] > 0
                for r in (radius - 1, radius, radius + 1)
                if r > 0
            }
            assert (within | ~by_disc.get(radius - 1, mask)).all() and (~within | by_disc[radius + 1]).all()
            assert np.mean(within == by_disc[radius]) > 0.98


def test_the_preprocessings_caches_key_on_every_module_it_uses():
    """training's caches of preprocessed images (the real-world set, captures) key on serving.preprocess.SOURCES:
    a serving module the preprocessing uses but SOURCES leaves out would keep a stale cache after a change."""
    import inspect
    import sys
    import types

    from serving import preprocess

    used, todo = set(), [preprocess]
    while todo:
        module = todo.pop()
        used.add(module.__name__)
        for value in vars(module).values():
            owner = value if isinstance(value, types.ModuleType) else inspect.getmodule(value)
            name = getattr(owner, "__name__", "")
            if name.startswith("serving.") and name not in used and name not in ("serving.errors", "serving.metrics"):
                todo.append(sys.modules[name])
    assert {f"serving/{name.split('.')[1]}.py" for name in used} == set(preprocess.SOURCES)


def test_thinning_steps_in_one_call_equal_one_step_at_a_time():
    rng = np.random.default_rng(9)
    for _ in range(60):
        image = _sparse_image(rng, 50) + (rng.random() < 0.5)
        first, steps = int(rng.integers(0, 4)), int(rng.integers(0, 7))
        expected = image
        for step in range(first, first + steps):  # a cross at even steps, a square at odd ones
            kernel = ink.SQUARE if step % 2 else ink.CROSS
            expected = cv2.erode(expected, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        np.testing.assert_array_equal(ink._erode(image, steps, first), expected)
