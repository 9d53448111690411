"""A grey image -> MNIST's frame: the digit as white ink on black, 20x20 box, centre of mass at (14, 14).

OpenCV does the pixel work (the service never imports torch). The steps, in order: a blocky enlargement back to
its own grid (`_native_grid`), a margin of paper round a digital image whose digit fills its frame (`_margin`),
paper, polarity and ink (`serving.paper`), which ink is the whole digit (`serving.regions.select_digit`), its ink at
the caller's resolution (`_digit_ink`), MNIST's stroke width (`_thin`, `_thicken`) and slant (`_deskew`), then the
20x20 box centred by mass (`_centre`). Analysis runs on a copy reduced to at most 256 px; the digit is rendered from
the caller's <= 512 px grey (or from its own grid, for a blocky enlargement).
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from serving.paper import Blank, border, box_reduce, ink_map, strength, stroke_width, upper_median
from serving.regions import fill_hollow, max_pool, paper_lines, select_digit

cv2.setNumThreads(1)  # images this small gain nothing from threads; the service scales by workers instead

SIDE, BOX = 28, 20  # MNIST frame and the box the digit is scaled into
ANALYSIS_SIDE = 256  # background, threshold and components are found at this size: fast, and fine enough
MNIST_GROUND, MNIST_INK = 8.0, 96.0  # MNIST's ground is 0 (at most this) and its strokes reach 255 (this above it)
INK_LEVEL = 0.2  # fraction of the ink's peak that counts as ink for a bounding box
POOL_TARGET = 2 * BOX  # longer crops are max-pooled to at most this first, so thin strokes survive the resize
# Stroke width, in pixels of the 20x20 box, as 2 * area / perimeter of the ink >= 0.5: measured on the 10,000
# MNIST test digits (benchmarks/preprocess.py --mnist-stats): 5% 1.32, median 2.0, 90% 2.8, 95% 3.12.
STROKE = 2.0  # thinnest stroke: thinner drawings are thickened to it (MNIST's median)
STROKE_MAX = 3.1  # bolder strokes (markers; MNIST's 95th percentile) are thinned ...
# ... to MNIST's 90th. The exported CNN on 300 marker drawings of MNIST digits read 92% unthinned, 97% thinned
# to 2.8 and 94% thinned to the median 2.0, which shrinks loops that a bold pen half filled into blots.
THIN_TO = 2.8
# Switch for measuring: shear slants beyond DESKEW_LIMIT back to it. The CNN on 300 photos of MNIST digits
# slanted by a further +-0.8 read 99% with it and 90% without; on unslanted photos it changed nothing.
DESKEW = True
# MNIST's slant mu11/mu02 (x shift per row): 1% -0.74, 5% -0.53, median -0.09, 95% 0.32, 99% 0.52;
# |slant| > 0.5 for 7.6% of the digits. MNIST is not deskewed and the models learnt its slants as they are.
DESKEW_LIMIT = 0.5
# A digital image whose digit fills its frame (an 8x8 scan upscaled, an image cropped to its ink) has strokes on the
# border, which `serving.regions` takes for paper edges, and a border that is partly ink. When at least FILLED_PAPER
# of the border is one exact grey level at the image's extreme (paper; a photo's noise never leaves that much of one
# level), the rest is not, and the border turns between the two at most FILLED_TURNS times (a digit reaches its frame
# in a few places, noise everywhere), a margin of that level, MARGIN of the long side (at least 2 px), goes round it
# first; not where a side is a band of ink (`_margin`). Chosen on MNIST validation digits reduced to UCI's 8x8 grid
# and upscaled (benchmarks.real_digits --digits mnist-val: the CNN read 88.2% -> 96.2% of the smooth 64 px ones; their
# borders turn at most 13 times, random 1-bit noise's ~200); FILLED_PAPER 0.1 and 0.2 changed dev answers, 0.3 and
# 0.5 none (0.5 helped less). 0: off.
FILLED_PAPER, FILLED_TURNS, MARGIN = 0.3, 16, 1 / 16
# A small image enlarged blocky (each pixel repeated k x k times: an 8x8 scan upscaled by nearest neighbour) is read
# at its own grid, at least NATIVE_MIN a side, and enlarged smoothly by the 20x20 fit: the blocks' staircase edges
# misled the CNN. On MNIST validation digits reduced to UCI's grid (benchmarks.real_digits --digits mnist-val, with
# the margin) the CNN read 89.0% -> 95.0% of them at 32 px and 89.4% -> 95.0% at 112 px; no dev answer changed.
# 0: off.
NATIVE_MIN = 4
LINE_REST = 0.1  # lines are paper only when a tenth of the ink is left without them (else they are the digit: a 1)
CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
SQUARE = np.ones((3, 3), np.uint8)


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area averaging to shrink (thin strokes fade but stay), bilinear to enlarge."""
    shrink = width < image.shape[1] or height < image.shape[0]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


