"""One renderer per real-world condition: a seeded generator and a digit in, an image and its glyph source out."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageFilter

from training.realworld.glyphs import Ink, pick_glyph, render

Rng = np.random.Generator
Renderer = Callable[[Rng, int], tuple[Image.Image, str]]

# Ink people write with on paper: black and blue ballpoint, graphite (lighter, grainy).
PENS = {"black": (22, 22, 28), "blue": (28, 48, 150), "pencil": (78, 78, 86)}
MARKERS = ((12, 12, 12), (20, 40, 165), (185, 25, 30), (15, 105, 50))
BOARDS = ((8, 8, 8), (34, 54, 44), (44, 47, 54), (14, 18, 48))  # black, chalkboard green, slate, navy
LIGHT_INKS = ((250, 250, 250), (236, 236, 226), (250, 228, 90), (120, 220, 250), (255, 160, 205))
HANDWRITING = {"hershey": 1.0, "skeleton": 1.5}
ALL_SOURCES = {"hershey": 1.0, "skeleton": 1.0, "ttf": 0.6}


def _affine(
    rng: Rng, height: float, *, rot: float = 0.0, shear: float = 0.0, aspect: tuple[float, float] = (0.8, 1.2)
) -> np.ndarray:
    """Unit glyph -> canvas pixels: scale (tall-narrow or wide), slant, then rotate; plus a small hand jitter."""
    theta = np.deg2rad(rot + rng.normal(0, 2.0))
    c, s = np.cos(theta), np.sin(theta)
    slant = np.array([[1.0, -(shear + rng.normal(0, 0.05))], [0.0, 1.0]])  # x -= s*y: positive leans right
    return np.array([[c, -s], [s, c]]) @ slant @ np.diag([height * rng.uniform(*aspect), height])


def _stamp(cover: np.ndarray, ink: Ink) -> None:
    """Add a glyph's ink to the canvas coverage (overlapping strokes do not get darker than one)."""
    h, w = cover.shape
    y0, x0 = max(ink.y0, 0), max(ink.x0, 0)
    y1, x1 = min(ink.y0 + ink.mask.shape[0], h), min(ink.x0 + ink.mask.shape[1], w)
    if y1 > y0 and x1 > x0:
        part = ink.mask[y0 - ink.y0 : y1 - ink.y0, x0 - ink.x0 : x1 - ink.x0]
        np.maximum(cover[y0:y1, x0:x1], part, out=cover[y0:y1, x0:x1])


def _digit(
    rng: Rng,
    cover: np.ndarray,
    digit: int,
    *,
    weights: dict[str, float],
    height: float,
    centre: tuple[float, float],
    pen: float,
    hollow: float = 0.0,
    **pose,
) -> str:
    """Draw one digit into `cover`; returns its glyph source."""
    glyph = pick_glyph(rng, digit, weights, pen / height)
    # A TrueType digit already has strokes (~12% of its height); a wider pen only adds weight around them.
    weight = pen if glyph.strokes else max(0.0, pen - 0.12 * height) / 2
    A, amp = _affine(rng, height, **pose), rng.uniform(0.004, 0.014)
    # A digit cut off by the edge is not fair to read: shift it in, or shrink it until it fits.
    while (
        ink := _inside(
            render(glyph, A, np.array(centre), pen=weight, rng=rng, hollow=hollow, wobble_amp=amp), cover.shape
        )
    ) is None:
        A, weight, hollow = A * 0.9, weight * 0.9, hollow * 0.9
    _stamp(cover, ink)
    return glyph.source


def _inside(ink: Ink, shape: tuple[int, int], margin: int = 2) -> Ink | None:
    """`ink` moved just enough to lie wholly on the canvas, or None when it is too big to."""
    rows, cols = np.nonzero(ink.mask > 0.01)
    top, bottom, left, right = rows.min() + ink.y0, rows.max() + ink.y0, cols.min() + ink.x0, cols.max() + ink.x0
    h, w = shape
    if bottom - top > h - 2 * margin or right - left > w - 2 * margin:
        return None
    dy = max(margin - top, 0) - max(bottom - (h - 1 - margin), 0)
    dx = max(margin - left, 0) - max(right - (w - 1 - margin), 0)
    return Ink(ink.mask, ink.x0 + dx, ink.y0 + dy)


