"""Paper and ink (serving.paper): a phone's shadow is paper, a light pen on grey paper is ink, blank paper is blank."""

from __future__ import annotations

import io
import math

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from serving import errors, paper
from serving import preprocess as P
from testkit.digits import digit_pngs, encode


def digit(size=(1000, 750), width: int = 5) -> np.ndarray:
    """Ink coverage (0..1) of a 7 drawn a third of the page tall, a little off-centre."""
    image = Image.new("L", size, 0)
    w, h = size
    points = [(0.42 * w, 0.35 * h), (0.6 * w, 0.35 * h), (0.47 * w, 0.68 * h)]
    ImageDraw.Draw(image).line(points, fill=255, width=width, joint="curve")
    return np.asarray(image, np.float32) / 255


def photo(ink: np.ndarray, *, seed: int, contrast: float, shadow: bool = True, base: float = 200.0) -> Image.Image:
    """A JPEG photo of the ink on grey paper: light falling off across the page and, with `shadow`, a phone's
    shadow (a dark half-plane with a soft edge) over part of it; sensor noise and a little blur."""
    rng = np.random.default_rng(seed)
    h, w = ink.shape
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    angle = rng.uniform(0, 2 * math.pi)
    light = 1 - 0.3 * (0.5 + 0.5 * (math.cos(angle) * (2 * x - 1) + math.sin(angle) * (2 * y - 1)) / 1.5)
    if shadow:  # across the page, clear of the digit's middle: the edge runs past the digit
        edge = math.cos(angle + 0.8) * (x - 0.5) + math.sin(angle + 0.8) * (y - 0.4) - 0.12
        light = light * (1 - 0.35 / (1 + np.exp(-edge / 0.01)))
    grey = (base - contrast * ink) * light + rng.normal(0, 3, ink.shape)
    image = Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.8))
    return Image.open(io.BytesIO(encode(image, "JPEG", quality=85)))


