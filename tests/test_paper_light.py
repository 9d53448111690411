"""Photos under hard light (issue 20, round two): a fold or crease through the page, a hand's sharp shadow over
most of it, a lamp's broad spot, light graded gently across the page. None of them is the digit, and the digit is
read whole through them.

The pages are this module's own (a lamp model of the real-world set's dev split, written here again small): the
digit drawn by tests/test_whole_digit.py's pen, photographed on grey paper with the light and paper given.
"""

from __future__ import annotations

import io
import math

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFilter

from serving import ink as ink_module
from serving import paper, regions
from serving import preprocess as P
from testkit.digits import encode
from tests.test_whole_digit import PIECES, draw

PAGE = (900, 700)  # width, height
BOX = (0.4, 0.28, 0.6, 0.72)  # where the digit is drawn, as fractions of the page


def coords() -> tuple[np.ndarray, np.ndarray]:
    """The page's x and y in [-1, 1]."""
    w, h = PAGE
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return 2 * x / (w - 1) - 1, 2 * y / (h - 1) - 1


def crease(angle: float, offset: float, depth: float = 0.18) -> np.ndarray:
    """Light lost along a fold of the page: a dark line at `angle` (degrees), `offset` from the centre."""
    x, y = coords()
    a = math.radians(angle)
    distance = math.cos(a) * x + math.sin(a) * y - offset
    return 1 - depth * np.exp(-((distance / 0.012) ** 2))


def hard_shadow(angle: float, edge: float, depth: float = 0.55) -> np.ndarray:
    """A hand's shadow with a sharp edge, over the side of the page beyond `edge`."""
    x, y = coords()
    a = math.radians(angle)
    return 1 - depth * (1 + np.tanh((math.cos(a) * x + math.sin(a) * y - edge) / 0.03)) / 2


def gradient(angle: float, depth: float) -> np.ndarray:
    """Light falling off in a straight line across the page towards `angle` (degrees), by `depth` in all."""
    x, y = coords()
    a = math.radians(angle)
    return 1 - depth * (math.cos(a) * x + math.sin(a) * y + math.sqrt(2)) / (2 * math.sqrt(2))


def lamp_spot(cx: float, cy: float, strength: float = 0.7) -> np.ndarray:
    """A lamp's broad spot: flat near its centre, falling off towards the edges."""
    x, y = coords()
    return 1 - strength * np.clip(((x - cx) ** 2 + (y - cy) ** 2) / 5, 0, 1)


def photo(strokes, light: np.ndarray, *, width: int = 6, contrast: float = 70.0, seed: int = 0) -> Image.Image:
    """The strokes drawn in the page's box with a light pen, lit by `light`, with noise, blur and JPEG."""
    ink = 1 - np.asarray(draw(strokes, PAGE, BOX, width), np.float32) / 255
    rng = np.random.default_rng(seed)
    grey = (225 - contrast * ink) * light + rng.normal(0, 3, ink.shape)
    image = Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.0))
    return Image.open(io.BytesIO(encode(image, "JPEG", quality=80)))


def frame(image: Image.Image) -> np.ndarray:
    """The service's 28x28 frame of an image."""
    return P.from_image(image)[0]


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two frames."""
    return float((a * b).sum() / math.sqrt((a * a).sum() * (b * b).sum()))


DIGITS = {name: PIECES[name][1] for name in ("wide 0, its top and bottom missing", "4, its stem apart", "dashed 7")}


@pytest.mark.parametrize("name", list(DIGITS))
@pytest.mark.parametrize("angle,offset", [(45.0, 0.05), (135.0, -0.1), (100.0, 0.0)])
def test_a_crease_through_the_page_is_not_the_digit(name, angle, offset):
    strokes = DIGITS[name]
    clean = frame(photo(strokes, lamp_spot(0.3, -0.2)))
    creased = frame(photo(strokes, lamp_spot(0.3, -0.2) * crease(angle, offset)))
    # A crease kept as ink widens the frame into a line across it, and the digit shrinks to fit.
    assert similarity(clean, creased) >= 0.85, similarity(clean, creased)


def test_a_stroke_crossed_by_a_crease_stays_whole():
    """A fold across a 1 is paper, but where the 1 crosses it the ink is the 1's: no gap in the stroke."""
    one = [[(0.5, 0.05), (0.5, 0.95)]]
    f = frame(photo(one, lamp_spot(-0.3, 0.2) * crease(90.0, 0.0)))  # a level fold through the 1's middle
    rows = np.nonzero(f.max(axis=1) >= 0.2)[0]
    assert rows.size >= 18 and np.all(f[rows.min() : rows.max() + 1].max(axis=1) >= 0.2)


