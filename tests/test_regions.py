"""Hollow (outline) digits are filled; the counters of ordinary digits stay open."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from serving import ink, regions
from serving.preprocess import from_image
from serving.regions import fill_hollow, select_digit


def _outlined(text: str, size: int = 200, rim: int = 3) -> Image.Image:
    """A bold digit drawn as its outline only (white fill, black rim), on white."""
    import matplotlib

    font = ImageFont.truetype(f"{matplotlib.get_data_path()}/fonts/ttf/DejaVuSans-Bold.ttf", size)
    image = Image.new("L", (size + 80, size + 80), 255)
    ImageDraw.Draw(image).text((40, 10), text, font=font, fill=255, stroke_width=rim, stroke_fill=0)
    return image


def _solid(text: str, size: int = 200) -> Image.Image:
    import matplotlib

    font = ImageFont.truetype(f"{matplotlib.get_data_path()}/fonts/ttf/DejaVuSans-Bold.ttf", size)
    image = Image.new("L", (size + 80, size + 80), 255)
    ImageDraw.Draw(image).text((40, 10), text, font=font, fill=0)
    return image


def _crop_of(image: Image.Image) -> np.ndarray:
    grey = np.asarray(image, dtype=np.float32)
    return ink._crop(ink._digit_ink(grey))


def test_ink_with_diagonal_contact_is_one_component():
    mask = np.zeros((6, 6), bool)
    mask[0, 0] = mask[1, 1] = True  # diagonal neighbours: one 8-connected component
    mask[4:6, 4:6] = True
    labels, stats, keep = select_digit(mask.view(np.uint8), mask.view(np.uint8))
    assert len(stats) == 3 and labels[0, 0] == labels[1, 1] != labels[5, 5]


def test_pieces_counted_before_choose_the_same_digit():
    """`select_digit` given the count of the pieces (`InkMap.pieces`, from the shade's noise test) labels them once: the
    same labels, stats and choice as when it counts them itself."""
    rng = np.random.default_rng(0)
    for _ in range(100):
        many = (cv2.blur(rng.random((int(rng.integers(8, 80)), int(rng.integers(8, 80)))), (3, 3)) > 0.6).view(np.uint8)
        for weak in (many, (cv2.connectedComponents(many, connectivity=8)[1] == 1).view(np.uint8)):  # and one piece
            strong = (weak * (rng.random(weak.shape) < 0.5)).astype(np.uint8)
            count = cv2.connectedComponents(weak, connectivity=8)[0]
            counted, itself = select_digit(weak, strong, count), select_digit(weak, strong)
            assert np.array_equal(counted[1], itself[1]) and np.array_equal(counted[2], itself[2])
            assert np.array_equal(counted[0], itself[0])  # one piece: the 0/1 mask is its labels


def test_an_outlined_one_is_filled_and_reads_like_the_solid_one(monkeypatch):
    crop = _crop_of(_outlined("1"))
    fill = fill_hollow(crop, ink._stroke_width(crop))
    assert fill is not None and fill.sum() > 0.3 * (crop >= 0.5).sum()
    solid = from_image(_solid("1"))[0].ravel()
    filled = np.corrcoef(from_image(_outlined("1"))[0].ravel(), solid)[0, 1]
    monkeypatch.setattr(ink, "fill_hollow", lambda *a: None)
    rims_only = np.corrcoef(from_image(_outlined("1"))[0].ravel(), solid)[0, 1]
    assert filled > 0.7 and filled > rims_only + 0.2


def test_counters_of_solid_digits_stay_open():
    for digit in "04689":
        crop = _crop_of(_solid(digit))
        assert fill_hollow(crop, ink._stroke_width(crop)) is None, digit


def test_every_outlined_bold_digit_is_filled_the_four_too():
    # A bold 4's band crosses itself (crossbar over stem): measured by city-block distance it was twice as wide there
    # and read as no band.
    for digit in "0123456789":
        crop = _crop_of(_outlined(digit))
        fill = fill_hollow(crop, ink._stroke_width(crop))
        assert fill is not None and fill.sum() > 0.3 * (crop >= 0.5).sum(), digit  # the band, not a counter alone


def test_the_counter_of_a_thin_slanted_zero_stays_open():
    for angle in (0, 20, 30, 45):
        for ratio in (2.5, 3.0, 3.5, 4.0):  # the ring's height over its width
            image = np.full((280, 280), 255, np.uint8)
            cv2.ellipse(image, (140, 140), (round(100 / ratio), 100), angle, 0, 360, 0, 6, cv2.LINE_AA)
            crop = _crop_of(Image.fromarray(image))
            assert fill_hollow(crop, ink._stroke_width(crop)) is None, (angle, ratio)


def test_outlined_eight_keeps_its_two_counters_open():
    crop = _crop_of(_outlined("8"))
    fill = fill_hollow(crop, ink._stroke_width(crop))
    assert fill is not None
    filled = np.maximum(crop, fill) >= 0.5
    count = cv2.connectedComponents(np.pad(~filled, 1).view(np.uint8), connectivity=8)[0]
    assert count - 1 >= 3  # the outside and the two loops (label 0 is the ink)


def test_upscaled_mnist_digits_are_never_filled(mnist):
    for image in mnist.test.images[:300].numpy():
        big = np.asarray(Image.fromarray(image).resize((280, 280), Image.BILINEAR), dtype=np.float32) / 255
        crop = ink._crop(big)
        assert fill_hollow(crop, ink._stroke_width(crop)) is None


def _bubble(points: list[tuple[int, int]], bold: int = 32, rim: int = 4, size: int = 280) -> np.ndarray:
    """The crop of a bubble letter: a stroke through `points` made `bold` px thick on each side, its rim drawn."""
    stroke = np.zeros((size, size), np.uint8)
    cv2.polylines(stroke, [np.array(points, np.int32)], False, 1, 8)
    solid = cv2.dilate(stroke, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * bold + 1,) * 2))
    inner = cv2.erode(solid, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rim + 1,) * 2))
    return _crop_of(Image.fromarray(255 - 255 * (solid - inner)))


# A fat bubble 7: its band is short (under the elongation bar) but bent round the corner, far from convex.
FAT_SEVEN = [(60, 60), (200, 60), (120, 230)]


def test_a_fat_bubble_seven_is_filled_by_its_bend():
    crop = _bubble(FAT_SEVEN)
    mask, _ = regions.hole_mask(crop)
    count, labels = regions._holes(mask)
    band = max(range(1, count), key=lambda k: (labels == k).sum())
    half = regions._half_widths(labels, count)[band]
    assert (labels == band).sum() < regions.HOLLOW_ELONGATION * half**2  # short: the elongation bar alone misses it
    assert regions.solidity((labels == band).view(np.uint8)) < regions.HOLLOW_SOLIDITY
    fill = fill_hollow(crop, ink._stroke_width(crop))
    assert fill is not None and fill.sum() > 0.3 * (crop >= 0.5).sum()


def test_without_the_bend_test_the_fat_seven_stays_hollow(monkeypatch):
    monkeypatch.setattr(regions, "HOLLOW_SOLIDITY", 0.0)
    crop = _bubble(FAT_SEVEN)
    assert fill_hollow(crop, ink._stroke_width(crop)) is None


def test_round_and_bean_shaped_counters_stay_open():
    for axes, bulge in (((60, 100), 0), ((70, 100), 25), ((50, 90), 35)):
        image = np.full((280, 280), 255, np.uint8)
        cv2.ellipse(image, (140, 140), axes, 0, 0, 360, 0, 14, cv2.LINE_AA)
        if bulge:  # a kink in the ring: a hand's 0 or a loop of 8, dented
            cv2.line(image, (140 - axes[0], 140), (140 - axes[0] + bulge, 140), 0, 14)
        crop = _crop_of(Image.fromarray(image))
        assert fill_hollow(crop, ink._stroke_width(crop)) is None, (axes, bulge)
