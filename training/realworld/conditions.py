"""The original nine real-world conditions: a seeded generator, a digit and a split in, an image and its source out.

Each split renders every condition with its own glyph sources and look (`splits.py`); a range written here is
dev's, and the sealed split widens it (`Look.wide`) or scales it (`Look.size`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from training.realworld import hard
from training.realworld.paper import (
    ALL_SOURCES,
    HANDWRITING,
    camera,
    dot,
    draw_digit,
    hollow_digit,
    paint,
    paper,
    pen_ink,
    soften,
    square,
    to_image,
)
from training.realworld.splits import Split

Rng = np.random.Generator
Renderer = Callable[[Rng, int, Split], tuple[Image.Image, str]]


def fine_pen(rng: Rng, digit: int, split: Split) -> tuple[Image.Image, str]:
    """A fine pen: strokes 1-3 px on a ~280 px canvas."""
    look = split.look
    s = square(rng, look)
    cover = np.zeros((s, s), np.float32)
    src = draw_digit(
        rng,
        cover,
        digit,
        split,
        weights=HANDWRITING,
        height=s * rng.uniform(*look.wide(0.55, 0.8)),
        centre=tuple(s / 2 + rng.normal(0, 0.04 * s, 2)),
        pen=rng.uniform(*look.wide(1.0, 3.0)) * s / 280,
        shear=rng.uniform(*look.wide(-0.15, 0.25)),
    )
    colour, grain = pen_ink(rng, look)
    return to_image(paint(paper(rng, s, s, look, tint=True), cover, colour, grain * 0.5, rng)), src


def marker(rng: Rng, digit: int, split: Split) -> tuple[Image.Image, str]:
    """A marker: strokes 20-40 px on ~280 px, the case where thick 7s, 1s and 4s get read as 8."""
    look = split.look
    s = square(rng, look)
    pen = rng.uniform(*look.wide(20, 40)) * s / 280
    height = float(np.clip(pen / rng.uniform(0.12, 0.17), 0.55 * s, 0.8 * s))
    cover = np.zeros((s, s), np.float32)
    src = draw_digit(
        rng,
        cover,
        digit,
        split,
        weights=ALL_SOURCES,
        height=height,
        centre=tuple(s / 2 + rng.normal(0, 0.02 * s, 2)),
        pen=pen,
        aspect=(0.9, 1.2),
    )
    colour = look.markers[rng.integers(len(look.markers))]
    return to_image(paint(paper(rng, s, s, look), cover, colour)), src


def photo(rng: Rng, digit: int, split: Split) -> tuple[Image.Image, str]:
    """A phone photo of a digit on paper: large, grey/cream, uneven light, noise, blur, JPEG."""
    look = split.look
    long, short = int(rng.integers(*look.photo_long)), int(rng.integers(*look.photo_short))
    h, w = (long, min(short, long)) if rng.random() < 0.5 else (min(short, long), long)
    cover = np.zeros((h, w), np.float32)
    height = min(h, w) * rng.uniform(*look.wide(0.3, 0.6))
    src = draw_digit(
        rng,
        cover,
        digit,
        split,
        weights=HANDWRITING,
        height=height,
        pen=height * rng.uniform(*look.wide(0.04, 0.1)),
        centre=(w / 2 + rng.normal(0, 0.06 * w), h / 2 + rng.normal(0, 0.06 * h)),
        rot=rng.uniform(*look.wide(-6, 6)),
    )
    colour, grain = pen_ink(rng, look)
    return camera(rng, cover, colour, grain, look), src


def inverted(rng: Rng, digit: int, split: Split) -> tuple[Image.Image, str]:
    """Light strokes on a dark board; sometimes light strokes on a transparent RGBA canvas."""
    look = split.look
    s = square(rng, look, 220, 360)
    cover = np.zeros((s, s), np.float32)
    height = s * rng.uniform(*look.wide(0.55, 0.8))
    src = draw_digit(
        rng,
        cover,
        digit,
        split,
        weights=ALL_SOURCES,
        height=height,
        pen=height * rng.uniform(*look.wide(0.05, 0.14)),
        centre=tuple(s / 2 + rng.normal(0, 0.04 * s, 2)),
    )
    colour = look.light_inks[rng.integers(len(look.light_inks))]
    if rng.random() < 0.3:  # a drawing app's export: coloured strokes, alpha = coverage, no background
        rgba = np.zeros((s, s, 4), np.uint8)
        rgba[..., :3] = np.where(cover[..., None] > 0, np.array(colour, np.uint8), 0)
        rgba[..., 3] = np.round(cover * 255).astype(np.uint8)
        return Image.fromarray(rgba, "RGBA"), src
    board = np.array(look.boards[rng.integers(len(look.boards))], np.float32)
    bg = np.broadcast_to(board, (s, s, 3)) + rng.normal(0, 3, (s, s, 1)).astype(np.float32)
    chalk = rng.uniform(0.2, 0.5) if rng.random() < 0.5 else 0.0
    return to_image(paint(bg, cover, colour, chalk, rng)), src


def small_offcentre(rng: Rng, digit: int, split: Split) -> tuple[Image.Image, str]:
    """A small digit (5-15% of the height) off-centre in a large image, with specks elsewhere."""
    look = split.look
    h, w = (int(v) for v in rng.integers(*look.size(400, 1001), 2))
    height = min(h * rng.uniform(0.05, 0.15), 0.4 * w)  # a tall narrow page (sealed's sizes) still fits it
    margin = height
    while True:  # anywhere at least a quarter of the short side from the centre, clear of the border
        cx, cy = rng.uniform(margin, w - margin), rng.uniform(margin, h - margin)
        if np.hypot(cx - w / 2, cy - h / 2) >= 0.25 * min(h, w):
            break
    cover = np.zeros((h, w), np.float32)
    src = draw_digit(
        rng,
        cover,
        digit,
        split,
        weights=ALL_SOURCES,
        height=height,
        centre=(cx, cy),
        pen=max(1.2, height * rng.uniform(0.07, 0.14)),
    )
    for _ in range(int(rng.integers(2, 7))):  # dust and pen dots, far smaller than the digit and away from it
        while np.hypot((px := rng.uniform(0, w)) - cx, (py := rng.uniform(0, h)) - cy) < 1.5 * height:
            pass
        dot(cover, px, py, rng.uniform(0.5, min(2.5, 0.08 * height)), rng.uniform(0.4, 1.0))
    colour, grain = pen_ink(rng, look)
    return to_image(paint(paper(rng, h, w, look), cover, colour, grain * 0.5, rng)), src


def rotated(rng: Rng, digit: int, split: Split) -> tuple[Image.Image, str]:
    """Tilted or slanted writing: rotation up to +-15 degrees and shear up to +-0.35."""
    look = split.look
    s = square(rng, look)
    rot, shear = rng.uniform(*look.wide(-15, 15)), rng.uniform(*look.wide(-0.35, 0.35))
    if abs(rot) < 6 and abs(shear) < 0.15:  # make every sample visibly tilted
        shear = np.sign(shear or 1) * rng.uniform(0.15, 0.35)
    if abs(np.rad2deg(np.arctan(shear)) + rot) > 28:  # lean and turn add up: keep a 1 from lying down
        rot = -rot
    cover = np.zeros((s, s), np.float32)
    height = s * rng.uniform(*look.wide(0.5, 0.68))
    src = draw_digit(
        rng,
        cover,
        digit,
        split,
        weights=ALL_SOURCES,
        height=height,
        pen=height * rng.uniform(*look.wide(0.06, 0.12)),
        centre=tuple(s / 2 + rng.normal(0, 0.03 * s, 2)),
        rot=rot,
        shear=shear,
    )
    colour, grain = pen_ink(rng, look)
    return to_image(paint(paper(rng, s, s, look), cover, colour, grain * 0.5, rng)), src


def styles(rng: Rng, digit: int, split: Split) -> tuple[Image.Image, str]:
    """Writing-style variants: European 1 and crossed 7, open 4, looped 2, straight-stemmed 9, ..."""
    look = split.look
    s = square(rng, look)
    cover = np.zeros((s, s), np.float32)
    height = s * rng.uniform(*look.wide(0.55, 0.78))
    # Mostly the hand-authored variants; Hershey's script 1 (flagged) and 7 (curved stem) add a few more.
    src = draw_digit(
        rng,
        cover,
        digit,
        split,
        weights={"skeleton": 1.0, "hershey": 0.25},
        height=height,
        pen=height * rng.uniform(*look.wide(0.05, 0.12)),
        centre=tuple(s / 2 + rng.normal(0, 0.04 * s, 2)),
        shear=rng.uniform(-0.1, 0.25),
    )
    colour, grain = pen_ink(rng, look)
    return to_image(paint(paper(rng, s, s, look), cover, colour, grain * 0.5, rng)), src


def outline(rng: Rng, digit: int, split: Split) -> tuple[Image.Image, str]:
    """Hollow digits: an outline font, or a thick stroke minus its interior (bubble letters)."""
    look = split.look
    s = square(rng, look, 250, 320)
    cover = np.zeros((s, s), np.float32)
    height = s * rng.uniform(0.6, 0.8)
    ring = rng.uniform(*look.wide(2.0, 6.0)) * s / 280
    src = hollow_digit(rng, cover, digit, split, height=height, ring=ring, centre=(s / 2, s / 2))
    bg = paper(rng, s, s, look, lo=225, tint=True)
    colour = (*list(look.pens.values())[:2], look.markers[2])[rng.integers(3)]
    return to_image(paint(bg, cover, colour)), src


def _scanner_marks(rng: Rng, img: np.ndarray) -> None:
    """A faint ruled line or the paper's edge along one border, as a flatbed scan shows."""
    h, w, _ = img.shape
    if rng.random() < 0.5:
        y = int(h * (rng.uniform(0.02, 0.07) if rng.random() < 0.5 else rng.uniform(0.93, 0.98)))
        img[y : y + max(1, h // 400)] *= np.array([0.82, 0.88, 0.97], np.float32)
    else:
        band = max(2, int(rng.uniform(0.01, 0.04) * min(h, w)))
        side = rng.integers(4)
        view = (img[:band], img[-band:], img[:, :band], img[:, -band:])[side]
        view[:] = rng.uniform(90, 170)


def scanned(rng: Rng, digit: int, split: Split) -> tuple[Image.Image, str]:
    """Written on paper and scanned: thick-ish strokes off-centre on a larger page, faint noise, a border mark."""
    look = split.look
    w = int(rng.integers(*look.size(450, 901)))
    h = int(w * rng.uniform(0.7, 1.4))
    height = min(h, w) * rng.uniform(*look.wide(0.2, 0.42))
    cx = rng.uniform(max(height, 0.15 * w), min(w - height, 0.85 * w))
    cy = rng.uniform(max(height, 0.15 * h), min(h - height, 0.85 * h))
    cover = np.zeros((h, w), np.float32)
    src = draw_digit(
        rng,
        cover,
        digit,
        split,
        weights=ALL_SOURCES,
        height=height,
        pen=height * rng.uniform(0.08, 0.15),
        centre=(cx, cy),
    )
    colour = (*list(look.pens.values())[:2], (50, 50, 50))[rng.integers(3)]
    img = paint(paper(rng, h, w, look, lo=236), soften(cover, rng.uniform(0.3, 0.8)), colour)
    _scanner_marks(rng, img)
    pil = to_image(img + rng.standard_normal((h, w, 1), np.float32) * rng.uniform(*look.wide(1, 3)))
    return (pil.convert("L") if rng.random() < 0.5 else pil), src


CONDITIONS: dict[str, Renderer] = {  # the original nine, then issue 20's five (hard.py)
    "fine_pen": fine_pen,
    "marker": marker,
    "photo": photo,
    "inverted": inverted,
    "small_offcentre": small_offcentre,
    "rotated": rotated,
    "styles": styles,
    "outline": outline,
    "scanned": scanned,
    **hard.CONDITIONS,
}
