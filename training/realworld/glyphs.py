"""Digit shapes from three sources (Hershey pen fonts, hand-written shapes, TrueType) as ink masks."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from training.realworld.splits import Split

SOURCES = ("hershey", "skeleton", "ttf")  # weight keys; "skeleton" is each split's own hand-written shapes


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value
class Glyph:
    """One digit shape: pen paths (unit height, centred on 0, y down) or a TrueType character."""

    source: str  # "hershey:scripts", "skeleton:euro1", "ttf:DejaVuSans-Bold"
    strokes: tuple[np.ndarray, ...] = ()
    font: str = ""  # TrueType file stem when strokes is empty
    char: str = ""


@dataclass(frozen=True, eq=False)
class Ink:
    """Ink coverage in [0, 1] for a box of the canvas whose top-left pixel is (x0, y0)."""

    mask: np.ndarray  # (h, w) float32
    x0: int
    y0: int


def _normalise(strokes: list[np.ndarray]) -> list[np.ndarray]:
    """Strokes scaled to unit height and centred on the origin."""
    pts = np.vstack(strokes)
    lo, hi = pts.min(0), pts.max(0)
    return [(s - (lo + hi) / 2) / max(hi[1] - lo[1], 1e-6) for s in strokes]


@functools.cache
def _hershey_digits(font: str) -> tuple[tuple[np.ndarray, ...], ...]:
    """The font's ten digits as normalised polylines (parsed once per process)."""
    from HersheyFonts import HersheyFonts

    hf = HersheyFonts()
    hf.load_default_font(font)
    digits = tuple(tuple(_normalise([np.array(s, float) for s in hf.strokes_for_text(str(d))])) for d in range(10))
    for stroke in (s for d in digits for s in d):
        stroke.setflags(write=False)  # shared by every sample: nothing may bend the cached copy
    return digits


@functools.cache
def font_dir() -> Path:
    """matplotlib's bundled TrueType folder (only the path is used, nothing is plotted)."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@functools.lru_cache(maxsize=512)
def _ttf(font: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_dir() / f"{font}.ttf"), size)


def pick_glyph(rng: np.random.Generator, digit: int, weights: dict[str, float], pen_frac: float, split: Split) -> Glyph:
    """A glyph of `digit` from the split's sources by `weights`; Hershey fonts too fine for the pen are skipped."""
    fonts = [f for f, lo in split.hershey.items() if pen_frac >= lo]
    names = [s for s in SOURCES if weights.get(s, 0) * split.source_weight[s] > 0 and (s != "hershey" or fonts)]
    p = np.array([weights[s] * split.source_weight[s] for s in names], float)
    source = names[rng.choice(len(names), p=p / p.sum())]
    if source == "hershey":
        font = str(rng.choice(fonts))
        return Glyph(f"hershey:{font}", _hershey_digits(font)[digit])
    if source == "skeleton":
        variant, strokes = split.hand(digit, rng)
        return Glyph(f"{split.hand_prefix}:{variant}", tuple(_normalise(strokes)))
    font = str(rng.choice(split.ttf))
    return Glyph(f"ttf:{font}", font=font, char=str(digit))


def wobble(strokes: tuple[np.ndarray, ...], rng: np.random.Generator, amp: float) -> list[np.ndarray]:
    """Resample the paths finely and bend them with a smooth random field (a hand's slow tremor)."""
    freq = rng.uniform(1.5, 4.0, (3, 2, 2)) * 2 * np.pi  # (component, output axis, input axis)
    phase = rng.uniform(0, 2 * np.pi, (3, 2))
    out = []
    for s in strokes:
        seg = np.linalg.norm(np.diff(s, axis=0), axis=1)
        arc = np.concatenate([[0.0], np.cumsum(seg)])
        n = max(2, int(arc[-1] / 0.01) + 1)
        at = np.linspace(0, arc[-1], n)
        fine = np.column_stack([np.interp(at, arc, s[:, 0]), np.interp(at, arc, s[:, 1])]) if arc[-1] > 0 else s
        field = np.sin(np.einsum("kaj,nj->nka", freq, fine) + phase).sum(1) / 3  # (n, 2)
        out.append(fine + amp * field)
    return out


def _draw_paths(paths: list[np.ndarray], size: tuple[int, int], pen: float) -> Image.Image:
    """Paths with a round pen of diameter `pen` (all in supersampled pixels) on a black 'L' image."""
    img = Image.new("L", size, 0)
    draw = ImageDraw.Draw(img)
    r = pen / 2
    for p in paths:
        pts = [tuple(q) for q in p]
        if len(pts) > 1:
            draw.line(pts, fill=255, width=max(1, round(pen)))
        # A dot at every (finely spaced) vertex: PIL's wide polylines leave notches at short segments' joins.
        for x, y in pts:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    return img


