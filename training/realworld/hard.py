"""The five conditions issue 20 added, where models failed on digits they had never seen: low resolution, light
strokes on unevenly lit paper, pens thick enough to fill loops, the web page's canvas, and hollow digits photographed.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from training.realworld.paper import (
    ALL_SOURCES,
    HANDWRITING,
    camera,
    draw_digit,
    encoded,
    hollow_digit,
    paint,
    paper,
    pen_ink,
    square,
    to_image,
)
from training.realworld.splits import Split

Rng = np.random.Generator
CANVAS = 280  # serving/static/app.js: the drawing pad's side; white (#fff) strokes on black (#000), PNG
SUPERSAMPLE = 12  # a low-resolution digit is drawn this much finer, then averaged per grid cell
UPSCALERS = (Image.NEAREST, Image.BILINEAR, Image.BICUBIC)


def _photo_frame(rng: Rng, split: Split) -> tuple[int, int]:
    """A phone photo's (h, w), portrait or landscape."""
    long, short = int(rng.integers(*split.look.photo_long)), int(rng.integers(*split.look.photo_short))
    return (long, min(short, long)) if rng.random() < 0.5 else (min(short, long), long)


def web_canvas(cover: np.ndarray) -> Image.Image:
    """Coverage as the page's canvas exports it: white ink on opaque black, RGBA, encoded as PNG."""
    v = np.round(cover * 255).astype(np.uint8)
    return encoded(Image.fromarray(np.dstack([v, v, v, np.full_like(v, 255)]), "RGBA"), "PNG")