@functools.lru_cache(maxsize=64)
def _disc(radius: int) -> np.ndarray:
    """The disc x^2 + y^2 <= radius^2 as a structuring element."""
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return (x * x + y * y <= radius * radius).astype(np.uint8)


def _bounds(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of a boolean mask's True pixels, bottom and right exclusive; None when none."""
    x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
    return None if w == 0 else (y, y + h, x, x + w)


def _moments(image: np.ndarray) -> dict[str, float]:
    """cv2.moments of an image's pixels. OpenCV reads an (N, 2) array as N points: a paper column on the right
    (which changes no moment) keeps it an image."""
    if image.shape[1] == 2:
        image = cv2.copyMakeBorder(image, 0, 0, 0, 1, cv2.BORDER_CONSTANT, value=0)
    return cv2.moments(image)


def _crop(ink: np.ndarray, level: float = INK_LEVEL) -> np.ndarray:
    """The bounding box of ink >= level (the whole array when there is none)."""
    bounds = _bounds(ink >= level)
    # A contiguous copy: numpy's comparisons that follow (ink >= 0.5) are slower on a strided view.
    return ink if bounds is None else np.ascontiguousarray(ink[bounds[0] : bounds[1], bounds[2] : bounds[3]])


# -- MNIST as it is ------------------------------------------------------------------------------------


def _mnist_like(grey: np.ndarray) -> np.ndarray | None:
    """An image that is already an MNIST digit (small, white on a black ground, long side ~20) as ink, else None."""
    h, w = grey.shape
    if max(h, w) > SIDE + 8:
        return None
    ground = upper_median(np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]]))
    peak = float(grey.max())
    if ground > MNIST_GROUND or peak - ground < MNIST_INK:
        return None
    ink = np.clip((grey - ground) / (peak - ground), 0.0, 1.0).astype(np.float32)
    top, bottom, left, right = _bounds(ink > 0)
    if not BOX - 2 <= max(bottom - top, right - left) <= BOX + 1:  # MNIST's is 20 (19 for 3 of its 10,000 tests)
        return None
    return ink[top:bottom, left:right]


def _run_gcd(sums: np.ndarray) -> int:
    """The greatest common divisor of the lengths of the runs of equal values along `sums`."""
    starts = np.flatnonzero(sums[1:] != sums[:-1]) + 1
    return math.gcd(*np.diff(starts, prepend=0, append=len(sums)).tolist())