def _box(corners: np.ndarray, margin: float) -> tuple[int, int, int, int]:
    """Integer canvas box (x0, y0, w, h) around `corners`, padded, in whole canvas pixels."""
    lo = np.floor(corners.min(0) - margin).astype(int)
    hi = np.ceil(corners.max(0) + margin).astype(int)
    return int(lo[0]), int(lo[1]), int(hi[0] - lo[0]), int(hi[1] - lo[1])


def _stroke_ink(paths: list[np.ndarray], A: np.ndarray, t: np.ndarray, pen: float, hollow: float, ss: int) -> Ink:
    """Pen paths mapped by `A @ p + t` and drawn anti-aliased (at `ss` times, then box-reduced)."""
    canvas = [p @ A.T + t for p in paths]
    x0, y0, w, h = _box(np.vstack(canvas), pen)
    local = [(p - (x0, y0)) * ss for p in canvas]
    mask = np.asarray(_draw_paths(local, (w * ss, h * ss), pen * ss).reduce(ss), np.float32) / 255
    if hollow > 0:  # a bubble letter: the thick stroke minus the same paths drawn thinner
        inner = _draw_paths(local, (w * ss, h * ss), max(pen - 2 * hollow, 1.0) * ss).reduce(ss)
        mask = np.clip(mask - np.asarray(inner, np.float32) / 255, 0, 1)
    return Ink(mask, x0, y0)


def _text_mask(font: ImageFont.FreeTypeFont, char: str, stroke: int) -> tuple[Image.Image, np.ndarray]:
    """The character in white on black with an outward stroke of `stroke` px, and its pen origin there."""
    left, top, right, bottom = font.getbbox(char, stroke_width=stroke)
    img = Image.new("L", (right - left + 4, bottom - top + 4), 0)
    origin = np.array([2 - left, 2 - top], float)
    ImageDraw.Draw(img).text(tuple(origin), char, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    return img, origin


def _ttf_ink(glyph: Glyph, A: np.ndarray, t: np.ndarray, bold: float, hollow: float, ss: int) -> Ink:
    """A TrueType digit, thickened by `bold` px, warped by the affine map (outline only when `hollow`)."""
    height = float(np.linalg.norm(A[:, 1]))  # about the canvas pixels per unit of glyph height (exact unslanted)
    font = _ttf(glyph.font, max(8, round(height * ss * 1.4)))
    plain, o_plain = _text_mask(font, glyph.char, 0)
    left, tp, right, b = plain.getbbox()
    k = (b - tp) / (height * ss)  # font pixels per supersampled canvas pixel
    outer, o_outer = _text_mask(font, glyph.char, round((bold + hollow) * ss * k))
    centre = np.array([(left + right) / 2, (tp + b) / 2]) - o_plain + o_outer  # the unit box's centre, in `outer`
    M = A / (b - tp)  # font pixels -> canvas pixels
    corners = np.array([[0, 0], [outer.width, 0], [0, outer.height], [outer.width, outer.height]]) - centre
    x0, y0, w, h = _box(corners @ M.T + t, 2)
    inv = np.linalg.inv(M * ss)  # Image.transform samples the source at inverse-mapped output pixels
    off = centre - inv @ ((t - (x0, y0)) * ss)
    coeffs = (inv[0, 0], inv[0, 1], off[0], inv[1, 0], inv[1, 1], off[1])

    def warp(im: Image.Image) -> np.ndarray:
        out = im.transform((w * ss, h * ss), Image.AFFINE, coeffs, Image.BILINEAR).reduce(ss)
        return np.asarray(out, np.float32) / 255

    mask = warp(outer)
    if hollow > 0:  # keep only the ring the outward stroke adds: an outline font
        bolded, o_bold = _text_mask(font, glyph.char, round(bold * ss * k))
        inner = Image.new("L", outer.size, 0)
        inner.paste(bolded, tuple(np.round(o_outer - o_bold).astype(int)))
        mask = np.clip(mask - warp(inner), 0, 1)
    return Ink(mask, x0, y0)


def render(
    glyph: Glyph,
    A: np.ndarray,
    t: np.ndarray,
    *,
    pen: float,
    rng: np.random.Generator,
    wobble_amp: float = 0.01,
    hollow: float = 0.0,
    ss: int = 3,
) -> Ink:
    """Ink for `glyph` placed by the affine map unit box -> canvas (`A @ p + t`).

    `pen` is the nib diameter in canvas pixels for stroke glyphs and extra outward weight for TrueType;
    `hollow` > 0 keeps only an outline of that thickness.
    """
    if glyph.strokes:
        return _stroke_ink(wobble(glyph.strokes, rng, wobble_amp), A, t, pen, hollow, ss)
    return _ttf_ink(glyph, A, t, pen, hollow, ss)