def test_a_one_as_tall_as_the_page_is_not_taken_for_a_fold():
    """A straight stroke running most of the way through the image is the digit when it is all the ink there is."""
    w, h = PAGE
    strokes = [[(0.5, 0.0), (0.5, 1.0)]]
    tall = draw(strokes, PAGE, (0.4, 0.05, 0.6, 0.95), 8)
    ink = 1 - np.asarray(tall, np.float32) / 255
    grey = (225 - 90 * ink) * lamp_spot(0.4, 0.1) + np.random.default_rng(1).normal(0, 3, ink.shape)
    f = frame(Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)))
    rows, cols = np.nonzero(f >= 0.2)
    assert rows.max() - rows.min() + 1 >= 18 and cols.max() - cols.min() + 1 <= 8  # a 1, framed as MNIST's


@pytest.mark.parametrize("name", list(DIGITS))
@pytest.mark.parametrize("angle,edge,depth", [(0.0, -0.4, 0.3), (0.0, -0.4, 0.45), (250.0, -0.5, 0.3)])
def test_a_shadow_over_most_of_the_page_leaves_dark_ink_dark(name, angle, edge, depth):
    """Most of the page in a hand's shadow: its median is the shade, the lit part is brighter than it, and the
    ink is still the thin dark strokes, not the lit paper."""
    strokes = DIGITS[name]
    image = photo(strokes, hard_shadow(angle, edge, depth))
    grey = np.asarray(image, np.float32)
    assert np.mean(grey < np.median(grey) - 20) < 0.1 < np.mean(grey > np.median(grey) + 20)  # as described
    assert paper.ink_map(paper.box_reduce(grey, 4)).dark_ink
    assert similarity(frame(photo(strokes, np.ones(coords()[0].shape, np.float32))), frame(image)) >= 0.8


def test_a_lamps_broad_spot_is_shaded_paper_not_flat():
    """Under a lamp's spot the paper is one level over many blocks, like a page scanned flat, but the rest of it
    falls off: one level for all of it would read the shade as ink."""
    strokes = DIGITS["dashed 7"]
    image = photo(strokes, lamp_spot(-0.8, -0.8, strength=0.9), contrast=60)
    small = paper.box_reduce(np.asarray(image, np.float32), 4)
    assert paper.ink_map(small).shaded
    clean = frame(photo(strokes, np.ones(coords()[0].shape, np.float32), contrast=60))
    assert similarity(clean, frame(image)) >= 0.8


def line_axes(side: int, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """A side x side page's signed distance across and along a line through its middle at `angle` (degrees)."""
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) - side / 2
    a = math.radians(angle)
    return -math.sin(a) * x + math.cos(a) * y, math.cos(a) * x + math.sin(a) * y


