"""Digit images as users send them: drawn with PIL, typeset, or an MNIST digit photographed on paper."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# A '7' drawn on the web page's 280x280 canvas: the bar and the diagonal, then a crossbar (offsets from its centre).
SEVEN_STROKES: tuple[tuple[tuple[int, int], ...], ...] = (((-70, -85), (70, -85), (-5, 95)), ((-30, 5), (40, 5)))


def draw_seven(
    size: tuple[int, int] = (280, 280),
    *,
    width: int = 24,
    ink: int = 0,
    paper: int = 255,
    box: tuple[float, float, float, float] = (0.3, 0.2, 0.7, 0.8),
    mode: str = "L",
) -> Image.Image:
    """A '7' with PIL.ImageDraw inside the fractional `box` (left, top, right, bottom) of the canvas."""
    w, h = size
    left, top, right, bottom = box[0] * w, box[1] * h, box[2] * w, box[3] * h
    image = Image.new(mode, size, paper if mode == "L" else (paper,) * len(mode))
    fill = ink if mode == "L" else (ink,) * len(mode)
    ImageDraw.Draw(image).line([(left, top), (right, top), ((left + right) / 2, bottom)], fill=fill, width=width)
    return image


def draw_one(size: tuple[int, int] = (200, 200), *, width: int = 16) -> Image.Image:
    """A '1': one vertical stroke, black on white."""
    image = Image.new("L", size, 255)
    w, h = size
    ImageDraw.Draw(image).line([(w / 2, 0.15 * h), (w / 2, 0.85 * h)], fill=0, width=width)
    return image


def draw_zero(size: tuple[int, int] = (200, 200), *, width: int = 16) -> Image.Image:
    """A '0': an upright ellipse, black on white."""
    image = Image.new("L", size, 255)
    w, h = size
    ImageDraw.Draw(image).ellipse([0.3 * w, 0.15 * h, 0.7 * w, 0.85 * h], outline=0, width=width)
    return image


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    """The image as a file's bytes in `fmt`."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def as_photo(
    digit: np.ndarray,
    *,
    scale: int = 5,
    canvas: tuple[int, int] = (400, 300),
    at: tuple[int, int] = (30, 120),
    paper: int = 225,
) -> Image.Image:
    """An MNIST digit as a user would send it: dark ink on light paper, larger, off-centre."""
    big = Image.fromarray(255 - digit).resize((28 * scale, 28 * scale), Image.Resampling.BILINEAR)
    big = Image.fromarray(np.minimum(np.asarray(big), paper).astype(np.uint8))
    page = Image.new("L", canvas, paper)
    page.paste(big, at)
    return page


def digit_pngs(size: int = 56) -> list[bytes]:
    """Ten PNGs, the digits 0-9 typeset in dark ink on white paper, `size` pixels square."""
    font = ImageFont.load_default(size=int(size * 0.8))
    out = []
    for d in range(10):
        image = Image.new("L", (size, size), 255)
        ImageDraw.Draw(image).text((size // 2, size // 2), str(d), fill=0, font=font, anchor="mm")
        out.append(encode(image))
    return out
