"""What the conditions share: placing a digit's ink on a canvas, paper and ink colours, light, and the camera."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

from training.realworld.glyphs import Ink, pick_glyph, render
from training.realworld.splits import Look, Split

Rng = np.random.Generator
HANDWRITING = {"hershey": 1.0, "skeleton": 1.5}
ALL_SOURCES = {"hershey": 1.0, "skeleton": 1.0, "ttf": 0.6}


def affine(
    rng: Rng, height: float, *, rot: float = 0.0, shear: float = 0.0, aspect: tuple[float, float] = (0.8, 1.2)
) -> np.ndarray:
    """Unit glyph -> canvas pixels: scale (tall-narrow or wide), slant, then rotate; plus a small hand jitter."""
    theta = np.deg2rad(rot + rng.normal(0, 2.0))
    c, s = np.cos(theta), np.sin(theta)
    slant = np.array([[1.0, -(shear + rng.normal(0, 0.05))], [0.0, 1.0]])  # x -= s*y: positive leans right
    return np.array([[c, -s], [s, c]]) @ slant @ np.diag([height * rng.uniform(*aspect), height])


def stamp(cover: np.ndarray, ink: Ink) -> None:
    """Add a glyph's ink to the canvas coverage (overlapping strokes do not get darker than one)."""
    h, w = cover.shape
    y0, x0 = max(ink.y0, 0), max(ink.x0, 0)
    y1, x1 = min(ink.y0 + ink.mask.shape[0], h), min(ink.x0 + ink.mask.shape[1], w)
    if y1 > y0 and x1 > x0:
        part = ink.mask[y0 - ink.y0 : y1 - ink.y0, x0 - ink.x0 : x1 - ink.x0]
        np.maximum(cover[y0:y1, x0:x1], part, out=cover[y0:y1, x0:x1])


def draw_digit(
    rng: Rng,
    cover: np.ndarray,
    digit: int,
    split: Split,
    *,
    weights: dict[str, float],
    height: float,
    centre: tuple[float, float],
    pen: float,
    hollow: float = 0.0,
    **pose,
) -> str:
    """Draw one digit of the split's sources into `cover`; returns its glyph source."""
    glyph = pick_glyph(rng, digit, weights, pen / height, split)
    # A TrueType digit already has strokes (~12% of its height); a wider pen only adds weight around them.
    weight = pen if glyph.strokes else max(0.0, pen - 0.12 * height) / 2
    A, amp = affine(rng, height, **pose), rng.uniform(0.004, 0.014)
    # A digit cut off by the edge is not fair to read: shift it in, or shrink it until it fits.
    while (
        ink := inside(
            render(glyph, A, np.array(centre), pen=weight, rng=rng, hollow=hollow, wobble_amp=amp), cover.shape
        )
    ) is None:
        A, weight, hollow = A * 0.9, weight * 0.9, hollow * 0.9
    stamp(cover, ink)
    return glyph.source


def hollow_digit(
    rng: Rng, cover: np.ndarray, digit: int, split: Split, *, height: float, ring: float, centre: tuple[float, float]
) -> str:
    """An outline digit of ring thickness `ring`: a TrueType outline, or a thick pen path minus its interior."""
    if rng.random() < 0.45:  # TrueType: the pen value is extra weight, the ring the outline
        return draw_digit(
            rng,
            cover,
            digit,
            split,
            weights={"ttf": 1.0},
            height=height,
            hollow=ring,
            pen=height * rng.uniform(0.12, 0.2),
            centre=centre,
            aspect=(0.9, 1.15),
        )
    pen = max(height * rng.uniform(0.12, 0.17), 3 * ring)  # wider closes the loops of 6, 8 and 9
    return draw_digit(
        rng,
        cover,
        digit,
        split,
        weights=HANDWRITING,
        height=height,
        hollow=ring,
        pen=pen,
        centre=centre,
        aspect=(0.9, 1.2),
    )


def inside(ink: Ink, shape: tuple[int, int], margin: int = 2) -> Ink | None:
    """`ink` moved just enough to lie wholly on the canvas, or None when it is too big to."""
    rows, cols = np.nonzero(ink.mask > 0.01)
    top, bottom, left, right = rows.min() + ink.y0, rows.max() + ink.y0, cols.min() + ink.x0, cols.max() + ink.x0
    h, w = shape
    if bottom - top > h - 2 * margin or right - left > w - 2 * margin:
        return None
    dy = max(margin - top, 0) - max(bottom - (h - 1 - margin), 0)
    dx = max(margin - left, 0) - max(right - (w - 1 - margin), 0)
    return Ink(ink.mask, ink.x0 + dx, ink.y0 + dy)


