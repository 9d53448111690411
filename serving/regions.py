"""Regions of a glyph, with OpenCV: block maxima that keep thin strokes, and hollow glyphs filled.

Outline ("hollow", bubble) digits are drawn as two thin rims around a stroke that is not inked: a model
trained on MNIST reads the rims, not the digit (an outlined 1 looks like a 0). `fill_hollow` fills the
holes that are long thin bands, as wide as a stroke and much wider than the rims around them, and leaves
the round counters of 0, 4, 6, 8 and 9 open.
"""

from __future__ import annotations

import cv2
import numpy as np

HOLLOW_BAND = 0.42  # a band hole is at most this wide, as a fraction of the glyph's long side (bold fonts reach 0.34)
HOLLOW_ELONGATION = 11.0  # area / half-width^2 of a band (a disc has ~3; counters of 0, 4, 6, 8, 9 measured 3-10)
HOLLOW_RIM = 2.0  # a band is at least this many times as wide as the rims around it
ANALYSIS = 128  # holes are measured on a mask at most this large


def max_pool(image: np.ndarray, factor: int) -> np.ndarray:
    """Block maximum: shrinks by `factor` (partial blocks at the edges too) while a one-pixel stroke stays whole."""
    return cv2.dilate(image, np.ones((factor, factor), np.uint8), anchor=(0, 0))[::factor, ::factor]


def _holes(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """The paper that ink encloses, 8-connected: (label count, labels, areas); label 0 is the ink and the outside."""
    ground = cv2.copyMakeBorder((~mask).view(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=1)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(ground, connectivity=8)
    outside = labels[0, 0]  # the padded border's component: the paper around the glyph
    labels = labels[1:-1, 1:-1]
    labels[labels == outside] = 0
    return count, labels, stats[:, cv2.CC_STAT_AREA]


def _half_widths(labels: np.ndarray, count: int) -> np.ndarray:
    """Each label's half-width: its deepest pixel's city-block distance to label 0 (the 3x3-cross erosions it
    survives, paper beyond the border)."""
    inside = labels > 0
    depth = cv2.distanceTransform(inside.view(np.uint8), cv2.DIST_L1, 3)
    half_width = np.zeros(count)
    np.maximum.at(half_width, labels[inside], depth[inside])
    return half_width


def fill_hollow(ink: np.ndarray, rim_width: float) -> np.ndarray | None:
    """The mask of band-shaped holes to fill in `ink`'s glyph (at ink's size), or None when there are none."""
    mask = ink >= 0.5
    factor = max(1, -(-max(mask.shape) // ANALYSIS))
    if factor > 1:  # any ink in a block counts: rims must stay closed at the smaller size
        mask = max_pool(mask.view(np.uint8), factor).view(bool)
    count, labels, area = _holes(mask)
    if count <= 2:  # only ink and the outside
        return None
    half_width = _half_widths(labels, count)
    rim = rim_width / factor
    band = (
        (2 * half_width <= HOLLOW_BAND * max(mask.shape))
        & (area >= HOLLOW_ELONGATION * half_width**2)
        & (2 * half_width >= HOLLOW_RIM * rim)
        & (half_width > 0)
    )
    band[0] = False  # the ink (and the outside, whose labels are now 0)
    if not band.any():
        return None
    fill = band[labels]
    if factor > 1:
        fill = cv2.resize(
            fill.view(np.uint8), (fill.shape[1] * factor, fill.shape[0] * factor), interpolation=cv2.INTER_NEAREST
        )
        fill = fill[: ink.shape[0], : ink.shape[1]].view(bool)
    return fill