def _paper(rng: Rng, h: int, w: int, lo: float = 238, tint: bool = False) -> np.ndarray:
    """(h, w, 3) float32 plain paper, white to off-white, optionally cream or grey."""
    tone = rng.uniform(lo, 255)
    hue = rng.choice([(1.0, 1.0, 1.0), (1.0, 0.97, 0.88), (0.97, 0.98, 1.0)]) if tint else (1.0, 1.0, 1.0)
    return np.broadcast_to(np.float32(tone) * np.array(hue, np.float32), (h, w, 3)).copy()


def _paint(
    bg: np.ndarray, cover: np.ndarray, colour: tuple[int, int, int], grain: float = 0.0, rng: Rng | None = None
) -> np.ndarray:
    """Ink of `colour` over `bg`, in place and only around the ink; `grain` > 0 breaks it up like graphite."""
    rows, cols = np.flatnonzero(cover.any(1)), np.flatnonzero(cover.any(0))
    if rows.size:
        box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        a = cover[box]
        if grain > 0:
            a = a * (1 - grain * rng.random(a.shape, np.float32))
        bg[box] = bg[box] * (1 - a[..., None]) + np.array(colour, np.float32) * a[..., None]
    return bg


def _soften(cover: np.ndarray, radius: float) -> np.ndarray:
    """Optical blur of the ink alone (plain paper looks the same blurred), on the inked box only."""
    rows, cols = np.flatnonzero(cover.any(1)), np.flatnonzero(cover.any(0))
    if rows.size:
        pad = int(3 * radius) + 2
        box = np.s_[max(rows[0] - pad, 0) : rows[-1] + pad + 1, max(cols[0] - pad, 0) : cols[-1] + pad + 1]
        img = Image.fromarray(np.round(cover[box] * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(radius))
        cover[box] = np.asarray(img, np.float32) / 255
    return cover


def _pen_ink(rng: Rng) -> tuple[tuple[int, int, int], float]:
    """A writing colour and its grain (pencil is grainy)."""
    name = str(rng.choice(list(PENS), p=[0.4, 0.4, 0.2]))
    return PENS[name], (0.45 if name == "pencil" else 0.0)


def _square(rng: Rng, lo: int = 250, hi: int = 310) -> int:
    """A square canvas side around the ~280 px a drawing pad gives."""
    return int(rng.integers(lo, hi + 1))


def _rgb(img: np.ndarray, mode: str = "RGB") -> Image.Image:
    """Float (h, w, 3) pixels -> an 8-bit image in `mode`."""
    out = Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8), "RGB")
    return out if mode == "RGB" else out.convert(mode)


def fine_pen(rng: Rng, digit: int) -> tuple[Image.Image, str]:
    """A fine pen: strokes 1-3 px on a ~280 px canvas."""
    s = _square(rng)
    cover = np.zeros((s, s), np.float32)
    src = _digit(
        rng,
        cover,
        digit,
        weights=HANDWRITING,
        height=s * rng.uniform(0.55, 0.8),
        centre=tuple(s / 2 + rng.normal(0, 0.04 * s, 2)),
        pen=rng.uniform(1.0, 3.0) * s / 280,
        shear=rng.uniform(-0.15, 0.25),
    )
    colour, grain = _pen_ink(rng)
    return _rgb(_paint(_paper(rng, s, s, tint=True), cover, colour, grain * 0.5, rng)), src