def _crop(cover: np.ndarray) -> np.ndarray:
    """The inked box of `cover`."""
    rows, cols = np.flatnonzero(cover.max(1) > 0.02), np.flatnonzero(cover.max(0) > 0.02)
    return cover[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _grid(rng: Rng, ink: np.ndarray, tall: int) -> np.ndarray:
    """The ink averaged onto a coarse grid `tall` cells high, in a frame it fills or with a few cells of margin."""
    wide = max(2, min(round(tall * ink.shape[1] / ink.shape[0]), tall + 2))
    small = np.asarray(Image.fromarray(ink, "F").resize((wide, tall), Image.BOX), np.float32)
    if rng.random() < 0.4:  # fills its frame, as 8x8 digit sets store them: only the width is padded
        side = max(tall, wide)
        pad = [(0, 0), ((side - wide) // 2, side - wide - (side - wide) // 2)]
    else:
        pad = [tuple(rng.integers(1, max(2, tall // 3) + 1, 2)), tuple(rng.integers(1, max(2, tall // 3) + 1, 2))]
    small = np.pad(small, pad)
    if rng.random() < 0.4:  # few grey levels: 1-bit to 4-bit scans, the 0-16 of 8x8 digit sets
        # Two or four levels on small grids leave too few cells to tell a 9 from a 5: only on larger ones.
        levels = int(rng.choice([2, 4, 8, 17][(tall < 13) + (tall < 10) :]))
        # A scanner's 1-bit threshold sits below half coverage, or thin strokes break into dots.
        small = np.round(np.clip(small + 0.2 * (levels == 2), 0, 1) * (levels - 1)) / (levels - 1)
    return np.clip(small, 0, 1)


def lowres(rng: Rng, digit: int, split: Split) -> tuple[Image.Image, str]:
    """A digit 7-16 px tall on a coarse grid, upscaled blocky or blurred to 28-300 px; either polarity."""
    look = split.look
    tall = int(rng.integers(7, 17))
    size = SUPERSAMPLE * 24
    cover = np.zeros((size, size), np.float32)
    height = SUPERSAMPLE * 16
    # About one grid cell or more, so strokes survive; at most a sixth of the height, so an 8 keeps two holes.
    pen = min(rng.uniform(*look.wide(1.0, 1.6)), tall / 6) * height / tall
    # Serifs and double hairlines turn to mush on the smallest grids: plain hand-written shapes there, mostly.
    weights = ALL_SOURCES if tall >= 11 else {"skeleton": 1.0, "ttf": 0.3}
    src = draw_digit(rng, cover, digit, split, weights=weights, height=height, centre=(size / 2, size / 2), pen=pen)
    small = _grid(rng, _crop(cover), tall)
    if rng.random() < 0.55:  # dark on light
        bg, ink = rng.uniform(200, 255), rng.uniform(0, 70)
    else:
        bg, ink = rng.uniform(0, 55), rng.uniform(185, 255)
    grey = Image.fromarray(np.clip(bg + (ink - bg) * small + 0.5, 0, 255).astype(np.uint8), "L")
    out = max(28, int(rng.integers(*look.size(28, 301))))
    scale = out / grey.height
    method = UPSCALERS[int(rng.choice(3, p=[0.45, 0.3, 0.25]))]
    return grey.resize((max(1, round(grey.width * scale)), out), method), src


def light_photo(rng: Rng, digit: int, split: Split) -> tuple[Image.Image, str]:
    """Thin light strokes (pencil, a light or drying pen) photographed on grey, unevenly lit paper."""
    look = split.look
    h, w = _photo_frame(rng, split)
    cover = np.zeros((h, w), np.float32)
    height = min(h, w) * rng.uniform(*look.wide(0.3, 0.6))
    src = draw_digit(
        rng,
        cover,
        digit,
        split,
        weights=HANDWRITING,
        height=height,
        pen=max(1.5, height * rng.uniform(*look.wide(0.015, 0.035))),
        centre=(w / 2 + rng.normal(0, 0.06 * w), h / 2 + rng.normal(0, 0.06 * h)),
        rot=rng.uniform(*look.wide(-6, 6)),
    )
    # A light hand or a drying pen: the ink comes and goes along the stroke (a smooth field, 1/40 scale).
    field = rng.random((h // 40 + 2, w // 40 + 2)).astype(np.float32)
    fade = np.asarray(Image.fromarray(field, "F").resize((w, h), Image.BICUBIC), np.float32)
    cover *= rng.uniform(*look.wide(0.3, 0.55)) * np.clip(0.3 + fade, 0.3, 1.0)
    colour, grain = pen_ink(rng, look)
    return camera(rng, cover, colour, grain, look, lo=150, strength=1.6), src


def thick_pen(rng: Rng, digit: int, split: Split) -> tuple[Image.Image, str]:
    """A pen 0.18-0.35 of the digit's height, loops filling; half on the web canvas, half dark on paper."""
    look = split.look
    on_canvas = rng.random() < 0.5
    s = CANVAS if on_canvas else square(rng, look)
    frac = rng.uniform(0.18, 0.35)
    if digit == 0:  # a 0 whose hole fills is a blot, not a digit anyone reads
        frac = min(frac, 0.24)
    height = s * rng.uniform(*look.wide(0.42, 0.6))
    cover = np.zeros((s, s), np.float32)
    src = draw_digit(
        rng,
        cover,
        digit,
        split,
        weights=ALL_SOURCES,
        height=height,
        centre=tuple(s / 2 + rng.normal(0, 0.03 * s, 2)),
        pen=frac * height,
        aspect=(0.9, 1.25),
    )
    if on_canvas:
        return web_canvas(cover), src
    colour = look.markers[rng.integers(len(look.markers))]
    return to_image(paint(paper(rng, s, s, look), cover, colour)), src


def canvas(rng: Rng, digit: int, split: Split) -> tuple[Image.Image, str]:
    """The web page's canvas as it exports: 280x280, white on black, round caps and joins, pens of 3-45 px, PNG."""
    look = split.look
    pen = float(np.exp(rng.uniform(np.log(3), np.log(45))))
    height = float(np.clip(CANVAS * rng.uniform(*look.wide(0.45, 0.75)), pen / 0.3, 0.85 * CANVAS))
    cover = np.zeros((CANVAS, CANVAS), np.float32)
    src = draw_digit(
        rng,
        cover,
        digit,
        split,
        weights=HANDWRITING,
        height=height,
        centre=tuple(CANVAS / 2 + rng.normal(0, 0.06 * CANVAS, 2)),
        pen=pen,
        shear=rng.uniform(*look.wide(-0.1, 0.25)),
    )
    return web_canvas(cover), src


def hollow_photo(rng: Rng, digit: int, split: Split) -> tuple[Image.Image, str]:
    """Outline (hollow) digits photographed: bubble letters or an outline font through the phone camera."""
    look = split.look
    h, w = _photo_frame(rng, split)
    cover = np.zeros((h, w), np.float32)
    height = min(h, w) * rng.uniform(*look.wide(0.3, 0.55))
    ring = max(1.5, height * rng.uniform(*look.wide(0.012, 0.035)))
    centre = (w / 2 + rng.normal(0, 0.05 * w), h / 2 + rng.normal(0, 0.05 * h))
    src = hollow_digit(rng, cover, digit, split, height=height, ring=ring, centre=centre)
    colour, grain = pen_ink(rng, look)
    return camera(rng, cover, colour, grain, look), src


CONDITIONS = {
    "lowres": lowres,
    "light_photo": light_photo,
    "thick_pen": thick_pen,
    "canvas": canvas,
    "hollow_photo": hollow_photo,
}
