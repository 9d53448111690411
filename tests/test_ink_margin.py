"""serving.ink._margin: a digital digit that fills its frame is read whole, as with paper round it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from serving import ink

# Two MNIST validation digits (a 3 and a 0) as UCI reduced theirs (benchmarks.real_digits.to_grid): 8x8 counts 0..16
# of a 32x32 bitmap. Upscaled smooth, their strokes run into the border.
THREE = [
    [0, 7, 15, 12, 11, 0, 0, 0],
    [0, 2, 1, 0, 12, 0, 0, 0],
    [0, 0, 7, 14, 12, 0, 0, 0],
    [0, 2, 15, 8, 13, 3, 0, 0],
    [0, 0, 0, 0, 2, 11, 0, 0],
    [0, 0, 6, 5, 0, 11, 3, 0],
    [0, 0, 12, 16, 16, 16, 4, 0],
    [0, 0, 5, 16, 16, 9, 2, 0],
]
ZERO = [
    [0, 0, 0, 7, 12, 12, 7, 1],
    [0, 0, 3, 14, 16, 15, 15, 13],
    [0, 7, 15, 16, 15, 4, 7, 16],
    [5, 16, 10, 4, 11, 0, 8, 16],
    [14, 13, 0, 0, 3, 7, 16, 11],
    [12, 9, 0, 0, 8, 16, 8, 0],
    [5, 16, 12, 12, 15, 8, 0, 0],
    [0, 5, 8, 8, 0, 0, 0, 0],
]


def _upscaled(grid: list[list[int]], printed: bool) -> np.ndarray:
    """The grid as a 64 px grey image, bicubic, light on dark as stored or dark on white."""
    grey = (np.asarray(grid, np.float64) * 255 / 16).round().astype(np.uint8)
    image = Image.fromarray(255 - grey if printed else grey, "L").resize((64, 64), Image.Resampling.BICUBIC)
    return np.asarray(image)


def _similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The correlation of two frames' pixels."""
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.mark.parametrize(
    ("grid", "printed"), [(THREE, False), (THREE, True), (ZERO, False)], ids=["three", "printed three", "zero"]
)
def test_a_digit_filling_its_frame_reads_as_with_paper_round_it(grid, printed, monkeypatch):
    image = _upscaled(grid, printed)
    paper = 255 if printed else 0
    with_paper = ink.to_frame(cv2.copyMakeBorder(image, 4, 4, 4, 4, cv2.BORDER_CONSTANT, value=paper))
    assert _similarity(ink.to_frame(image), with_paper) > 0.95
    monkeypatch.setattr(ink, "FILLED_PAPER", 0)  # without the margin its border strokes were taken for paper edges
    assert _similarity(ink.to_frame(image), with_paper) < 0.6


def test_the_margin_is_the_papers_level_and_a_sixteenth_of_the_long_side():
    image = _upscaled(THREE, printed=True)[:, :48]  # dark ink on white, ink on the border
    padded = ink._margin(image)
    assert padded.shape == (64 + 8, 48 + 8)
    assert (ink.border(padded) == 255).all()
    assert np.array_equal(padded[4:-4, 4:-4], image)


def test_images_with_paper_all_round_or_no_exact_paper_are_left_as_they_are():
    rng = np.random.default_rng(0)
    drawn = np.zeros((64, 64), np.uint8)
    cv2.line(drawn, (32, 8), (32, 56), 255, 5)  # a 1 with a margin: the whole border is paper already
    photo = np.clip(rng.normal(180, 6, (64, 64)), 0, 255).astype(np.uint8)  # noise: no one exact level
    photo[:, 30:34] = 40  # a stroke through the border
    faint = _upscaled(THREE, printed=False).copy()
    faint[faint == 0] = 3  # the paper is one level, but not the image's extreme (ink is darker nowhere)
    faint[0, 0] = 0
    for image in (drawn, photo, faint):
        assert ink._margin(image) is image


def test_a_blocky_enlargement_is_read_at_its_own_grid(monkeypatch):
    grid = _upscaled(THREE, printed=False)[::8, ::8]  # an 8x8 grey digit (the 64 px image's every 8th pixel)
    blocky = np.repeat(np.repeat(grid, 14, 0), 14, 1)  # 112 px, nearest neighbour
    assert np.array_equal(ink._native_grid(blocky), grid)
    assert np.array_equal(ink.to_frame(blocky), ink.to_frame(grid))
    monkeypatch.setattr(ink, "NATIVE_MIN", 0)
    assert ink._native_grid(blocky) is blocky


def test_images_that_only_look_blocky_by_their_sums_are_left_as_they_are():
    rng = np.random.default_rng(1)
    photo = np.clip(rng.normal(180, 6, (64, 64)), 0, 255).astype(np.uint8)
    flat = np.full((64, 64), 200, np.uint8)  # one level: its grid would be a single pixel
    swapped = np.repeat(np.repeat(rng.integers(0, 255, (8, 8)).astype(np.uint8), 2, 0), 2, 1)
    swapped[5] = swapped[4][np.r_[2:16, 0:2]]  # row 5: row 4 turned by one block; same sums, different pixels
    canvas = np.zeros((280, 280), np.uint8)
    cv2.line(canvas, (100, 40), (180, 240), 255, 18, cv2.LINE_AA)
    for image in (photo, flat, swapped, canvas):
        assert ink._native_grid(image) is image


def test_an_mnist_digit_enlarged_blocky_comes_back_as_mnist():
    digit = np.zeros((28, 28), np.uint8)
    cv2.line(digit, (12, 6), (16, 21), 255, 3)  # white on black, 20 px tall: MNIST's own form, returned as it is
    assert ink._mnist_like(digit) is not None
    assert np.array_equal(ink.to_frame(np.repeat(np.repeat(digit, 3, 0), 3, 1)), ink.to_frame(digit))


@pytest.mark.parametrize("side", ["left", "bottom"])
def test_a_dark_band_along_one_side_of_a_white_scan_is_no_stroke_end(side):
    page = np.full((200, 160), 255, np.uint8)  # paper clipped to white, as a binarised scan or an overexposed photo
    cv2.line(page, (80, 40), (80, 160), 0, 12)  # a 1
    clean = ink.to_frame(page)
    if side == "left":
        page[:, :20] = 0  # the scanner's edge: all the left side and 20 px into the page
    else:
        page[-20:] = 0
    assert ink._margin(page) is page  # a margin would cut the band off the border, and it would read as ink
    assert _similarity(ink.to_frame(page), clean) > 0.95


def test_where_both_extremes_could_be_paper_the_one_holding_more_border_is():
    digit = np.full((40, 40), 255, np.uint8)
    cv2.line(digit, (8, 39), (32, 0), 0, 20)  # a bold dark stroke cropped tight: much of the border is ink
    ring = ink.border(digit)
    assert 0.3 * ring.size <= np.count_nonzero(ring == 0) < np.count_nonzero(ring == 255)
    assert (ink.border(ink._margin(digit)) == 255).all()