def marker(rng: Rng, digit: int) -> tuple[Image.Image, str]:
    """A marker: strokes 20-40 px on ~280 px, the case where thick 7s, 1s and 4s get read as 8."""
    s = _square(rng)
    pen = rng.uniform(20, 40) * s / 280
    height = float(np.clip(pen / rng.uniform(0.12, 0.17), 0.55 * s, 0.8 * s))
    cover = np.zeros((s, s), np.float32)
    src = _digit(
        rng,
        cover,
        digit,
        weights=ALL_SOURCES,
        height=height,
        centre=tuple(s / 2 + rng.normal(0, 0.02 * s, 2)),
        pen=pen,
        aspect=(0.9, 1.2),
    )
    colour = MARKERS[rng.integers(len(MARKERS))]
    return _rgb(_paint(_paper(rng, s, s), cover, colour)), src


def _lighting(rng: Rng, h: int, w: int) -> np.ndarray:
    """(h, w) illumination: a one-sided gradient (one corner 20-40% darker), plus a vignette or a soft shadow."""
    v, u = np.mgrid[-1 : 1 : (h // 8 + 2) * 1j, -1 : 1 : (w // 8 + 2) * 1j].astype(np.float32)  # smooth: 1/8 scale
    c, s = np.cos(angle := rng.uniform(0, 2 * np.pi)), np.sin(angle)
    light = 1 - rng.uniform(0.2, 0.4) * (1 + (c * u + s * v) / (abs(c) + abs(s))) / 2
    if rng.random() < 0.5:
        light *= 1 - rng.uniform(0.15, 0.3) * (u**2 + v**2) / 2
    else:  # the phone's shadow: a blurred dark half-plane, on the side away from the light
        a2, edge = angle + rng.uniform(-1.0, 1.0), rng.uniform(0.4, 0.9)
        dist = np.cos(a2) * u + np.sin(a2) * v - edge
        light *= 1 - rng.uniform(0.2, 0.4) / (1 + np.exp(-dist / rng.uniform(0.05, 0.15)))
    return np.asarray(Image.fromarray(light.astype(np.float32), "F").resize((w, h), Image.BILINEAR))


def photo(rng: Rng, digit: int) -> tuple[Image.Image, str]:
    """A phone photo of a digit on paper: large, grey/cream, uneven light, noise, blur, JPEG."""
    long, short = int(rng.integers(800, 1201)), int(rng.integers(600, 1001))
    h, w = (long, min(short, long)) if rng.random() < 0.5 else (min(short, long), long)
    cover = np.zeros((h, w), np.float32)
    height = min(h, w) * rng.uniform(0.3, 0.6)
    src = _digit(
        rng,
        cover,
        digit,
        weights=HANDWRITING,
        height=height,
        pen=height * rng.uniform(0.04, 0.1),
        centre=(w / 2 + rng.normal(0, 0.06 * w), h / 2 + rng.normal(0, 0.06 * h)),
        rot=rng.uniform(-6, 6),
    )
    colour, grain = _pen_ink(rng)
    cover = _soften(cover, rng.uniform(0.5, 1.6))  # focus and hand shake
    img = _paint(_paper(rng, h, w, lo=185, tint=True), cover, colour, grain * 0.5, rng)
    img *= _lighting(rng, h, w)[..., None]
    noisy = img + rng.standard_normal((h, w, 1), np.float32) * rng.uniform(2, 7)  # sensor noise, after the lens
    buf = io.BytesIO()
    _rgb(noisy).save(buf, "JPEG", quality=int(rng.integers(40, 86)))
    jpeg = Image.open(io.BytesIO(buf.getvalue()))
    jpeg.load()  # decoded now, still reporting format "JPEG" as an uploaded photo would
    return jpeg, src


def inverted(rng: Rng, digit: int) -> tuple[Image.Image, str]:
    """Light strokes on a dark board; sometimes light strokes on a transparent RGBA canvas."""
    s = _square(rng, 220, 360)
    cover = np.zeros((s, s), np.float32)
    height = s * rng.uniform(0.55, 0.8)
    src = _digit(
        rng,
        cover,
        digit,
        weights=ALL_SOURCES,
        height=height,
        pen=height * rng.uniform(0.05, 0.14),
        centre=tuple(s / 2 + rng.normal(0, 0.04 * s, 2)),
    )
    colour = LIGHT_INKS[rng.integers(len(LIGHT_INKS))]
    if rng.random() < 0.3:  # a drawing app's export: coloured strokes, alpha = coverage, no background
        rgba = np.zeros((s, s, 4), np.uint8)
        rgba[..., :3] = np.where(cover[..., None] > 0, np.array(colour, np.uint8), 0)
        rgba[..., 3] = np.round(cover * 255).astype(np.uint8)
        return Image.fromarray(rgba, "RGBA"), src
    board = np.array(BOARDS[rng.integers(len(BOARDS))], np.float32)
    bg = np.broadcast_to(board, (s, s, 3)) + rng.normal(0, 3, (s, s, 1)).astype(np.float32)
    chalk = rng.uniform(0.2, 0.5) if rng.random() < 0.5 else 0.0
    return _rgb(_paint(bg, cover, colour, chalk, rng)), src


def _dot(cover: np.ndarray, x: float, y: float, r: float, strength: float) -> None:
    """An anti-aliased round speck of radius `r` px."""
    x0, y0 = max(int(x - r - 1), 0), max(int(y - r - 1), 0)
    yy, xx = np.ogrid[y0 : min(int(y + r + 2), cover.shape[0]), x0 : min(int(x + r + 2), cover.shape[1])]
    _stamp(cover, Ink(np.clip(r + 0.5 - np.hypot(xx - x, yy - y), 0, 1).astype(np.float32) * strength, x0, y0))


def small_offcentre(rng: Rng, digit: int) -> tuple[Image.Image, str]:
    """A small digit (5-15% of the height) off-centre in a large image, with specks elsewhere."""
    h, w = (int(v) for v in rng.integers(400, 1001, 2))
    height = h * rng.uniform(0.05, 0.15)
    margin = height
    while True:  # anywhere at least a quarter of the short side from the centre, clear of the border
        cx, cy = rng.uniform(margin, w - margin), rng.uniform(margin, h - margin)
        if np.hypot(cx - w / 2, cy - h / 2) >= 0.25 * min(h, w):
            break
    cover = np.zeros((h, w), np.float32)
    src = _digit(
        rng,
        cover,
        digit,
        weights=ALL_SOURCES,
        height=height,
        centre=(cx, cy),
        pen=max(1.2, height * rng.uniform(0.07, 0.14)),
    )
    for _ in range(int(rng.integers(2, 7))):  # dust and pen dots, far smaller than the digit and away from it
        while np.hypot((px := rng.uniform(0, w)) - cx, (py := rng.uniform(0, h)) - cy) < 1.5 * height:
            pass
        _dot(cover, px, py, rng.uniform(0.5, min(2.5, 0.08 * height)), rng.uniform(0.4, 1.0))
    colour, grain = _pen_ink(rng)
    return _rgb(_paint(_paper(rng, h, w), cover, colour, grain * 0.5, rng)), src


def rotated(rng: Rng, digit: int) -> tuple[Image.Image, str]:
    """Tilted or slanted writing: rotation up to +-15 degrees and shear up to +-0.35."""
    s = _square(rng)
    rot, shear = rng.uniform(-15, 15), rng.uniform(-0.35, 0.35)
    if abs(rot) < 6 and abs(shear) < 0.15:  # make every sample visibly tilted
        shear = np.sign(shear or 1) * rng.uniform(0.15, 0.35)
    if abs(np.rad2deg(np.arctan(shear)) + rot) > 28:  # lean and turn add up: keep a 1 from lying down
        rot = -rot
    cover = np.zeros((s, s), np.float32)
    height = s * rng.uniform(0.5, 0.68)
    src = _digit(
        rng,
        cover,
        digit,
        weights=ALL_SOURCES,
        height=height,
        pen=height * rng.uniform(0.06, 0.12),
        centre=tuple(s / 2 + rng.normal(0, 0.03 * s, 2)),
        rot=rot,
        shear=shear,
    )
    colour, grain = _pen_ink(rng)
    return _rgb(_paint(_paper(rng, s, s), cover, colour, grain * 0.5, rng)), src


def styles(rng: Rng, digit: int) -> tuple[Image.Image, str]:
    """Writing-style variants: European 1 and crossed 7, open 4, looped 2, straight-stemmed 9, ..."""
    s = _square(rng)
    cover = np.zeros((s, s), np.float32)
    height = s * rng.uniform(0.55, 0.78)
    # Mostly the hand-authored variants; Hershey's script 1 (flagged) and 7 (curved stem) add a few more.
    src = _digit(
        rng,
        cover,
        digit,
        weights={"skeleton": 1.0, "hershey": 0.25},
        height=height,
        pen=height * rng.uniform(0.05, 0.12),
        centre=tuple(s / 2 + rng.normal(0, 0.04 * s, 2)),
        shear=rng.uniform(-0.1, 0.25),
    )
    colour, grain = _pen_ink(rng)
    return _rgb(_paint(_paper(rng, s, s), cover, colour, grain * 0.5, rng)), src


def outline(rng: Rng, digit: int) -> tuple[Image.Image, str]:
    """Hollow digits: an outline font, or a thick stroke minus its interior (bubble letters)."""
    s = _square(rng, 250, 320)
    cover = np.zeros((s, s), np.float32)
    height = s * rng.uniform(0.6, 0.8)
    ring = rng.uniform(2.0, 6.0) * s / 280
    if rng.random() < 0.45:  # TrueType: the pen value is extra weight, the ring the outline
        src = _digit(
            rng,
            cover,
            digit,
            weights={"ttf": 1.0},
            height=height,
            hollow=ring,
            pen=height * rng.uniform(0.12, 0.2),
            centre=(s / 2, s / 2),
            aspect=(0.9, 1.15),
        )
    else:
        pen = max(height * rng.uniform(0.12, 0.17), 3 * ring)  # wider closes the loops of 6, 8 and 9
        src = _digit(
            rng,
            cover,
            digit,
            weights=HANDWRITING,
            height=height,
            hollow=ring,
            pen=pen,
            centre=(s / 2, s / 2),
            aspect=(0.9, 1.2),
        )
    bg = _paper(rng, s, s, lo=225, tint=True)
    colour = (PENS["black"], PENS["blue"], MARKERS[2])[rng.integers(3)]
    return _rgb(_paint(bg, cover, colour)), src


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


def scanned(rng: Rng, digit: int) -> tuple[Image.Image, str]:
    """Written on paper and scanned: thick-ish strokes off-centre on a larger page, faint noise, a border mark."""
    w = int(rng.integers(450, 901))
    h = int(w * rng.uniform(0.7, 1.4))
    height = min(h, w) * rng.uniform(0.2, 0.42)
    cx = rng.uniform(max(height, 0.15 * w), min(w - height, 0.85 * w))
    cy = rng.uniform(max(height, 0.15 * h), min(h - height, 0.85 * h))
    cover = np.zeros((h, w), np.float32)
    src = _digit(
        rng, cover, digit, weights=ALL_SOURCES, height=height, pen=height * rng.uniform(0.08, 0.15), centre=(cx, cy)
    )
    colour = (PENS["black"], PENS["blue"], (50, 50, 50))[rng.integers(3)]
    img = _paint(_paper(rng, h, w, lo=236), _soften(cover, rng.uniform(0.3, 0.8)), colour)
    _scanner_marks(rng, img)
    pil = _rgb(img + rng.standard_normal((h, w, 1), np.float32) * rng.uniform(1, 3))
    return (pil.convert("L") if rng.random() < 0.5 else pil), src


CONDITIONS: dict[str, Renderer] = {
    "fine_pen": fine_pen,
    "marker": marker,
    "photo": photo,
    "inverted": inverted,
    "small_offcentre": small_offcentre,
    "rotated": rotated,
    "styles": styles,
    "outline": outline,
    "scanned": scanned,
}