def extent(frame: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(frame.reshape(28, 28) >= 0.2)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Best correlation over shifts of at most one pixel."""
    t = b.ravel() - b.mean()
    best = -1.0
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            s = np.roll(a.reshape(28, 28), (dy, dx), (0, 1)).ravel()
            s = s - s.mean()
            best = max(best, float(s @ t / np.sqrt((s @ s) * (t @ t))))
    return best


@pytest.mark.parametrize("seed", range(4))
def test_a_phones_shadow_across_the_page_is_paper_not_ink(seed):
    clean = P.from_image(Image.fromarray((255 * (1 - digit())).astype(np.uint8)))[0]
    frame = P.from_image(photo(digit(), seed=seed, contrast=60))[0]
    # A shadow's edge read as ink would add a bar to the frame and shrink the digit beside it.
    assert similarity(frame, clean) > 0.8 and extent(frame) == pytest.approx(extent(clean), abs=2)


def test_a_light_pen_on_grey_paper_is_read_and_blank_paper_is_not():
    """Ink 30 grey levels darker than grey paper (a pencil under a dim lamp; c729eef's threshold was 24 levels after
    its reduction) is a digit; the same photo without it is blank."""
    clean = P.from_image(Image.fromarray((255 * (1 - digit())).astype(np.uint8)))[0]
    for seed in range(3):
        frame = P.from_image(photo(digit(), seed=seed, contrast=30, shadow=False, base=150))[0]
        assert similarity(frame, clean) > 0.8
        with pytest.raises(errors.NoInk):
            P.from_image(photo(np.zeros((750, 1000), np.float32), seed=seed, contrast=30, base=150))


def test_noise_is_measured_from_neighbouring_pixels_whatever_the_shading():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:200, 0:260] / 200
    for sigma in (1.0, 3.0, 8.0):
        shaded = 120 + 60 * x - 40 * y**2 + rng.normal(0, sigma, x.shape)
        shaded[80:90, 30:200] -= 90  # a stroke: a few pairs, far from the median
        assert paper.noise(shaded.astype(np.float32)) == pytest.approx(sigma, rel=0.15)
    assert paper.noise(np.zeros((1, 1), np.float32)) == 0.0 and paper.noise(np.ones((5, 1), np.float32)) == 0.0


def test_box_reduce_is_the_block_mean_of_the_edge_padded_image():
    rng = np.random.default_rng(1)
    for _ in range(100):
        image = (rng.random((int(rng.integers(1, 60)), int(rng.integers(1, 60)))) * 255).astype(np.float32)
        factor = int(rng.integers(1, 6))
        h, w = image.shape
        padded = np.pad(image, ((0, -h % factor), (0, -w % factor)), mode="edge").astype(np.float64)
        expected = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor).mean((1, 3))
        np.testing.assert_allclose(paper.box_reduce(image, factor), expected, rtol=1e-5, atol=1e-3)


def test_the_opening_follows_a_shadows_edge_and_removes_strokes_thinner_than_its_kernel():
    """Paper that is not flat: an opening of the ink-bright image keeps a soft shadow edge and drops the ink."""
    y, x = np.mgrid[0:180, 0:240].astype(np.float32)
    page = 200 - 70 / (1 + np.exp(-(x + 0.5 * y - 150) / 4))  # a shadow's edge, diagonal, soft
    inked = page.copy()
    cv2.line(inked, (40, 30), (200, 150), 60.0, 3)  # a stroke 3 px wide across it
    error = np.abs(paper._opened_paper(inked, True, 43) - page)
    # Within a few grey levels of the true paper nearly everywhere, on the edge too; only where the stroke crosses
    # the edge does the opening clip a corner.
    assert np.percentile(error, 99) < 3.0 and error[(page > 140) & (page < 190)].mean() < 2.5


# A 7 on a 10 x 10 grid, filling it: its bar runs along the top edge (an 8x8 digit set's crop).
SEVEN = ["##########", "#########.", "......##..", ".....##...", ".....##...", "....##....", "....##....",
         "...##.....", "...##.....", "..##......"]  # fmt: skip


@pytest.mark.parametrize("method", [Image.BILINEAR, Image.BICUBIC])
@pytest.mark.parametrize("dark", [True, False])
def test_a_blurred_low_resolution_digit_filling_its_frame_keeps_the_stroke_along_its_edge(method, dark):
    """Upscaled from a coarse grid and blurred, a digit filling its frame leaves few blocks of bare paper: the page
    is still one grey level, and the 7's bar along the top edge is ink, not a shadow along the paper's edge."""
    grid = np.array([[c == "#" for c in row] for row in SEVEN], np.float32)
    grid = np.pad(grid, ((0, 0), (1, 1)))  # only the width padded, as such sets store digits
    paper_level, ink_level = (235.0, 30.0) if dark else (20.0, 225.0)
    small = Image.fromarray((paper_level + (ink_level - paper_level) * grid).astype(np.uint8))
    frame = P.from_image(small.resize((192, 160), method))[0]
    rows = np.nonzero(frame.max(axis=1) >= 0.3)[0]
    top = frame[rows.min() : rows.min() + 4]  # the top of the digit as framed
    cols = np.nonzero(frame.max(axis=0) >= 0.3)[0]
    # The bar spans most of the digit's width; without it the 7 is a lone slanted stroke, a 1.
    assert np.count_nonzero(top.max(axis=0) >= 0.3) >= 0.6 * (cols.max() - cols.min() + 1)


# A bold 6 on a 12 x 10 grid, filling it top to bottom (strokes three cells wide, its loop half the width).
BOLD_SIX = ["....####..", "..#####...", ".###......", ".###......", "###.####..", "#########.", "####...###",
            "###....###", "###....###", ".###..###.", "..######..", "...####..."]  # fmt: skip


@pytest.mark.parametrize("dark", [True, False])
def test_a_bold_digit_filling_an_upscaled_frame_is_ink_on_its_borders_paper(dark):
    """Strokes a quarter of the digit wide, filling the frame: against its surroundings the paper inside the loop
    looks like the stroke, so the strokes' contrast reads the polarity backwards (paper.BORDER_SPREAD = 0 does, for
    both polarities). The border, one paper level that the digit reaches at top and bottom, says which side is ink."""
    grid = np.pad(np.array([[c == "#" for c in row] for row in BOLD_SIX], np.float32), ((0, 0), (1, 1)))
    paper_level, ink_level = (235.0, 30.0) if dark else (20.0, 225.0)
    small = Image.fromarray((paper_level + (ink_level - paper_level) * grid).astype(np.uint8))
    grey = np.asarray(small.resize((168, 168), Image.BICUBIC), np.float32)
    assert paper.ink_map(grey).dark_ink is dark


def test_a_page_on_a_table_keeps_its_dark_ink():
    """A light page inside a dark table: the border is one level (the table's) and the light side is the minority,
    but that side never reaches the border. It is the page, not ink: the strokes on it decide."""
    grey = np.full((300, 300), 40.0, np.float32)
    grey[70:230, 80:220] = 220.0  # the page, 25% of the image
    cv2.line(grey, (150, 100), (150, 200), 30.0, 4)  # a 1 in dark ink
    assert paper.ink_map(grey).dark_ink


def drawn_images() -> list[np.ndarray]:
    """Digital drawings at analysis size: typeset digits, the web page's pad, grey paper with dark ink, thin and
    bold pens."""
    images = [P._grey(Image.open(io.BytesIO(png))) for png in digit_pngs()[::3]]
    for size, width, paper_level, ink_level in ((140, 9, 0, 255), (256, 2, 200, 40), (96, 14, 255, 0)):
        page = Image.new("L", (size, size), paper_level)
        ImageDraw.Draw(page).line([(0.3 * size, 0.2 * size), (0.7 * size, 0.2 * size), (0.4 * size, 0.8 * size)],
                                  fill=ink_level, width=width, joint="curve")  # fmt: skip
        images.append(np.asarray(page))
    return [image.astype(np.float32) for image in images]


@pytest.mark.parametrize("index", range(7))
def test_a_digital_drawing_is_read_by_its_border_as_the_lattice_reads_it(index, monkeypatch):
    """A border of one exact level at the image's extreme is the paper (`_drawn_paper`): the same polarity, level
    and ink strength as the lattice's full reading, which the shortcut skips."""
    small = drawn_images()[index]
    drawn = paper._drawn_paper(small)
    assert drawn is not None
    shortcut = paper.ink_map(small)
    monkeypatch.setattr(paper, "_drawn_paper", lambda image: None)
    assert paper._lattice_paper(small)[:2] == drawn
    full = paper.ink_map(small)
    assert np.array_equal(shortcut.strength, full.strength) and shortcut.threshold == full.threshold


@pytest.mark.parametrize("bars", [10, 40, 80, 150])
def test_a_page_letterboxed_by_black_bars_is_not_taken_for_a_drawing(bars):
    """A white page with a dark 7, inside black bars: the border is one exact level at the image's extreme, like a
    canvas's, but the "ink" it implies is the page, one wide blot. The lattice reads it: dark ink on the page where
    the bars are narrow (wider ones mislead the lattice too, with or without the shortcut)."""
    page = np.full((200, 200), 255, np.uint8)
    cv2.polylines(page, [np.array([[60, 40], [140, 40], [80, 170]], np.int32)], False, 0, 8)
    grey = cv2.copyMakeBorder(page, bars, bars, bars, bars, cv2.BORDER_CONSTANT, value=0).astype(np.float32)
    assert paper._drawn_paper(grey) is None
    page_ink = (grey > 127).astype(np.uint8)  # the "ink" a border of black bars implies: the page
    assert paper.stroke_width(page_ink) > 0.25 * max(cv2.boundingRect(page_ink)[2:])  # DRAWN_STROKE is 0.2
    if bars <= 40:
        # Dark ink. Bars along all of the border are wider than BLOT measured as going on beyond it (as shade comes
        # in, `paper.stroke_width(open_border=True)`) from 40 on: shaded paper, the opening's, and the frame as with
        # one level (c4bbcae).
        assert paper._lattice_paper(grey)[:2] == (True, 255.0 if bars < 40 else None)


def test_a_photos_noisy_border_is_never_read_as_a_drawing():
    grey = P._grey(photo(digit(), seed=0, contrast=120.0, shadow=False))
    assert paper._drawn_paper(paper.box_reduce(grey, 2)) is None
