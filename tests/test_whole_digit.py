"""The whole digit (issue 20, point 3): ink that belongs to one digit stays together, whatever broke it apart.

Digits are drawn here in separated pieces (the drawings are this module's own): a wide 0 whose top and bottom
are missing, its sides and the dot-like ends of a light 0, a 4 whose stem stands apart, a 5 with its top bar
apart, a dashed 7, and a 0 whose ink fades to nothing at the top and bottom. Each goes through the service's
preprocessing clean, as a photo under uneven light, and as a light pen photographed; the frame must hold every
piece, framed as the whole digit is, never one fragment (one side of a 0 reads as "1").
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from serving import preprocess as P
from testkit.digits import encode

Stroke = list[tuple[float, float]]


def arc(a0: float, a1: float, n: int = 24, rx: float = 0.42, ry: float = 0.45) -> Stroke:
    """Points of an ellipse about the unit square's centre, from angle a0 to a1 (degrees, counter-clockwise)."""
    return [
        (0.5 + rx * math.cos(math.radians(a)), 0.5 - ry * math.sin(math.radians(a))) for a in np.linspace(a0, a1, n)
    ]


# Each case: the digit in pieces, and the same digit whole (which frames it as the digit).
PIECES: dict[str, tuple[list[Stroke], list[Stroke]]] = {
    "wide 0, its top and bottom missing": ([arc(132, 228), arc(-48, 48)], [arc(0, 360, 60)]),
    "0, its sides and dot-like ends": (
        [arc(140, 220), arc(-40, 40), arc(89, 91, 2), arc(269, 271, 2)],
        [arc(0, 360, 60)],
    ),
    "4, its stem apart": (
        [[(0.45, 0.1), (0.08, 0.6), (0.45, 0.6)], [(0.9, 0.1), (0.9, 0.95)]],
        [[(0.45, 0.1), (0.08, 0.6), (0.9, 0.6)], [(0.9, 0.1), (0.9, 0.95)]],
    ),
    "5, its top bar apart": (
        [[(0.3, 0.22), (0.28, 0.46), *arc(130, -130, rx=0.26, ry=0.22)], [(0.4, 0.06), (0.82, 0.06)]],
        [[(0.82, 0.06), (0.3, 0.06), (0.28, 0.46), *arc(130, -130, rx=0.26, ry=0.22)]],
    ),
    "dashed 7": (
        [[(0.15, 0.1), (0.4, 0.1)], [(0.5, 0.1), (0.85, 0.1)], [(0.8, 0.2), (0.65, 0.45)], [(0.6, 0.55), (0.45, 0.82)]],
        [[(0.15, 0.1), (0.85, 0.1), (0.45, 0.82)]],
    ),
}


def draw(strokes: list[Stroke], size=(280, 280), box=(0.25, 0.1, 0.75, 0.9), width: int = 14) -> Image.Image:
    """Dark strokes (round pen, round caps) on white, each stroke's unit square mapped onto the fractional box."""
    w, h = size
    image = Image.new("L", size, 255)
    pen = ImageDraw.Draw(image)
    for stroke in strokes:
        points = [((box[0] + x * (box[2] - box[0])) * w, (box[1] + y * (box[3] - box[1])) * h) for x, y in stroke]
        pen.line(points, fill=0, width=width, joint="curve")
        for x, y in (points[0], points[-1]):
            pen.ellipse([x - width / 2, y - width / 2, x + width / 2, y + width / 2], fill=0)
    return image


def photograph(ink: np.ndarray, *, seed: int, contrast: float) -> Image.Image:
    """Ink coverage (0..1) as a JPEG photo: grey paper, light falling off across the page, noise and blur."""
    rng = np.random.default_rng(seed)
    h, w = ink.shape
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    angle = rng.uniform(0, 2 * math.pi)
    light = 1 - 0.5 * (0.5 + 0.5 * (math.cos(angle) * (2 * x - 1) + math.sin(angle) * (2 * y - 1)) / 1.5)
    grey = (215 - contrast * ink) * light + rng.normal(0, 4, ink.shape)
    photo = Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.0))
    return Image.open(io.BytesIO(encode(photo, "JPEG", quality=80)))


def as_photo(strokes: list[Stroke], *, seed: int, width: int, contrast: float) -> Image.Image:
    """The strokes drawn small in a 900x700 page and photographed."""
    drawing = draw(strokes, (900, 700), (0.4, 0.3, 0.62, 0.72), width)
    return photograph(1 - np.asarray(drawing, np.float32) / 255, seed=seed, contrast=contrast)


def extent(frame: np.ndarray) -> tuple[int, int]:
    """Height and width of a frame's ink (>= 0.2)."""
    rows, cols = np.nonzero(frame.reshape(28, 28) >= 0.2)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


VARIANTS = {
    "drawn": lambda strokes: draw(strokes),
    "photo": lambda strokes: as_photo(strokes, seed=1, width=8, contrast=170),
    "light pen, photo": lambda strokes: as_photo(strokes, seed=2, width=5, contrast=40),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("case", list(PIECES))
def test_a_digit_in_pieces_is_framed_whole(case, variant):
    pieces, whole = PIECES[case]
    frame = P.from_image(VARIANTS[variant](pieces))[0]
    (h, w), (wh, ww) = extent(frame), extent(P.from_image(draw(whole))[0])
    # A fragment (one side of the 0, the 4 without its stem) is framed narrower or shorter by a third or more.
    assert h >= 0.85 * wh and w >= 0.85 * ww, ((h, w), (wh, ww))


def faded_zero(power: float, size=(900, 700), box=(0.4, 0.3, 0.62, 0.72), width: int = 6) -> np.ndarray:
    """Ink coverage of a 0 whose ink fades as |cos(angle)| ** power: full at its sides, none at top and bottom."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cover = np.zeros((h, w), np.float32)
    for a in np.linspace(0, 360, 720, endpoint=False):
        (x, y), strength = arc(a, a, 1)[0], abs(math.cos(math.radians(a))) ** power
        px, py = (box[0] + x * (box[2] - box[0])) * w, (box[1] + y * (box[3] - box[1])) * h
        sl = np.s_[int(py) - width : int(py) + width + 1, int(px) - width : int(px) + width + 1]
        disc = (xx[sl] - px) ** 2 + (yy[sl] - py) ** 2 <= (width / 2) ** 2
        np.maximum(cover[sl], disc * strength, out=cover[sl])
    return cover


@pytest.mark.parametrize("power", [2, 4, 8])
def test_a_zero_fading_at_top_and_bottom_keeps_both_sides(power):
    """A light pen on unevenly lit paper: what is left of the 0 is its two sides, and both are the digit."""
    for image in (
        Image.fromarray((255 * (1 - faded_zero(power))).astype(np.uint8)),
        photograph(faded_zero(power), seed=3, contrast=120),
    ):
        frame = P.from_image(image)[0]
        columns = frame.sum(axis=0)
        rows, cols = np.nonzero(frame >= 0.2)
        middle = (cols.min() + cols.max()) / 2
        left, right = columns[: int(middle)].sum(), columns[int(middle) + 1 :].sum()
        assert min(left, right) >= 0.3 * (left + right), (left, right)  # both sides, not one stroke (a "1")
        assert cols.max() - cols.min() + 1 >= 12  # and as wide as a 0 framed in 20x20