def _native_grid(grey: np.ndarray) -> np.ndarray:
    """An image that is a smaller one, at least NATIVE_MIN a side, with each pixel repeated k x k times, as that smaller
    one; any other as it is."""
    h, w = grey.shape
    if not NATIVE_MIN or min(h, w) < 2 * NATIVE_MIN:
        return grey
    # For any k >= 2, of three rows (columns) in a row two neighbours are equal: through the middle, where the digit
    # is, a photo's or a drawing's are not, and it stops here at the cost of a few rows.
    for lines in (grey, grey.T):  # compared as bytes: a fraction of a microsecond, where numpy's calls cost several
        a, b, c = (lines[len(lines) // 2 + i].tobytes() for i in (-1, 0, 1))
        if a != b and b != c:
            return grey
    # Rows (columns) of one block are equal, so their sums are: runs of equal sums bound k. Two different rows can
    # have equal sums, so k is checked pixel by pixel.
    rows = cv2.reduce(grey, 1, cv2.REDUCE_SUM, dtype=cv2.CV_64F).ravel()
    cols = cv2.reduce(grey, 0, cv2.REDUCE_SUM, dtype=cv2.CV_64F).ravel()
    k = math.gcd(_run_gcd(rows), _run_gcd(cols))
    if k < 2 or min(h, w) // k < NATIVE_MIN:
        return grey
    small = grey[::k, ::k]
    return small if np.array_equal(np.repeat(np.repeat(small, k, 0), k, 1), grey) else grey


def _margin(grey: np.ndarray) -> np.ndarray:
    """A digital image whose ink reaches its border in a few places (`FILLED_PAPER`), with a margin of its paper round
    it; any other image as it is."""
    if not FILLED_PAPER:
        return grey
    ring = border(grey)
    lowest, highest = cv2.minMaxLoc(ring)[:2]  # one call, not numpy's two
    if lowest == highest:  # paper all round (or ink all round): nothing reaches the border
        return grey
    chosen, most = None, 0
    for level in cv2.minMaxLoc(grey)[:2]:
        paper = ring == grey.dtype.type(level)  # compared in the image's own type: no float64 copy
        count = np.count_nonzero(paper)
        # Both extremes can qualify (a thick dark digit cropped tight): the paper is the one holding more border.
        if FILLED_PAPER * ring.size <= count < ring.size and count > most:
            chosen, most = (level, paper), count
    if chosen is None:
        return grey
    level, paper = chosen
    h, w = grey.shape
    # A side with no paper on it, nor a margin's depth inside it, is a band along it (a scanner's or a table's edge),
    # not a stroke's end: with a margin round it, serving.regions would no longer see it touch the border and would
    # read it as ink. At least two lines deep: the bottom row of an 8x8 grid's 2, and the row above it, can be all ink.
    deep = min(max(2, round(max(h, w) * MARGIN)), h - 1, w - 1)
    inner = (grey[deep], grey[-1 - deep], grey[:, deep], grey[:, -1 - deep])
    sides = (paper[:w], paper[w : 2 * w], paper[2 * w : 2 * w + h - 2], paper[2 * w + h - 2 :])  # as `border` joins
    typed = grey.dtype.type(level)
    if any(side.size and not side.any() and not (line == typed).any() for side, line in zip(sides, inner, strict=True)):
        return grey
    # `border` joins the top row, the bottom row and the two columns: three of the turns may be at those joins.
    if np.count_nonzero(paper[1:] != paper[:-1]) > FILLED_TURNS:
        return grey
    side = max(2, round(max(h, w) * MARGIN))
    return cv2.copyMakeBorder(grey, side, side, side, side, cv2.BORDER_CONSTANT, value=level)


# -- the digit's ink ---------------------------------------------------------------------------------------


def _enlarges_exactly(flat: float, factor: int) -> bool:
    """Whether bilinear enlargement by `factor` leaves flat paper's level as it is: a power of two's weights are
    dyadic fractions, so a whole grey level's weighted sums are exact; other levels may round in the last bit."""
    return float(flat).is_integer() and 0 <= flat <= 255 and factor & (factor - 1) == 0


def _digit_ink(grey: np.ndarray) -> np.ndarray:
    """The digit's ink strength (0 = paper, 1 = full stroke) in its box of `grey`, at `grey`'s resolution."""
    h, w = grey.shape
    factor = math.ceil(max(h, w) / ANALYSIS_SIDE)
    small = box_reduce(grey, factor)
    m = ink_map(small)
    weak, strong = m.weak, m.ink
    found = paper_lines(weak, 2 * stroke_width(weak) + 1) if m.shaded else None
    lines = None
    if found is not None:  # a fold or crease is paper: the digit is chosen without it (unless it is all the ink)
        rest = cv2.subtract(strong, found[0])
        if cv2.countNonZero(rest) >= LINE_REST * cv2.countNonZero(strong):
            weak, strong, lines = cv2.subtract(weak, found[0]), rest, found[0]
    labels, stats, keep = select_digit(weak, strong, m.pieces if weak is m.weak else 0)  # lines taken out: uncounted
    sh, sw = small.shape
    # The chosen components' box, and a rim of one pixel around their ink.
    kept = stats[keep].tolist()  # [left, top, width, height, area] each: a few, faster in plain Python
    top, left = max(min(k[1] for k in kept) - 1, 0), max(min(k[0] for k in kept) - 1, 0)
    bottom, right = min(max(k[1] + k[3] for k in kept) + 1, sh), min(max(k[0] + k[2] for k in kept) + 1, sw)
    # Every piece kept (one stroke, as a drawing mostly is): the digit is the mask itself, no lookup of its labels.
    digit = weak[top:bottom, left:right] if keep[1:].all() else keep[labels[top:bottom, left:right]].view(np.uint8)
    on_line = cv2.bitwise_and(lines, m.weak) if lines is not None else None
    # Where a stroke crosses the line, the ink on it is darker than the line's own. (A line drawn along a band's
    # middle can miss the weak ink altogether: then there is no crossing to give back.)
    if on_line is not None and cv2.countNonZero(on_line):
        line_level = float(np.median(m.strength[on_line > 0]))
        crossing = cv2.bitwise_and(on_line, (m.strength >= line_level + m.threshold).view(np.uint8))
        near = cv2.dilate(digit, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * found[1] + 3,) * 2))
        digit = cv2.bitwise_or(digit, cv2.bitwise_and(near, crossing[top:bottom, left:right]))
    allowed = cv2.dilate(digit, CROSS)
    if factor == 1:
        fine = m.strength[top:bottom, left:right]
    else:  # at the caller's resolution: small digits in large images keep their detail
        size = ((right - left) * factor, (bottom - top) * factor)
        region = grey[top * factor : bottom * factor, left * factor : right * factor].astype(np.float32)
        paper = m.level
        if not isinstance(paper, np.ndarray) and _enlarges_exactly(paper, factor):
            fine = strength(region, paper, m.dark_ink)[1]
        else:
            if not isinstance(paper, np.ndarray):  # the enlargement rounds this level: as an array, as it always was
                paper = np.full(small.shape, paper, np.float32)
            level = cv2.resize(paper[top:bottom, left:right], size, interpolation=cv2.INTER_LINEAR)
            fine = strength(region, level[: region.shape[0], : region.shape[1]], m.dark_ink)[1]
        allowed = cv2.resize(allowed, size, interpolation=cv2.INTER_NEAREST)[: region.shape[0], : region.shape[1]]
    fine = cv2.multiply(fine, allowed, dtype=cv2.CV_32F)
    # Anti-aliased levels are kept: paper below half the threshold is cut, the strongest tenth of the ink is 1.
    floor = 0.5 * m.threshold
    inked = fine[fine >= m.threshold]
    inked = inked[:: max(1, inked.size // 4096)]  # every k-th: a percentile needs no more than a few thousand
    tenth = inked.size * 9 // 10
    if inked.size:  # partitioned in place: `inked` is this function's own copy (np.partition would copy it again)
        inked.partition(tenth)
    full = max(float(inked[tenth]) if inked.size else float(fine.max()), m.threshold)
    scaled = cv2.addWeighted(fine, 1.0 / (full - floor), fine, 0.0, -floor / (full - floor))
    # Clipped to [0, 1] by thresholds, which are OpenCV's max and min with a scalar here, at a fraction of their
    # cost: `scaled` is finite, and never -0.0 (its offset is negative, and an exact zero sum rounds to +0.0).
    return cv2.threshold(cv2.threshold(scaled, 0.0, 0.0, cv2.THRESH_TOZERO)[1], 1.0, 0.0, cv2.THRESH_TRUNC)[1]


# -- MNIST's stroke, slant and frame -----------------------------------------------------------------------


def _stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels: area over half the perimeter of ink >= 0.5 (exact for long strokes)."""
    return stroke_width((ink >= 0.5).view(np.uint8))


def _thicken(crop: np.ndarray, width: float | None = None) -> np.ndarray:
    """Dilate strokes much thinner than MNIST's (a pen of one pixel on a large canvas); `width`: the crop's
    stroke width when already measured."""
    radius = int((STROKE * max(crop.shape) / BOX - (_stroke_width(crop) if width is None else width)) / 2)
    if radius <= 0:
        return crop
    padded = cv2.copyMakeBorder(crop, radius, radius, radius, radius, cv2.BORDER_CONSTANT, value=0)
    return _crop(cv2.dilate(padded, _disc(radius)))


def _within(mask: np.ndarray, radius: float) -> np.ndarray:
    """Pixels within `radius` of the mask's: a distance transform (OpenCV's 5x5 estimate of the Euclidean one,
    within a pixel of the disc at these radii: tests/test_ink_helpers.py) costs the same for any radius, where a
    dilation by a disc grows with its area."""
    return cv2.distanceTransform(1 - mask, cv2.DIST_L2, 5) <= radius


def _erode(crop: np.ndarray, steps: int, first: int = 0) -> np.ndarray:
    """Steps first .. first + steps - 1 of the thinning's grey erosion: a cross at even steps, a square at odd
    ones (together close to a disc), paper beyond the border. Erosions add up in any order: each kind in one call."""
    crosses = (first + steps + 1) // 2 - (first + 1) // 2
    for kernel, count in ((CROSS, crosses), (SQUARE, steps - crosses)):
        if count:
            crop = cv2.erode(crop, kernel, iterations=count, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return crop


def _thin(crop: np.ndarray) -> np.ndarray:
    """Erode strokes bolder than MNIST's (a marker) to THIN_TO, at 80-160 px where a pixel is fine."""
    factor = max(1, max(crop.shape) // (4 * BOX))
    if factor > 1:  # area average: a thick stroke loses nothing
        crop = _resize(crop, -(-crop.shape[1] // factor), -(-crop.shape[0] // factor))
    target, limit = THIN_TO * max(crop.shape) / BOX, max(crop.shape) // 4
    area = np.count_nonzero(crop >= 0.5)
    # The fewest one-pixel steps that bring the stroke to the target, never below a quarter of the ink (the
    # skeleton survives). Area / half-perimeter underestimates bold, short strokes, so the steps it suggests are a
    # start, and the width is measured step by step from there.
    steps = min(max(int((_stroke_width(crop) - target) / 2), 0), limit)
    thinned = _erode(crop, steps)
    while steps > 0 and np.count_nonzero(thinned >= 0.5) < area / 4:
        steps -= 1
        thinned = _erode(crop, steps)
    while steps > 0 and _stroke_width(fewer := _erode(crop, steps - 1)) <= target:
        steps, thinned = steps - 1, fewer
    while steps < limit and _stroke_width(thinned) > target:
        eroded = _erode(thinned, 1, first=steps)
        if np.count_nonzero(eroded >= 0.5) < area / 4:
            break
        steps, thinned = steps + 1, eroded
    # A part thinner than the others (a hairline joining two bold strokes) vanishes: keep it as it was.
    survived = _within((thinned >= 0.5).view(np.uint8), steps + 1)
    return _crop(np.where(survived | (crop < 0.5), thinned, crop))


def _deskew(crop: np.ndarray) -> np.ndarray:
    """Shear a slant beyond MNIST's range (|mu11 / mu02| > DESKEW_LIMIT) back to the limit."""
    m = _moments(crop)
    slant = m["mu11"] / max(m["mu02"], 1e-6 * m["m00"])
    if abs(slant) <= DESKEW_LIMIT:
        return crop
    excess = slant - math.copysign(DESKEW_LIMIT, slant)
    h, w = crop.shape
    pad = math.ceil(abs(excess) * h / 2) + 1
    cy = m["m01"] / m["m00"]
    shear = np.array([[1.0, -excess, pad + excess * cy], [0.0, 1.0, 0.0]])  # x -> x - excess * (y - cy) + pad
    return _crop(cv2.warpAffine(crop, shear, (w + 2 * pad, h), flags=cv2.INTER_LINEAR), 1e-3)


def _fit_box(crop: np.ndarray) -> np.ndarray:
    """The crop scaled (aspect ratio kept) so its long side is 20 pixels, peak 1."""
    h, w = crop.shape
    scale = BOX / max(h, w)
    resized = _resize(crop, max(1, round(w * scale)), max(1, round(h * scale)))
    peak = float(resized.max())
    return resized / peak if peak > 0 else resized


def _centre(box: np.ndarray) -> np.ndarray:
    """Place the box in 28x28 with its centre of mass at (14, 14), without pushing ink out of the frame."""
    h, w = box.shape
    m = _moments(box)
    top = min(max(round(SIDE / 2 - m["m01"] / m["m00"]), 0), SIDE - h)
    left = min(max(round(SIDE / 2 - m["m10"] / m["m00"]), 0), SIDE - w)
    frame = np.zeros((SIDE, SIDE), np.float32)
    frame[top : top + h, left : left + w] = box
    return frame


def to_frame(grey: np.ndarray) -> np.ndarray:
    """(H, W) finite grey levels in [0, 255] -> (28, 28) float32 in [0, 1], MNIST-style; raises Blank."""
    grey = grey if grey.dtype in (np.uint8, np.float32) else grey.astype(np.float32)
    ink = _mnist_like(grey)
    if ink is None and (native := _native_grid(grey)) is not grey:  # MNIST enlarged blocky is MNIST too
        grey, ink = native, _mnist_like(native)
    if ink is not None:  # MNIST itself comes back as it went in
        return _centre(ink)
    crop = _crop(_digit_ink(_margin(grey)))
    # No ink cannot happen for finite input; a 500 (a division by zero mass below) would be worse.
    if not cv2.countNonZero(crop):
        raise Blank("the image has no ink: it is blank or too faint to read a digit")
    long_side = max(crop.shape)
    width = _stroke_width(crop) if long_side > BOX else 0.0
    if long_side > BOX and (fill := fill_hollow(crop, width)) is not None:
        crop = np.maximum(crop, fill.astype(np.float32))  # an outline digit becomes the solid digit it outlines
        width = _stroke_width(crop)
    if long_side > BOX and width * BOX / long_side > STROKE_MAX:
        crop = _thin(crop)
    elif long_side > BOX:  # only a reduction can make thin strokes vanish
        if long_side > POOL_TARGET:
            crop, width = max_pool(crop, math.ceil(long_side / POOL_TARGET)), None
        crop = _thicken(crop, width)
    if DESKEW:
        crop = _deskew(crop)
    return _centre(_fit_box(crop))