def paper(rng: Rng, h: int, w: int, look: Look, lo: float = 238, tint: bool = False) -> np.ndarray:
    """(h, w, 3) float32 plain paper, white to off-white (darker by the look's shift), optionally tinted."""
    tone = rng.uniform(lo + look.paper_shift, 255)
    hue = rng.choice(look.tints) if tint else (1.0, 1.0, 1.0)
    return np.broadcast_to(np.float32(tone) * np.array(hue, np.float32), (h, w, 3)).copy()


def paint(
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


def soften(cover: np.ndarray, radius: float) -> np.ndarray:
    """Optical blur of the ink alone (plain paper looks the same blurred), on the inked box only."""
    rows, cols = np.flatnonzero(cover.any(1)), np.flatnonzero(cover.any(0))
    if rows.size:
        pad = int(3 * radius) + 2
        box = np.s_[max(rows[0] - pad, 0) : rows[-1] + pad + 1, max(cols[0] - pad, 0) : cols[-1] + pad + 1]
        img = Image.fromarray(np.round(cover[box] * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(radius))
        cover[box] = np.asarray(img, np.float32) / 255
    return cover


def pen_ink(rng: Rng, look: Look) -> tuple[tuple[int, int, int], float]:
    """A writing colour and its grain (the look's last pen is graphite: grainy)."""
    names = list(look.pens)
    name = str(rng.choice(names, p=look.pen_p))
    return look.pens[name], (look.grain if name == names[-1] else 0.0)


def square(rng: Rng, look: Look, lo: int = 250, hi: int = 310) -> int:
    """A square canvas side around the ~280 px a drawing pad gives."""
    lo, hi = look.size(lo, hi)
    return int(rng.integers(lo, hi + 1))


def to_image(img: np.ndarray, mode: str = "RGB") -> Image.Image:
    """Float (h, w, 3) pixels -> an 8-bit image in `mode`."""
    out = Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8), "RGB")
    return out if mode == "RGB" else out.convert(mode)


def encoded(image: Image.Image, fmt: str, **options) -> Image.Image:
    """`image` saved as `fmt` and decoded again, still reporting that format as an upload would."""
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    out = Image.open(io.BytesIO(buf.getvalue()))
    out.load()
    return out


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in [-1, 1] at 1/8 scale: light fields are smooth, so they are built small and resized."""
    v, u = np.mgrid[-1 : 1 : (h // 8 + 2) * 1j, -1 : 1 : (w // 8 + 2) * 1j].astype(np.float32)
    return u, v


def _gradient(rng: Rng, u: np.ndarray, v: np.ndarray, strength: float) -> np.ndarray:
    """A one-sided gradient (one corner darker), plus a vignette or a phone's soft shadow."""
    c, s = np.cos(angle := rng.uniform(0, 2 * np.pi)), np.sin(angle)
    light = 1 - rng.uniform(0.2, 0.4) * strength * (1 + (c * u + s * v) / (abs(c) + abs(s))) / 2
    if rng.random() < 0.5:
        light *= 1 - rng.uniform(0.15, 0.3) * (u**2 + v**2) / 2
    else:  # the phone's shadow: a blurred dark half-plane, on the side away from the light
        a2, edge = angle + rng.uniform(-1.0, 1.0), rng.uniform(0.4, 0.9)
        dist = np.cos(a2) * u + np.sin(a2) * v - edge
        light *= 1 - rng.uniform(0.2, 0.4) * strength / (1 + np.exp(-dist / rng.uniform(0.05, 0.15)))
    return light


def _lamp(rng: Rng, u: np.ndarray, v: np.ndarray, strength: float) -> np.ndarray:
    """A desk lamp's spot off to one side, then a fold in the paper or the sharp shadow of a hand."""
    at, reach = rng.uniform(0, 2 * np.pi), rng.uniform(0.7, 1.5)  # the lamp stands to one side of the page
    cx, cy = reach * np.cos(at), reach * np.sin(at)
    light = 1 - rng.uniform(0.25, 0.5) * strength * np.clip(((u - cx) ** 2 + (v - cy) ** 2) / 5, 0, 1)
    a, edge = rng.uniform(0, 2 * np.pi), rng.uniform(-0.9, 0.9)
    dist = np.cos(a) * u + np.sin(a) * v - edge
    if rng.random() < 0.5:  # a fold: a dark crease and one face of the page tilted from the light
        light *= 1 - rng.uniform(0.1, 0.2) * np.exp(-((dist / 0.03) ** 2)) - rng.uniform(0.0, 0.1) * (dist > 0)
    else:
        light *= 1 - rng.uniform(0.2, 0.4) * strength * (1 + np.tanh(dist / rng.uniform(0.04, 0.1))) / 2  # a sharp edge
    return light


