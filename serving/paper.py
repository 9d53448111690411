"""Paper and ink: which side is ink, the paper's level under uneven light, and how strongly each pixel is ink.

`ink_map` works on the analysis image (at most 256 px, float32 grey levels). A digital drawing, its border one
exact grey level with nothing beyond it and the rest strokes, is read from that border alone: paper, and ink on the
other side. Otherwise the image's border, when it is one level, says which side is ink, else the strokes' contrast
with their surroundings. A lattice of block quartiles says
whether the paper is flat (a drawing, a canvas, a scan: then it has one level, and
whatever differs from it is ink, however pale or blurred); where a digit fills its frame and few blocks are bare
paper, one grey level that most pixels hold says so instead. Paper that is not flat is found by opening the image
with a kernel wider than strokes: an opening keeps shading of any shape as it is, a phone's shadow edge too,
which a smooth surface through blocks would blur into ink. The opening runs on cells and is interpolated back
(cheap), which blurs a sharp shadow's edge by a cell: on shaded paper a second opening, a few stroke widths wide
at full analysis resolution, keeps that edge paper. Ink strength is contrast over the paper's headroom
(light falls on paper and ink alike), thresholded by Otsu above the image's own noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

GRID = 16  # polarity and flat paper are read from a GRID x GRID lattice of blocks ...
CELLS = 4  # ... each summarised by CELLS x CELLS area averages, whose ranks stand for the block's pixels
FLAT_SHARE = 0.15  # this share of blocks within one grey level of the paper-most tenth: flat paper, evenly lit
MIN_CONTRAST = 16.0  # grey levels (of 255) between ink and paper below which an image is blank ...
BLANK_NOISE = 8.0  # ... or ink strength of fewer noise standard deviations than this
INK_NOISE = 6.0  # ink stands at least this many noise deviations above the paper (Otsu's split may sit lower)
WEAK = 0.5  # weak ink, kept where it touches ink: strength >= WEAK x the threshold ...
WEAK_NOISE = 4.0  # ... and this many noise deviations above the paper
# The opening's kernel spans OPEN_SIDE of the image's longer side (wider than any stroke of a photographed digit);
# it opens cells of k / OPEN_CELL pixels, then the paper is interpolated back (smooth: nothing is lost).
OPEN_SIDE, OPEN_CELL = 0.18, 8
# Paper found flat (FLAT_SHARE) is shaded after all when SHADE_SHARE of the blocks lie FLAT_NEAR levels or more
# away from its level, and that one level would leave blots of ink (`_blotted`: along BLOT_RIM of the rim or more, and
# what reaches the rim BLOT wide, measured as going on beyond the border: shade comes in from beyond the page's edge,
# and a wedge of it along a side is wide though its stroke width, the border counted as its side, is not).
FLAT_NEAR, SHADE_SHARE, BLOT, BLOT_RIM = 6.0, 0.1, 0.15, 0.3
# Polarity from detail against the local mean over 1/POLARITY_SIDE of the side: decided when one side holds
# POLARITY_MARGIN more of it (cubed), else by the tails of the grey levels.
POLARITY_MARGIN, POLARITY_SIDE = 0.3, 16
# A shadow's sharp edge across the page gives both signs of detail alike and hides faint strokes from the test above,
# and the tails are then wrong when the shadow holds the median. So where the test cannot tell and an edge reaches the
# border, the pixels whose detail a shading step explains (the step across the local mean's window at least
# SHADOW_STEP of the detail) are left out and the rest are counted, one vote a pixel (cubes would let a speck decide):
# decided when at least SHADOW_EVIDENCE of the long side's length of them and POLARITY_MARGIN more on one side.
# Chosen on MNIST validation digits written faintly and photographed under shadows, a lamp or a gradient
# (benchmarks.shadowed_digits, 1,200 photos: the CNN read 86.1% -> 90.0% of them, of those under a shadow 74.0% ->
# 86.6%; 143 of its 150 blank pages refused, as before) and on dev (no answer changed; in a scratch check without the
# border and the count guards, bold pens' slit-like holes turned dev answers). 0: off.
SHADOW_STEP, SHADOW_EVIDENCE = 0.5, 0.25
# Where the count has no clear majority, the detail's depth beyond the floor decides, the way the count leans (a
# stroke's core is deeper than its halo). On the faint-pen photos (benchmarks.shadowed_digits) the CNN read 92.4%,
# 92.2% without it; no dev frame changed. Depth alone, without the count's lean, turned dev scans in a scratch check.
# 0: off.
SHADOW_DEPTH = True
# Light graded across the page (a window's side light) is flat paper to the lattice when a band of blocks holds one
# level, and with the ink faint the paper's far side then reads as ink: paper that is one plane (the blocks no stroke
# fills, fitted within GRADE_FIT of its tilt) tilted by GRADED of the ink's contrast or more across the page is
# shaded. Chosen on the faint-pen photos (benchmarks.shadowed_digits, reports/shadowed: those under a gradient) and
# checked on dev (no answer changed) and MNIST validation digits reduced (benchmarks.real_digits --digits mnist-val);
# not swept. 0: off.
GRADED, GRADE_FIT = 0.2, 0.25
# A border of one level (its quartiles within BORDER_SPREAD of the image's range; 0: never) is paper, and says which
# side is ink where the ink it implies is the minority of the pixels.
BORDER_SPREAD = 0.1
# A page of one grey level that the blocks miss (a digit filling a blurred, upscaled frame leaves few blocks of bare
# paper): PAGE_SHARE of the pixels within PAGE_NEAR levels (or two noise deviations) of one level, and at most
# PAGE_BEYOND of them further than PAGE_RING of the ink's contrast towards the paper's side of it (a page lit
# unevenly has paper on both sides of any one level).
PAGE_SHARE, PAGE_NEAR, PAGE_BEYOND, PAGE_RING = 0.4, 1.0, 0.1, 0.1
FINE = 3.0  # the fine opening spans this many stroke widths (0: the coarse opening alone) ...
# ... up to FINE_WIDEST pixels (0: any): a marker's strokes are wider than the coarse paper's blur along a shadow's
# edge, and the opening's cost grows with its width (the CNN's dev answers were the same with 15, 25 and no limit).
FINE_WIDEST = 25
# A border of one exact grey level at the image's extreme is a digital drawing's paper (`_drawn_paper`) when the ink
# it implies is strokes: no wider than this share of the ink's long side (a letterboxed page is one wide blot, over a
# quarter: tests/test_paper.py). A speed part, not a tuned one: no dev frame changes with it (0: off).
DRAWN_STROKE = 0.2
# On shaded paper (SHADED or more) the shade's headroom is small, and strength magnifies the sensor's noise there,
# which is in grey levels, no less in the shade than in the light: there a piece of weak ink none of whose pixels stands
# INK_NOISE deviations of the image's noise in grey levels above the paper is noise (`_above_shade_noise`; a stroke's
# piece is kept whole). And light dims ink as it dims paper: a faint stroke in the shade has less contrast than
# MIN_CONTRAST asks, so a shaded page is read as blank only when, as well, a stroke's worth of its pixels (STROKE_RUN
# of the long side: a digit's strokes run longer; a stray speck's or a shadow's edge's fringe covers fewer) does not
# reach LIT_CONTRAST as under the page's best light (`_lit_stroke`). Chosen on MNIST validation digits written faintly
# and photographed under shadows, a lamp or a gradient (benchmarks.shadowed_digits, reports/shadowed) and checked on
# dev (benchmarks.preprocess_parity, reports/preprocess/parity-shadow2.md: a rule by pixels, not pieces, turned two dev
# answers); STROKE_RUN not swept. False / 0: off.
SHADE_NOISE, STROKE_RUN = True, 0.25
# The noise that test weighs is at least this many grey levels: a JPEG flattens the paper's noise (`noise` reads
# nought there, `grey_noise` a fraction of a level) but not its blocks' ringing along a shadow's sharp edge, whose
# specks then stood INK_NOISE "deviations" above the paper and joined a faint digit near the edge. Set once, at the
# one grey level `_detail_floor` floors the noise at, not swept; chosen on the shadowed set's seeds 7, 11, 13, 17 (the
# CNN 95.8% -> 96.2%: reports/shadowed, at-5d68396), checked on seeds 19, 23, 29 (reports/shadowed/fresh) and on dev
# (reports/preprocess/parity-floor.md: one frame changed, a 7 beside a shadow's edge, read alike). 0: off.
GREY_NOISE_FLOOR = 1.0
# A stroke's worth of pixels is a stroke, not a shadow's fringe or the noise, from half MIN_CONTRAST as under the best
# light: blank pages under the shadowed set's lights hardly reach it, where faint digits refused at MIN_CONTRAST
# (111b958) mostly do. Set once, not swept; benchmarks.shadowed_digits reads the digits refused and the blank pages
# read on seeds 7, 11, 13, 17 (blank pages 5, 6, 8), where it was chosen, and on seeds 19, 23, 29 (blank pages 31,
# 37), which no choice looked at (reports/shadowed).
LIT_CONTRAST = MIN_CONTRAST / 2
# Strength divides by the paper's headroom (to black, or to white), floored here so that dark paper does not amplify
# its noise.
HEADROOM_FLOOR = 64.0
SHADED = 16.0  # grey levels of paper shading from which folds and shadows' edges are looked for (serving.regions)
# The numbers above: tuned on the real-world development split (reports/preprocess/accuracy.md).


class Blank(ValueError):
    """No ink: the image is blank, or too faint to read a digit."""


@dataclass(frozen=True)
class InkMap:
    """The analysis image read as paper and ink."""

    dark_ink: bool  # dark ink on light paper
    level: np.ndarray | float  # the paper's grey level at every pixel, or its one level where the paper is flat
    strength: np.ndarray  # ink strength, 0 on paper, 1 for ink a whole headroom away from it (>= 0)
    threshold: float  # strength from which a pixel is ink
    ink: np.ndarray  # uint8 mask: strength above the threshold
    weak: np.ndarray  # uint8 mask: strength above the weak threshold (a superset of `ink`)
    shaded: bool  # the paper's level varies by SHADED grey levels or more: a photo's light, not a drawing's flat ground
    pieces: int = 0  # `weak`'s 8-connected pieces and the paper, where they were counted (0: not)


def box_reduce(image: np.ndarray, factor: int) -> np.ndarray:
    """Box-average by a whole factor (OpenCV's fast path), the edges replicated to whole blocks; float32."""
    if factor > 1:
        h, w = image.shape[:2]
        if h % factor or w % factor:  # a border of nothing would still copy the image
            image = cv2.copyMakeBorder(image, 0, -h % factor, 0, -w % factor, cv2.BORDER_REPLICATE)
        image = cv2.resize(image, (image.shape[1] // factor, image.shape[0] // factor), interpolation=cv2.INTER_AREA)
    return image.astype(np.float32, copy=False)


def upper_median(values: np.ndarray) -> float:
    """The median (the upper one of an even count) by one partition: np.median's overhead is most of its cost here."""
    flat = values.ravel()
    return float(np.partition(flat, flat.size // 2)[flat.size // 2])


def border(image: np.ndarray) -> np.ndarray:
    """The image's outermost pixels, each once (corners too)."""
    return np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])


def second_extremes(values: np.ndarray) -> tuple[float, float]:
    """The second smallest and second largest value: one noisy pixel does not decide."""
    flat = values.ravel()
    if flat.size < 3:
        return float(flat.min()), float(flat.max())
    lo, hi = int(flat.argmin()), int(flat.argmax())
    darkest = min(flat[:lo].min(initial=np.inf), flat[lo + 1 :].min(initial=np.inf))
    lightest = max(flat[:hi].max(initial=-np.inf), flat[hi + 1 :].max(initial=-np.inf))
    return float(darkest), float(lightest)


def noise(image: np.ndarray) -> float:
    """A float32 image's noise (standard deviation) from differences of neighbouring pixels, which shading, ink
    and paper hardly change: 1.4826 times their median absolute value, over the square root of two."""
    if image.shape[1] < image.shape[0]:  # along the longer side: a one-pixel-wide image has its pairs there
        image = image.T
    if image.shape[1] < 2:
        return 0.0
    rows = image[:: max(1, image.shape[0] // 32)]
    # OpenCV's absdiff of whole rows (numpy's arithmetic on strided columns is slower), then every
    # step-th pair: ~2,000 are plenty. The same float32 differences as numpy's.
    diffs = cv2.absdiff(rows[:, 1:], rows[:, :-1])[:, :: max(1, rows.shape[1] // 64)]
    return 1.4826 / math.sqrt(2) * upper_median(diffs)


def grey_noise(image: np.ndarray) -> float:
    """A float32 image's noise (standard deviation) in grey levels from the smallest nine tenths of the differences
    of neighbouring pixels along rows (the rest: ink and shadows' edges), through a Gaussian's truncated second moment.
    `noise`'s median is nought where a JPEG leaves most neighbours alike, though its noise is not."""
    if image.shape[1] < 2:
        return 0.0
    diffs = cv2.absdiff(image[:, 1:], image[:, :-1]).ravel()
    kept = np.partition(diffs, diffs.size * 9 // 10)[: diffs.size * 9 // 10 + 1]
    # A Gaussian's |d| below its 90th percentile (1.645 deviations) holds 0.623 of d's variance (1 - 2 x 1.645 x
    # phi(1.645) / 0.9); d's variance is twice the pixels'.
    return float(np.sqrt(np.mean(np.square(kept)) / (2 * 0.623)))


def stroke_width(mask: np.ndarray, *, open_border: bool = False) -> float:
    """Mean stroke width of a 0/1 uint8 mask in pixels: its area over half its perimeter (exact for long strokes).
    The perimeter counts ink/paper changes along rows and columns; paper lies beyond the border, or with
    `open_border` the ink goes on beyond it (shade comes in from beyond a page's edge): its sides there are no edge."""
    h, w = mask.shape
    area = cv2.countNonZero(mask)
    # Each ink pixel has four sides, and each pair of ink neighbours hides two of them from the paper: the count of
    # changes with a paper border round the mask, from two elementwise minima and no padded copy.
    pairs = cv2.countNonZero(cv2.min(mask[1:], mask[:-1])) if h > 1 else 0
    pairs += cv2.countNonZero(cv2.min(mask[:, 1:], mask[:, :-1])) if w > 1 else 0
    sides = 4 * area - 2 * pairs
    if open_border:  # each ink pixel on an outer line has a side there (a corner two, a one-pixel line's both)
        sides -= sum(int(np.count_nonzero(line)) for line in (mask[0], mask[-1], mask[:, 0], mask[:, -1]))
    return 2.0 * area / max(sides, 1)


def lattice(small: np.ndarray) -> tuple[np.ndarray, int]:
    """(gh, gw, CELLS**2): each block of a GRID-a-side lattice as area averages of its cells, sorted; and the
    blocks' side in pixels (the image edge-padded to whole blocks)."""
    h, w = small.shape
    cell = max(1, math.ceil(max(h, w) / GRID) // CELLS)  # pixels a cell: a whole number keeps OpenCV's fast path
    side = cell * CELLS
    gh, gw = -(-h // side), -(-w // side)
    padded = cv2.copyMakeBorder(small, 0, gh * side - h, 0, gw * side - w, cv2.BORDER_REPLICATE)
    cells = cv2.resize(padded, (gw * CELLS, gh * CELLS), interpolation=cv2.INTER_AREA) if cell > 1 else padded
    return np.sort(cells.reshape(gh, CELLS, gw, CELLS).transpose(0, 2, 1, 3).reshape(gh, gw, -1), axis=2), side


def _lattice_paper(small: np.ndarray) -> tuple[bool, float | None, float | None]:
    """Which side is ink (True: dark ink on light paper), the paper's one grey level if it is flat, and the image's
    `noise` (None for a digital drawing, which is read without it)."""
    if (drawn := _drawn_paper(small)) is not None:
        return (*drawn, None)
    blocks, _ = lattice(small)
    n = blocks.shape[2]
    typical = upper_median(blocks[..., n // 2])  # paper, unless ink covers half the image
    # Uneven light spreads the paper about its median on both sides; ink adds a long tail on one side only.
    darkest, lightest = second_extremes(small)
    # A border of one paper level decides first (a bold digit filling an upscaled frame misleads the strokes' own
    # contrast). A hand's shadow over half the page puts the median in the shade, and the lit paper then looks like
    # the tail: the strokes' contrast decides next, the tails only when it cannot tell (bold markers).
    sigma = noise(small)  # the strokes' contrast and the page's level both read it
    dark_ink = _border_dark(small, darkest, lightest) if BORDER_SPREAD else None
    if dark_ink is None:
        dark_ink = _strokes_dark(small, sigma)
    if dark_ink is None:
        dark_ink = typical - darkest > lightest - typical
    # Each block's paper is its lower quartile in ink-bright terms: right unless ink covers 3/4 of the block.
    paper = (255.0 - blocks[..., n - 1 - n // 4] if dark_ink else blocks[..., n // 4]).ravel()  # ink-bright
    base = float(np.partition(paper, paper.size // 10)[paper.size // 10])  # the paper-most tenth of the blocks
    away = np.abs(paper - base)
    # A lamp's broad spot or the lit side of a hand's shadow holds many blocks at one level, like a flat page; the
    # rest of the page, shaded, lies away from it, and one level for all of it would read the shade as blots of ink.
    shaded_blocks = np.count_nonzero(away > FLAT_NEAR)
    if np.count_nonzero(away <= 1.0) >= FLAT_SHARE * paper.size:
        level = 255.0 - base if dark_ink else base
    else:
        level = _page_level(small, dark_ink, darkest, lightest, sigma)
        if level is None:
            return dark_ink, None, sigma
    if shaded_blocks >= SHADE_SHARE * paper.size and (
        _blotted(small, level, dark_ink)
        or _graded(paper.reshape(blocks.shape[:2]), base, abs(level - (darkest if dark_ink else lightest)))
    ):
        return dark_ink, None, sigma
    return dark_ink, level, sigma


def _drawn_paper(small: np.ndarray) -> tuple[bool, float] | None:
    """(dark ink, the paper's level) of a digital drawing (a canvas, a typeset digit), else None: its border one
    exact level and the image's extreme (nothing lies beyond the paper), and the ink that implies the minority of
    the pixels, in strokes (no wider than DRAWN_STROKE of its box's long side: a page letterboxed by black bars has
    such a border, and the page would be one blot of "ink"). The lattice reads such an image alike, at several
    times the cost; a photo's noise never leaves a border this even."""
    level, most = cv2.minMaxLoc(border(small))[:2]
    if level != most:  # a photo's border: decided without reading the rest of the image
        return None
    darkest, lightest = cv2.minMaxLoc(small)[:2]
    if darkest == lightest or level not in (darkest, lightest):
        return None
    dark_ink = level == lightest
    middle = 0.5 * (darkest + lightest)
    # numpy compares in float32, as OpenCV's threshold does, straight into a mask: one array, not two
    ink = (small <= np.float32(middle) if dark_ink else small > np.float32(middle)).view(np.uint8)
    if 2 * cv2.countNonZero(ink) >= small.size:
        return None
    _, _, w, h = cv2.boundingRect(ink)
    return (dark_ink, level) if stroke_width(ink) <= DRAWN_STROKE * max(w, h) else None


def _page_level(small: np.ndarray, dark_ink: bool, darkest: float, lightest: float, sigma: float) -> float | None:
    """The grey level that PAGE_SHARE of the pixels hold, when few lie beyond it on the paper's side; else None.
    An upscaler's ringing (bicubic: under a tenth of the ink's contrast) is not beyond it; shading is."""
    # Whole grey levels, truncated as a float histogram's bins would count them: OpenCV's uint8 path is ten times
    # faster than its float one.
    counts = cv2.calcHist([small.astype(np.uint8)], [0], None, [256], [0, 256]).ravel()
    near = int(max(PAGE_NEAR, 2.0 * sigma))
    held = np.convolve(counts, np.ones(2 * near + 1, np.float32), "same")
    mode = int(held.argmax())
    if held[mode] < PAGE_SHARE * small.size:
        return None
    ring = max(near, round(PAGE_RING * abs(mode - (darkest if dark_ink else lightest))))
    beyond = counts[mode + ring + 1 :].sum() if dark_ink else counts[: max(mode - ring, 0)].sum()
    return float(mode) if beyond <= PAGE_BEYOND * small.size else None


def _blotted(small: np.ndarray, level: float, dark_ink: bool) -> bool:
    """Whether one paper level would leave ink in strokes no digit has (wider than BLOT of the image's side, along
    BLOT_RIM of its border or more): a lamp's broad spot looks flat, and the shade around it is then read as ink."""
    contrast = (level - small) if dark_ink else (small - level)
    ink = (contrast >= 0.5 * float(contrast.max())).view(np.uint8)
    # Shade comes in from the page's edge along much of it; a digit, however bold, touches the edge here and there.
    rim = border(ink)
    if np.count_nonzero(rim) < BLOT_RIM * rim.size:
        return False
    # Only what reaches the border is shade, and its width is measured as if it went on beyond.
    return stroke_width(_on_border(ink), open_border=True) > BLOT * max(small.shape)


def _on_border(mask: np.ndarray) -> np.ndarray:
    """The 0/1 uint8 mask's pieces (8-connected) that reach the image's border."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    h, w = mask.shape
    left, top, right, bottom = stats[:, 0], stats[:, 1], stats[:, 0] + stats[:, 2], stats[:, 1] + stats[:, 3]
    reach = (left == 0) | (top == 0) | (right == w) | (bottom == h)
    reach[0] = False  # the background
    return reach[labels].view(np.uint8) if count > 1 else mask


def _graded(paper: np.ndarray, base: float, contrast: float) -> bool:
    """Whether the blocks' paper (ink-bright, one value a block, `base` the paper-most tenth's) is a plane tilted
    across the page by GRADED of the ink's `contrast` or more, within GRADE_FIT of the tilt: light graded across it."""
    if not GRADED:
        return False
    bare = np.abs(paper - base) < 0.5 * contrast  # a block a stroke fills is ink, not paper
    count = np.count_nonzero(bare)
    if count < 0.5 * paper.size:
        return False
    gh, gw = paper.shape
    y, x = np.mgrid[0:gh, 0:gw]
    # The plane's x and y run 0..1 across the page: its coefficients are its rise along each side.
    across = np.stack([np.ones(count), x[bare] / max(gw - 1, 1), y[bare] / max(gh - 1, 1)], 1)
    plane = np.linalg.lstsq(across, paper[bare], rcond=None)[0]
    tilt = abs(plane[1]) + abs(plane[2])
    off = float(np.sqrt(np.mean((across @ plane - paper[bare]) ** 2)))
    return tilt >= max(GRADED * contrast, FLAT_NEAR) and off <= GRADE_FIT * tilt


def _border_dark(small: np.ndarray, darkest: float, lightest: float) -> bool | None:
    """Which side is ink by the image's border when it is one paper level, the ink that implies reaches the border
    and is the minority of the pixels (a bold digit filling an upscaled frame); None otherwise."""
    ring = border(small)
    quartiles = (ring.size // 4, ring.size // 2, 3 * ring.size // 4)
    q1, median, q3 = np.partition(ring, quartiles)[list(quartiles)]  # one partition, not np.percentile's sort
    if q3 - q1 > BORDER_SPREAD * (lightest - darkest):
        return None
    dark, middle = bool(median - darkest > lightest - median), 0.5 * (darkest + lightest)
    # Only a digit filling its frame, which reaches the border here and there: a page on a table, its border all
    # table, holds its digit inside, and the strokes' contrast reads that.
    if np.count_nonzero(ring < middle if dark else ring > middle) < 2:
        return None
    dark_share = cv2.countNonZero((small < middle).view(np.uint8)) / small.size
    return dark if (dark_share < 0.5) == dark else None


def _strokes_dark(small: np.ndarray, sigma: float) -> bool | None:
    """True when the strokes are darker than their surroundings, False when lighter, None when it cannot tell
    (`sigma`: the image's noise)."""
    k = max(3, max(small.shape) // POLARITY_SIDE) | 1
    local = cv2.blur(small, (k, k), borderType=cv2.BORDER_REPLICATE)
    detail = small - local
    found = _one_sided(detail, sigma)
    return found if found is not None or not SHADOW_STEP else _shadowed_dark(detail, local, k, sigma)


def _detail_floor(sigma: float) -> float:
    """Detail within this of the local mean is noise (`sigma`: the image's), for both polarity tests."""
    return 3.0 * max(sigma, 1.0)


def _step(local: np.ndarray, k: int) -> np.ndarray:
    """The local mean's gradient times its window: a step's height across it, near nothing for a thin stroke."""
    gx = cv2.Sobel(local, cv2.CV_32F, 1, 0, ksize=3, scale=k / 8, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.Sobel(local, cv2.CV_32F, 0, 1, ksize=3, scale=k / 8, borderType=cv2.BORDER_REPLICATE)
    return cv2.magnitude(gx, gy)


def _step_on_border(detail: np.ndarray, local: np.ndarray, k: int, floor: float) -> bool:
    """Whether a step above 2 x floor that explains the detail there reaches the border. Each side's from its two
    outer lines: with the border replicated, the outermost one's gradient is the whole image's up to float rounding
    (OpenCV rounds a two-column slice's vertical derivative in the last bits), for less than the whole image's at
    the analysis size; the whole image's runs only when one does."""
    for lines, outer in (
        (np.s_[:2], np.s_[0]),
        (np.s_[-2:], np.s_[-1]),
        (np.s_[:, :2], np.s_[:, 0]),
        (np.s_[:, -2:], np.s_[:, -1]),
    ):
        step = _step(local[lines], k)[outer]
        if np.any((step > SHADOW_STEP * np.abs(detail[outer])) & (step > 2 * floor)):
            return True
    return False


def _shadowed_dark(detail: np.ndarray, local: np.ndarray, k: int, sigma: float) -> bool | None:
    """`_strokes_dark` on a page crossed by a shading step (a shadow's edge reaching the border): the pixels the step
    does not explain, counted; None when no such step or no clear majority. `detail` is changed."""
    floor = _detail_floor(sigma)
    # A bold digit's own edges are steps too, but inside the page: only a step that reaches the border is shading.
    if not _step_on_border(detail, local, k, floor):
        return None
    detail[_step(local, k) > SHADOW_STEP * np.abs(detail)] = 0
    dark, light = np.count_nonzero(detail < -floor), np.count_nonzero(detail > floor)
    if dark + light < SHADOW_EVIDENCE * max(detail.shape):
        return None
    if abs(dark - light) >= POLARITY_MARGIN * (dark + light):
        return dark > light
    # No clear majority of pixels: weighed by their depth beyond the floor, a stroke's core outweighs the shallow
    # halo beside it. That decides only the way the count leans (a speck's depth alone must not turn it).
    if not SHADOW_DEPTH:
        return None
    dark_depth, light_depth = _depths(detail, floor, 1)
    clear = abs(dark_depth - light_depth) >= POLARITY_MARGIN * (dark_depth + light_depth)
    return dark > light if clear and (dark_depth > light_depth) == (dark > light) else None


def _depths(detail: np.ndarray, floor: float, power: int) -> tuple[float, float]:
    """The sums of the dark and of the light detail's depths beyond `floor`, each raised to `power`."""
    # numpy's scalar subtraction and OpenCV's threshold at zero: the same values, cheaper than cv2.max with a scalar
    dark = cv2.threshold(-floor - detail, 0, 0, cv2.THRESH_TOZERO)[1]
    light = cv2.threshold(detail - floor, 0, 0, cv2.THRESH_TOZERO)[1]
    if power != 1:
        dark, light = cv2.pow(dark, power), cv2.pow(light, power)
    return float(cv2.sumElems(dark)[0]), float(cv2.sumElems(light)[0])


def _one_sided(detail: np.ndarray, sigma: float) -> bool | None:
    """Whether detail (an image less its local level) is mostly dark (True) or light (False); None when neither
    side has POLARITY_MARGIN more of it. A stroke's core is deep and its halo shallow, while the two sides of an
    edge are alike: cubes weigh the depth."""
    dark, light = _depths(detail, _detail_floor(sigma), 3)
    if dark + light == 0 or abs(dark - light) < POLARITY_MARGIN * (dark + light):
        return None
    return dark > light


def _opened_paper(small: np.ndarray, dark_ink: bool, k: int) -> np.ndarray:
    """The paper's grey level at every pixel: the image with its ink opened away by a k x k square.

    An opening keeps shading of any width as it is, a shadow's edge too. Paper is smooth: opened on cells of
    k / OPEN_CELL pixels and interpolated back, so the cost does not grow with k."""
    h, w = small.shape
    cell = max(1, k // OPEN_CELL)
    bright = box_reduce(255.0 - small if dark_ink else small, cell)
    r = max(k // cell, 3) | 1
    # Beyond the border the paper goes on as it ends: a shadow's corner is not mistaken for a thin stroke.
    padded = cv2.copyMakeBorder(bright, r, r, r, r, cv2.BORDER_REPLICATE)
    paper = cv2.morphologyEx(padded, cv2.MORPH_OPEN, np.ones((r, r), np.uint8))[r:-r, r:-r]
    if cell > 1:
        paper = cv2.resize(paper, (paper.shape[1] * cell, paper.shape[0] * cell), interpolation=cv2.INTER_LINEAR)
        paper = paper[:h, :w]
    return 255.0 - paper if dark_ink else paper


def _fine_paper(small: np.ndarray, level: np.ndarray, dark_ink: bool, raw: np.ndarray) -> np.ndarray:
    """The paper refined at the strokes' scale: an opening a few stroke widths wide keeps what is wider than
    strokes (the coarse paper's blur along a shadow's sharp edge) as paper."""
    peak = float(raw.max())
    if peak <= 0:
        return level
    first = (raw >= 0.5 * peak).view(np.uint8)
    k = int(FINE * stroke_width(first) + 3) | 1
    if FINE_WIDEST and k > FINE_WIDEST:  # bold strokes: the coarse paper as it is
        return level
    # In whole grey levels (small holds 0-255, so the absolute value convertScaleAbs takes changes nothing):
    # OpenCV's uint8 morphology is several times faster than its float one.
    bright = cv2.convertScaleAbs(small, alpha=-1.0, beta=255.0) if dark_ink else cv2.convertScaleAbs(small)
    opened = cv2.morphologyEx(bright, cv2.MORPH_OPEN, np.ones((k, k), np.uint8), borderType=cv2.BORDER_REPLICATE)
    coarse = 255.0 - level if dark_ink else level
    paper = cv2.max(coarse, opened.astype(np.float32))
    return 255.0 - paper if dark_ink else paper


def strength(grey: np.ndarray, level: np.ndarray | float, dark_ink: bool) -> tuple[np.ndarray, np.ndarray]:
    """Contrast (grey levels from the paper towards the ink) and ink strength: 0 on paper, 1 for ink a whole
    headroom (paper to black, or to white) away from it, negative for paper beyond its level. `level`: the paper's
    at every pixel of float32 `grey`, or its one level when the paper is flat."""
    if not isinstance(level, np.ndarray):
        if min(grey.shape) > 1:
            return _flat_strength(grey, np.float32(level), dark_ink)
        level = np.full(grey.shape, level, np.float32)  # OpenCV reads a one-pixel-wide array as a scalar
    contrast = cv2.subtract(level, grey) if dark_ink else cv2.subtract(grey, level)
    # Light falls on paper and ink alike: relative to the local paper's headroom a stroke in the shade is as
    # strong as in full light.
    return contrast, cv2.divide(contrast, _headroom(level, dark_ink))


def _headroom(level: np.ndarray, dark_ink: bool) -> np.ndarray:
    """The paper's headroom at every pixel: grey levels from its level to black (dark ink) or to white, floored."""
    return cv2.max(level if dark_ink else 255.0 - level, HEADROOM_FLOOR)


def _flat_strength(grey: np.ndarray, level: np.float32, dark_ink: bool) -> tuple[np.ndarray, np.ndarray]:
    """`strength` on flat paper: the same float32 values from a scalar level and headroom, without full-size
    arrays of them."""
    contrast = level - grey if dark_ink else grey - level
    headroom = max(level if dark_ink else np.float32(255.0) - level, np.float32(HEADROOM_FLOOR))
    return contrast, contrast / headroom


def otsu(strength: np.ndarray, peak: float) -> tuple[float, np.ndarray]:
    """Otsu's threshold of a non-negative strength map, kept off the paper's noise and off a few very dark
    pixels, and the mask (uint8) of the ink it keeps."""
    levels = cv2.convertScaleAbs(strength, alpha=255.0 / peak)
    level, mask = cv2.threshold(levels, 0, 1, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    if not 51 <= level <= 152:  # the mask (levels above `level`) starts between 0.2 and 0.6 of the peak
        level = min(max(level, 51), 152)
        mask = cv2.threshold(levels, level, 1, cv2.THRESH_BINARY)[1]
    return (level + 0.5) / 255.0 * peak, mask


def _above(image: np.ndarray, level: float) -> np.ndarray:
    """The uint8 mask of a float32 image's pixels above `level`: OpenCV's binary threshold to 1, which compares in
    float32 too, without its float32 result and a uint8 copy of that."""
    return (image > np.float32(level)).view(np.uint8)


def ink_map(small: np.ndarray) -> InkMap:
    """The analysis image (float32 grey levels) read as paper and ink; raises Blank when there is no ink."""
    dark_ink, level, grey_sigma = _lattice_paper(small)  # the noise in grey levels, read once for both its uses
    if level is None:
        level = _opened_paper(small, dark_ink, int(OPEN_SIDE * max(small.shape)) | 1)
    shaded = isinstance(level, np.ndarray) and float(level.max() - level.min()) >= SHADED
    contrast, raw = strength(small, level, dark_ink)
    if shaded and FINE:  # evenly lit paper has no shadow edges for the coarse paper to blur
        refined = _fine_paper(small, level, dark_ink, raw)
        if refined is not level:
            level = refined
            contrast, raw = strength(small, level, dark_ink)
    ink_strength = cv2.threshold(raw, 0, 0, cv2.THRESH_TOZERO)[1]
    peak = float(ink_strength.max())
    sigma = noise(raw)  # in strength; the blank test's contrast measures ink in grey levels
    faint = float(contrast.max()) < MIN_CONTRAST  # in the shade, a stroke's worth of pixels may say otherwise
    if faint and shaded and STROKE_RUN:
        faint = _lit_stroke(contrast, level, dark_ink) < LIT_CONTRAST
    if peak <= BLANK_NOISE * sigma or faint:
        raise Blank("the image has no ink: it is blank or too faint to read a digit")
    threshold, ink = otsu(ink_strength, peak)
    if threshold < min(INK_NOISE * sigma, 0.6 * peak):  # Otsu split the paper's noise: ink stands above it
        threshold = min(INK_NOISE * sigma, 0.6 * peak)
        ink = _above(ink_strength, threshold)
    low = min(max(WEAK * threshold, WEAK_NOISE * sigma), threshold)
    weak = _above(ink_strength, low)
    pieces = 0
    if shaded and SHADE_NOISE:
        ink, weak, pieces = _above_shade_noise(small, contrast, ink, weak, grey_sigma)
    return InkMap(dark_ink, level, ink_strength, threshold, ink, weak, shaded, pieces)


def _lit_stroke(contrast: np.ndarray, level: np.ndarray, dark_ink: bool) -> float:
    """The contrast a stroke's worth of pixels (STROKE_RUN of the image's long side) holds at least, each as under the
    page's best light: light dims ink and paper alike, so a stroke in the shade has less contrast than in the light."""
    headroom = _headroom(level, dark_ink)
    lit = (contrast * (float(headroom.max()) / headroom)).ravel()
    n = max(1, int(STROKE_RUN * max(contrast.shape)))
    return float(np.partition(lit, lit.size - n)[lit.size - n])


def _above_shade_noise(
    small: np.ndarray, contrast: np.ndarray, ink: np.ndarray, weak: np.ndarray, sigma: float | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """`ink` and `weak` less the pieces of weak ink (8-connected) none of whose pixels' contrast (grey levels) stands
    INK_NOISE deviations of the image's noise in grey levels (at least GREY_NOISE_FLOOR) above the paper
    (`SHADE_NOISE`): specks of the noise that strength magnifies in the shade. A stroke's piece is kept whole, its faint
    rim too; as they were where that would leave no ink. `sigma`: `noise(small)` where already read. Also the count of
    the weak ink's pieces and the paper (`InkMap.pieces`): pieces are kept whole, so those kept are the pieces of what
    is left."""
    # `noise`'s median is nought where a JPEG leaves most neighbours alike; neither reads a JPEG's ringing
    sigma = max((noise(small) if sigma is None else sigma) or grey_noise(small), GREY_NOISE_FLOOR)
    count, labels = cv2.connectedComponents(weak, connectivity=8)
    keep = np.zeros(count, bool)
    stands = (contrast > INK_NOISE * sigma) & weak.view(bool)  # `weak` is 0/1: its bytes are numpy's bools
    if count == 2:  # one piece: kept where any pixel stands, no lookup of its label
        keep[1] = stands.any()
    else:
        keep[labels[stands]] = True  # `stands` lies on the weak ink: never label 0, the paper
    # Every piece kept (a clean page): the pieces are the mask itself, no lookup of their labels.
    kept = weak if keep[1:].all() else keep[labels].view(np.uint8)
    inked = cv2.bitwise_and(ink, kept)
    if not cv2.countNonZero(inked):
        return ink, weak, count
    return inked, kept, int(np.count_nonzero(keep)) + 1