@pytest.mark.parametrize("angle", [0.0, 30.0, 90.0, 120.0])
@pytest.mark.parametrize("band", [2, 5, 9])
def test_a_band_with_one_straight_edge_is_taken_out_whole(angle, band):
    """A shadow's edge on the weak mask: a band straight on one side and ragged on the other. The line search votes
    on the mask's rim, so it finds the straight edge; the line drawn still covers the band, not just that edge,
    and nothing of the digit beside it."""
    side, rng = 200, np.random.default_rng(band)
    across, along = line_axes(side, angle)
    steps = rng.integers(0, 8, side // 2)  # the ragged side wanders 0-7 px, in runs of 6 px
    ragged = band + steps[np.clip((along + side) // 6, 0, steps.size - 1).astype(int)]
    weak = ((across >= 0) & (across < ragged)).astype(np.uint8)
    digit = (np.hypot(along, across + 0.3 * side) <= 12).astype(np.uint8)  # a blob of ink beside the band
    found = regions.paper_lines(cv2.bitwise_or(weak, digit), 3.0)
    assert found is not None
    lines = found[0]
    core = ((across >= 0) & (across < np.minimum(ragged, np.median(ragged)))).astype(np.uint8)  # its usual width
    assert cv2.countNonZero(cv2.subtract(core, lines)) == 0
    assert cv2.countNonZero(cv2.bitwise_and(digit, lines)) == 0


def fold_page(side: int, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """A weak-ink mask: a 5 px fold through a side x side page at `angle` (degrees), and a digit's blob beside it."""
    across, along = line_axes(side, angle)
    fold = (np.abs(across - 0.1 * side) <= 2).astype(np.uint8)
    digit = (np.hypot(along, across + 0.2 * side) <= 0.06 * side).astype(np.uint8)
    return fold, digit


@pytest.mark.parametrize("angle", [0.0, 17.0, 45.0, 80.0, 133.0])
@pytest.mark.parametrize("side", [300, 700])
def test_the_coarse_line_search_finds_what_the_full_one_does(angle, side, monkeypatch):
    """A fold through a page larger than regions.LINE_GRID, beside a digit's blob: found through the max-pooled
    first search as the full-resolution search alone finds it, all of the fold and none of the digit."""
    assert side > regions.LINE_GRID  # the pooled first search runs
    fold, digit = fold_page(side, angle)
    weak = cv2.bitwise_or(fold, digit)
    coarse = regions.paper_lines(weak, 3.0)
    monkeypatch.setattr(regions, "LINE_GRID", 10**6)
    full = regions.paper_lines(weak, 3.0)
    assert coarse is not None and full is not None
    for lines, _ in (coarse, full):
        assert cv2.countNonZero(cv2.subtract(fold, lines)) <= 0.02 * cv2.countNonZero(fold)
        assert cv2.countNonZero(cv2.bitwise_and(digit, lines)) == 0


@pytest.mark.parametrize("grid", [128, 10**6])
def test_the_line_bars_are_read_when_the_search_runs(grid, monkeypatch):
    """The ablation (benchmarks.preprocess_accuracy --variant) sets regions' module constants: a bar no segment can
    pass finds no fold, with and without the pooled first search (02d2ca1 had bound them as default arguments)."""
    fold, digit = fold_page(700, 17.0)
    monkeypatch.setattr(regions, "LINE_GRID", grid)
    assert regions.paper_lines(cv2.bitwise_or(fold, digit), 3.0) is not None
    monkeypatch.setattr(regions, "LINE_CHORD", 9)
    assert regions.paper_lines(cv2.bitwise_or(fold, digit), 3.0) is None


@pytest.mark.parametrize(
    "name,angle",
    [("4, its stem apart", 45.0), ("4, its stem apart", 225.0), ("wide 0, its top and bottom missing", 45.0)],
)
@pytest.mark.parametrize("depth", [0.3, 0.45])
def test_a_sharp_shadow_edge_beside_a_light_digit_is_not_ink(name, angle, depth):
    """A hand's sharp shadow whose edge passes beside a light pen's digit: the coarse paper (opened on cells, then
    interpolated) blurs the edge, and the shaded side along it would read as a band of ink; the paper refined at
    the strokes' scale keeps it paper (paper.FINE = 0 reads these 0.02-0.58 alike)."""
    strokes = DIGITS[name]
    clean = frame(photo(strokes, np.ones(coords()[0].shape, np.float32), contrast=60))
    shadowed = frame(photo(strokes, lamp_spot(0.3, -0.2) * hard_shadow(angle, 0.3, depth), contrast=60))
    assert similarity(clean, shadowed) >= 0.9, similarity(clean, shadowed)


@pytest.mark.parametrize("width", [56, 80])
@pytest.mark.parametrize("angle", [45.0, 225.0])
def test_a_markers_digit_under_a_sharp_shadow_reads_alike_without_the_fine_paper(width, angle, monkeypatch):
    """Strokes wider than paper.FINE_WIDEST allows skip the fine opening (its cost grows with its width): their
    digit reads as it does with the opening."""
    image = photo(DIGITS["4, its stem apart"], lamp_spot(0.3, -0.2) * hard_shadow(angle, 0.3, 0.45), width=width)
    small = paper.box_reduce(np.asarray(image, np.float32), 4)
    coarse = paper._opened_paper(small, True, int(paper.OPEN_SIDE * max(small.shape)) | 1)
    raw = paper.strength(small, coarse, True)[1]
    assert paper._fine_paper(small, coarse, True, raw) is coarse  # skipped, as described
    skipped = frame(image)
    monkeypatch.setattr(paper, "FINE_WIDEST", 0)
    assert similarity(frame(image), skipped) >= 0.97, similarity(frame(image), skipped)


@pytest.mark.parametrize("name", list(DIGITS))
@pytest.mark.parametrize("angle,edge,depth", [(0.0, -0.4, 0.35), (250.0, -0.5, 0.35), (160.0, -0.3, 0.4)])
def test_a_faint_digit_under_a_shadow_over_most_of_the_page_is_dark_ink(name, angle, edge, depth, monkeypatch):
    """A light pen's thin strokes, too faint beside the shadow's edge for the strokes' contrast to tell: the tails
    then take the lit paper for light ink. Leaving out what the shadow's step explains, the strokes are dark ink,
    and the digit is framed as on an evenly lit page."""
    strokes = DIGITS[name]
    image = photo(strokes, hard_shadow(angle, edge, depth), width=4, contrast=30)
    small = paper.box_reduce(np.asarray(image, np.float32), 4)
    assert paper._lattice_paper(small)[0] is True
    even = frame(photo(strokes, np.ones(coords()[0].shape, np.float32), width=4, contrast=30))
    assert similarity(even, frame(image)) >= 0.9
    monkeypatch.setattr(paper, "SHADOW_STEP", 0)  # without it (b38cf1e), the lit paper was the ink
    assert paper._lattice_paper(small)[0] is False


@pytest.mark.parametrize("slit", [5, 7])
def test_a_bold_digits_slit_of_a_hole_is_not_taken_for_a_dark_stroke(slit):
    """A marker on the canvas fills a 0's hole to a slit: a thin dark line inside white ink. The shadow test counts
    thin lines of either side, but only on a page crossed by a step that reaches its border; the digit's own edges
    stay inside, so the slit does not make the black canvas the ink."""
    canvas = np.zeros((400, 400), np.uint8)
    cv2.ellipse(canvas, (200, 200), (45 + slit, 120), 0, 0, 360, 255, thickness=2 * 45)  # outer half-axes 90+, 165
    assert 0 < cv2.countNonZero(255 - canvas[60:340, 170:230]) < 1500  # the slit is there, and narrow
    assert not paper.border(canvas).any()  # the digit stays inside the canvas
    small = paper.box_reduce(canvas.astype(np.float32), 2)
    assert paper._strokes_dark(small, paper.noise(small)) is not True
    assert paper.ink_map(small).dark_ink is False


@pytest.mark.parametrize("name", list(DIGITS))
@pytest.mark.parametrize("angle", [45.0, 90.0, 180.0])
def test_a_faint_digit_on_a_gently_graded_page_is_framed_as_on_an_even_one(name, angle, monkeypatch):
    """Light falling off by a twentieth across the page: a band of the lattice's blocks holds one level, like flat
    paper, and with that one level the page's far side was faint ink joined to the digit. The blocks' paper is one
    tilted plane, so the page is shaded, and the digit is framed as on an evenly lit page."""
    strokes = DIGITS[name]
    image = photo(strokes, gradient(angle, 0.05), width=4, contrast=30)
    even = frame(photo(strokes, np.ones(coords()[0].shape, np.float32), width=4, contrast=30))
    assert similarity(even, frame(image)) >= 0.95
    monkeypatch.setattr(paper, "GRADED", 0)  # without it (3efdc0d), the far side of the page was ink
    assert similarity(even, frame(image)) < 0.8


def shadowed_detail(dark: int, light: int, dark_depth: float, light_depth: float) -> tuple[np.ndarray, np.ndarray]:
    """(detail, local mean) of a page whose shadow's step runs from border to border, with `dark` pixels of detail
    `dark_depth` below the local mean and `light` ones `light_depth` above it, away from the step."""
    local = np.full((100, 100), 200.0, np.float32)
    local[:, 60:] = 120.0
    left = np.zeros(100 * 40, np.float32)
    left[:dark] = -dark_depth
    left[dark : dark + light] = light_depth
    detail = np.zeros((100, 100), np.float32)
    detail[:, :40] = left.reshape(100, 40)
    return detail, local


def test_under_a_shadow_depth_decides_only_the_way_the_count_leans(monkeypatch):
    """A faint stroke's pixels are not a clear majority over its shallow halo's: their depth beyond the noise floor
    decides, and only the way the count leans. A few deep pixels against many light ones decide nothing."""
    leaning_dark = shadowed_detail(120, 90, 30.0, 5.0)
    assert paper._shadowed_dark(leaning_dark[0].copy(), leaning_dark[1], 7, 1.0) is True
    leaning_light = shadowed_detail(90, 120, 30.0, 5.0)
    assert paper._shadowed_dark(leaning_light[0].copy(), leaning_light[1], 7, 1.0) is None
    clear = shadowed_detail(200, 60, 30.0, 5.0)
    monkeypatch.setattr(paper, "SHADOW_DEPTH", False)  # the count alone (3efdc0d): no majority, no answer
    assert paper._shadowed_dark(leaning_dark[0].copy(), leaning_dark[1], 7, 1.0) is None
    assert paper._shadowed_dark(clear[0].copy(), clear[1], 7, 1.0) is True


@pytest.mark.parametrize("name", list(DIGITS))
@pytest.mark.parametrize("depth", [0.45, 0.55])
def test_a_faint_digit_in_a_shadows_shade_is_read_not_refused(name, depth, monkeypatch):
    """A light pen's digit in the shade of a shadow over most of the page: the shade dims the ink's contrast as it
    dims the paper, under MIN_CONTRAST, though in the light the digit reads. A stroke's worth of its pixels, as under
    the page's best light, reaches it: the digit is framed as on an evenly lit page, not refused as blank."""
    strokes = DIGITS[name]
    image = photo(strokes, hard_shadow(0.0, -0.6, depth), contrast=24)
    even = frame(photo(strokes, np.ones(coords()[0].shape, np.float32), contrast=24))
    assert similarity(even, frame(image)) >= 0.95
    monkeypatch.setattr(paper, "STROKE_RUN", 0)  # the strongest pixel alone (c4bbcae): refused
    with pytest.raises(P.NoInk):
        frame(image)


@pytest.mark.parametrize("name", list(DIGITS))
@pytest.mark.parametrize("angle", [0.0, 180.0])
def test_the_noise_in_a_deep_shade_beside_a_faint_digit_is_not_ink(name, angle, monkeypatch):
    """A deep shadow over a side of the page, the digit in the light: strength (contrast over the paper's headroom)
    magnifies the sensor's noise in the shade, where the headroom is small, and specks of it joined the digit.
    Against the image's noise in grey levels the specks are noise, and the digit is framed as on an even page."""
    strokes = DIGITS[name]
    image = photo(strokes, hard_shadow(angle, 0.25, 0.7), width=4, contrast=30)
    even = frame(photo(strokes, np.ones(coords()[0].shape, np.float32), width=4, contrast=30))
    assert similarity(even, frame(image)) >= 0.95
    monkeypatch.setattr(paper, "SHADE_NOISE", False)  # strength against `noise` alone (c4bbcae)
    assert similarity(even, frame(image)) < 0.5


@pytest.mark.parametrize("name", list(DIGITS))
@pytest.mark.parametrize("angle,edge", [(200.0, 0.55), (20.0, 0.55), (90.0, 0.55), (300.0, 0.5)])
def test_a_wedge_of_shade_along_a_side_is_shaded_paper_not_ink(name, angle, edge, monkeypatch):
    """A sharp shadow over a wedge along one side of a page otherwise evenly lit: the lattice finds the lit paper
    flat, and one level for the page read the wedge as a blot of ink, its stroke width (the border counted as its
    side) under BLOT. Measured as going on beyond the border, as shade does, it is wider: the page is shaded."""
    strokes = DIGITS[name]
    image = photo(strokes, hard_shadow(angle, edge, 0.4), width=4, contrast=40)
    small = paper.box_reduce(np.asarray(image, np.float32), 4)
    assert paper._lattice_paper(small)[1] is None
    even = frame(photo(strokes, np.ones(coords()[0].shape, np.float32), width=4, contrast=40))
    assert similarity(even, frame(image)) >= 0.95
    # The stroke width of the whole mask, its border a side of it (c4bbcae): flat, and the wedge is the "digit".
    closed = paper.stroke_width
    monkeypatch.setattr(paper, "stroke_width", lambda mask, open_border=False: closed(mask))
    monkeypatch.setattr(paper, "_on_border", lambda mask: mask)
    assert paper._lattice_paper(small)[1] is not None
    assert similarity(even, frame(image)) < 0.5


@pytest.mark.parametrize("name", list(DIGITS))
def test_a_faint_digit_under_a_lamp_is_read_though_no_pixel_reaches_the_contrast_floor(name, monkeypatch):
    """A light pen under a lamp's spot: no pixel reaches MIN_CONTRAST, in the light or the shade, but a stroke's worth
    of them, as under the page's best light, reaches LIT_CONTRAST: the digit is framed as on an evenly lit page."""
    strokes = DIGITS[name]
    image = photo(strokes, lamp_spot(0.6, -0.5), contrast=14)
    even = frame(photo(strokes, np.ones(coords()[0].shape, np.float32), contrast=24))
    assert similarity(even, frame(image)) >= 0.95
    monkeypatch.setattr(paper, "LIT_CONTRAST", paper.MIN_CONTRAST)  # the floor itself (111b958): refused
    with pytest.raises(P.NoInk):
        frame(image)


@pytest.mark.parametrize("light", [lamp_spot(0.6, -0.5), lamp_spot(-0.5, 0.4), hard_shadow(0.0, -0.6, 0.5)])
def test_a_blank_page_under_a_lamp_or_a_shadow_is_still_refused(light):
    """The same pages with nothing written on them (the pen's contrast nought): their noise and a shadow's edge are
    no stroke's worth of ink at LIT_CONTRAST."""
    with pytest.raises(P.NoInk):
        frame(photo(DIGITS["dashed 7"], light, contrast=0.0))


def test_specks_a_grey_level_or_two_deep_on_a_flattened_page_are_not_ink(monkeypatch):
    """A JPEG flattens the paper's noise, so `noise` and `grey_noise` read nought, but its ringing along a shadow's
    edge leaves specks a few grey levels deep: measured against a noise of at least GREY_NOISE_FLOOR they are not ink;
    the stroke beside them is kept whole, its faint rim too."""
    small = np.full((64, 64), 200.0, np.float32)  # a page without noise, as the JPEG left it
    small[10:50, 30:33] -= 20.0  # a faint stroke
    small[10:50, 33] -= 3.0  # its rim, as faint as the specks
    small[5:8, 50:53] -= 3.0  # specks of ringing
    small[40:42, 5:8] -= 4.0
    contrast = 200.0 - small
    ink, weak = (contrast > 10).view(np.uint8), (contrast > 2).view(np.uint8)
    assert paper.noise(small) == 0 and paper.grey_noise(small) == 0
    inked, kept, pieces = paper._above_shade_noise(small, contrast, ink, weak)
    assert np.array_equal(kept[:, 20:40], weak[:, 20:40]) and not kept[:, 40:].any() and not kept[:, :20].any()
    assert np.array_equal(inked, ink) and pieces == 2  # the stroke and the paper
    monkeypatch.setattr(paper, "GREY_NOISE_FLOOR", 0.0)  # the measured noise alone (9f4d014): the specks are ink
    assert np.array_equal(paper._above_shade_noise(small, contrast, ink, weak)[1], weak)


def test_the_pieces_counted_by_the_shades_noise_test_are_the_weak_inks_own(monkeypatch):
    """`InkMap.pieces`, passed on so that `regions.select_digit` labels once, is the count of the weak ink's 8-connected
    pieces and the paper: were it 2 for several pieces, every piece would be taken for the digit."""
    maps = []
    monkeypatch.setattr(ink_module, "ink_map", lambda small: maps.append(paper.ink_map(small)) or maps[-1])
    for strokes in DIGITS.values():
        for light in (hard_shadow(0.0, -0.6, 0.5), lamp_spot(0.6, -0.5), hard_shadow(200.0, 0.55, 0.4)):
            for contrast in (14, 30, 70):
                frame(photo(strokes, light, width=4, contrast=contrast))
    shaded = [m for m in maps if m.shaded]
    assert len(shaded) >= 20 and max(m.pieces for m in shaded) > 2  # several pieces, not only one
    assert all(m.pieces == cv2.connectedComponents(m.weak, connectivity=8)[0] for m in shaded)