def _window(rng: Rng, u: np.ndarray, v: np.ndarray, strength: float) -> np.ndarray:
    """Daylight from a window: a broad fall-off across the page, the soft shadow of the phone or a hand (a wide
    penumbra), then glare (a washed-out patch where ink loses contrast) or a curled edge's dark band."""
    c, s = np.cos(angle := rng.uniform(0, 2 * np.pi)), np.sin(angle)
    light = 1 - rng.uniform(0.15, 0.35) * strength * np.clip((c * u + s * v + 1.4) / 2.8, 0, 1) ** 1.5
    cx, cy = rng.uniform(-1.2, 1.2, 2)
    rx, ry = rng.uniform(0.3, 0.8, 2)
    blob = ((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2
    light *= 1 - rng.uniform(0.15, 0.35) * strength / (1 + np.exp(np.minimum((blob - 1) / rng.uniform(0.2, 0.5), 60.0)))
    if rng.random() < 0.5:  # glare: light added on top, ink and paper alike pale towards white
        gx, gy, gr = *rng.uniform(-0.8, 0.8, 2), rng.uniform(0.15, 0.45)
        light += rng.uniform(0.2, 0.5) * np.exp(-((u - gx) ** 2 + (v - gy) ** 2) / (2 * gr**2))
    else:  # the page curls up at one edge: a band along it turns darker
        side = int(rng.integers(4))
        depth = (1 - (u, -u, v, -v)[side]) / 2  # 0 at that edge, 1 at the opposite one
        light *= 1 - rng.uniform(0.2, 0.45) * np.exp(-depth / rng.uniform(0.03, 0.1))
    return light


LIGHTS = {"gradient": _gradient, "lamp": _lamp, "window": _window}


def lighting(rng: Rng, h: int, w: int, look: Look, strength: float = 1.0) -> np.ndarray:
    """(h, w) illumination by one of the look's models; `strength` > 1 makes the gradients and shadows deeper."""
    u, v = _grid(h, w)
    model = look.lighting[0] if len(look.lighting) == 1 else look.lighting[int(rng.integers(len(look.lighting)))]
    light = LIGHTS[model](rng, u, v, strength)
    light = np.clip(light, 0.2, 1.35).astype(np.float32)  # glare lifts paper past white: to_image clips it
    return np.asarray(Image.fromarray(light, "F").resize((w, h), Image.BILINEAR))


def camera(
    rng: Rng, cover: np.ndarray, colour: tuple[int, int, int], grain: float, look: Look, **paper_args
) -> Image.Image:
    """The phone photo of ink on paper: focus blur, paper, uneven light, sensor noise, JPEG."""
    h, w = cover.shape
    cover = soften(cover, rng.uniform(*look.wide(0.5, 1.6)))  # focus and hand shake
    strength = paper_args.pop("strength", 1.0)
    img = paint(paper(rng, h, w, look, **{"lo": 185, "tint": True, **paper_args}), cover, colour, grain * 0.5, rng)
    img *= lighting(rng, h, w, look, strength)[..., None]
    noisy = img + rng.standard_normal((h, w, 1), np.float32) * rng.uniform(*look.noise)  # after the lens
    return encoded(to_image(noisy), "JPEG", quality=int(rng.integers(*look.jpeg)))


def dot(cover: np.ndarray, x: float, y: float, r: float, strength: float) -> None:
    """An anti-aliased round speck of radius `r` px."""
    x0, y0 = max(int(x - r - 1), 0), max(int(y - r - 1), 0)
    yy, xx = np.ogrid[y0 : min(int(y + r + 2), cover.shape[0]), x0 : min(int(x + r + 2), cover.shape[1])]
    stamp(cover, Ink(np.clip(r + 0.5 - np.hypot(xx - x, yy - y), 0, 1).astype(np.float32) * strength, x0, y0))
