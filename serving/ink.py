"""A grey image -> MNIST's frame: the digit as white ink on black, 20x20 box, centre of mass at (14, 14).

OpenCV does the pixel work (the service never imports torch). The steps, in order: paper under uneven light
(`_paper`), which side is ink (`_polarity`), what counts as ink (Otsu), which ink is the digit (`_select`),
MNIST's stroke width (`_thin`, `_thicken`) and slant (`_deskew`), then the 20x20 box centred by mass (`_centre`).
Analysis runs on a copy reduced to at most 256 px; the digit is rendered from the caller's <= 512 px grey.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from serving.regions import fill_hollow, max_pool

cv2.setNumThreads(1)  # images this small gain nothing from threads; the service scales by workers instead

SIDE, BOX = 28, 20  # MNIST frame and the box the digit is scaled into
ANALYSIS_SIDE = 256  # background, threshold and components are found at this size: fast, and fine enough
GRID = 16  # the paper's brightness is estimated on a GRID x GRID lattice of blocks ...
CELLS = 4  # ... each summarised by CELLS x CELLS area averages, whose ranks stand for the block's pixels
SHADOW = 0.35  # blocks up to this much darker than the fitted paper are paper in shade; darker ones are ink
MIN_CONTRAST = 24.0  # grey levels (of 255) between ink and paper below which an image is blank
INK_LEVEL = 0.2  # fraction of the ink's peak that counts as ink for a bounding box
SPECK = 0.03  # components under this fraction of the main one's area are specks
NEAR = 0.35  # components this close to the digit's box (fraction of its long side) belong to it
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
CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
SQUARE = np.ones((3, 3), np.uint8)


class Blank(ValueError):
    """No ink: the image is blank, or too faint to read a digit."""


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
    return ink if bounds is None else ink[bounds[0] : bounds[1], bounds[2] : bounds[3]]


# -- MNIST as it is ------------------------------------------------------------------------------------


def _mnist_like(grey: np.ndarray) -> np.ndarray | None:
    """An image that is already an MNIST digit (small, white on a black ground, long side ~20) as ink, else None."""
    h, w = grey.shape
    if max(h, w) > SIDE + 8:
        return None
    ground = _upper_median(np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]]))
    peak = float(grey.max())
    if ground > 8.0 or peak - ground < 4 * MIN_CONTRAST:  # MNIST's ground is 0 and its strokes reach 255
        return None
    ink = np.clip((grey - ground) / (peak - ground), 0.0, 1.0).astype(np.float32)
    top, bottom, left, right = _bounds(ink > 0)
    if not BOX - 2 <= max(bottom - top, right - left) <= BOX + 1:  # MNIST's is 20 (19 for 3 of its 10,000 tests)
        return None
    return ink[top:bottom, left:right]


# -- paper, polarity and threshold -----------------------------------------------------------------------


def _second_extremes(values: np.ndarray) -> tuple[float, float]:
    """The second smallest and second largest value: one noisy pixel does not decide."""
    flat = values.ravel()
    if flat.size < 3:
        return float(flat.min()), float(flat.max())
    lo, hi = int(flat.argmin()), int(flat.argmax())
    darkest = min(flat[:lo].min(initial=np.inf), flat[lo + 1 :].min(initial=np.inf))
    lightest = max(flat[:hi].max(initial=-np.inf), flat[hi + 1 :].max(initial=-np.inf))
    return float(darkest), float(lightest)


@functools.lru_cache(maxsize=32)
def _design(gh: int, gw: int) -> np.ndarray:
    """The quadratic surface's design matrix over a gh x gw lattice of block centres in [-1, 1] (read-only)."""
    y, x = np.mgrid[0:gh, 0:gw]
    y, x = (2 * y + 1) / gh - 1.0, (2 * x + 1) / gw - 1.0
    design = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=-1).reshape(-1, 6)
    design.flags.writeable = False
    return design


def _upper_median(values: np.ndarray) -> float:
    """The median (the upper one of an even count) by one partition: np.median's overhead is most of its cost here."""
    flat = values.ravel()
    return float(np.partition(flat, flat.size // 2)[flat.size // 2])


def _surface(paper: np.ndarray) -> np.ndarray:
    """Paper level per block, robust to blocks that ink covers: a quadratic surface fills those in."""
    z = paper.ravel().astype(np.float64)
    level = _upper_median(z)
    fit = np.full(z.shape, level)  # a robust start: least squares on all blocks bends towards the ink
    scale = 1.0
    # Most blocks at one level: flat paper (a drawing, a canvas), which that level fits best.
    if np.count_nonzero(np.abs(z - level) <= 1.0) <= z.size // 2:
        design, keep = _design(*paper.shape), np.ones(z.shape, bool)
        for step in range(4):  # blocks darkened by ink (a thick marker) fall out; the surface follows the rest
            resid = z - fit
            scale = 1.4826 * _upper_median(np.abs(resid[keep])) + 1.0
            # In ink-bright terms only the ink side is an outlier; a shadow darkens paper by less than SHADOW.
            kept = resid < np.maximum(2.5 * scale, SHADOW * (255.0 - fit))
            if (step > 0 and np.array_equal(kept, keep)) or kept.sum() < 6:  # the same blocks, the same surface
                break
            keep = kept
            a = design[keep]
            fit = design @ np.linalg.solve(a.T @ a + 1e-9 * np.eye(6), a.T @ z[keep])
    keep = z - fit < np.maximum(2.5 * scale, SHADOW * (255.0 - fit))
    # Where the block is paper, its own level follows a shadow better than any surface; elsewhere the surface.
    return np.where(keep, z, fit).reshape(paper.shape).astype(np.float32)


def _lattice(small: np.ndarray) -> tuple[np.ndarray, int]:
    """(gh, gw, CELLS**2): each block of a GRID-a-side lattice as area averages of its cells, sorted; and the
    blocks' side in pixels."""
    h, w = small.shape
    cell = max(1, math.ceil(max(h, w) / GRID) // CELLS)  # pixels a cell: a whole number keeps OpenCV's fast path
    gh, gw = -(-h // (cell * CELLS)), -(-w // (cell * CELLS))
    padded = (
        cv2.copyMakeBorder(small, 0, gh * cell * CELLS - h, 0, gw * cell * CELLS - w, cv2.BORDER_REPLICATE)
        if (h, w) != (gh * cell * CELLS, gw * cell * CELLS)
        else small
    )
    cells = _resize(padded, gw * CELLS, gh * CELLS) if cell > 1 else padded
    return np.sort(cells.reshape(gh, CELLS, gw, CELLS).transpose(0, 2, 1, 3).reshape(gh, gw, -1), axis=2), cell * CELLS


def _paper(small: np.ndarray) -> tuple[bool, np.ndarray]:
    """Which side is ink (True: dark ink on light paper), and the paper's grey level at every pixel of `small`."""
    blocks, side = _lattice(small)
    gh, gw, n = blocks.shape
    typical = _upper_median(blocks[..., n // 2])  # paper, unless ink covers half the image
    # Uneven light spreads the paper about its median on both sides; ink adds a long tail on one side only.
    darkest, lightest = _second_extremes(small)
    dark_ink = typical - darkest > lightest - typical
    # The paper is the ink-bright image's lower quartile in each block: right unless ink covers 3/4 of it.
    ground = _surface(255.0 - blocks[..., n - 1 - n // 4] if dark_ink else blocks[..., n // 4])  # ink-bright
    level = cv2.resize(255.0 - ground if dark_ink else ground, (gw * side, gh * side), interpolation=cv2.INTER_LINEAR)
    return dark_ink, level[: small.shape[0], : small.shape[1]]


def _strength(grey: np.ndarray, level: np.ndarray, dark_ink: bool) -> tuple[np.ndarray, np.ndarray]:
    """Contrast (grey levels from the paper towards the ink) and ink strength: 0 on paper, 1 for ink a whole
    headroom (paper to black, or to white) away from it, negative for paper beyond its level."""
    contrast = cv2.subtract(level, grey) if dark_ink else cv2.subtract(grey, level)
    # Light falls on paper and ink alike: relative to the local paper's headroom a stroke in the shade is as
    # strong as in full light. The floor keeps dark paper from amplifying its noise.
    headroom = cv2.max(level if dark_ink else 255.0 - level, 64.0)
    return contrast, cv2.divide(contrast, headroom)


def _otsu(strength: np.ndarray, peak: float) -> tuple[float, np.ndarray]:
    """Otsu's threshold of a non-negative strength map, kept off the paper's noise and off a few very dark
    pixels, and the mask of the ink it keeps."""
    levels = cv2.convertScaleAbs(strength, alpha=255.0 / peak)
    level, mask = cv2.threshold(levels, 0, 1, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    if not 51 <= level <= 152:  # the mask (levels above `level`) starts between 0.2 and 0.6 of the peak
        level = min(max(level, 51), 152)
        mask = cv2.threshold(levels, level, 1, cv2.THRESH_BINARY)[1]
    return (level + 0.5) / 255.0 * peak, mask


# -- the digit among the ink -------------------------------------------------------------------------------


def _select(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The digit's ink: the main component and its near, not tiny neighbours; no specks, no paper edges.

    Returns the component labels, their stats and which labels are kept (label 0, the paper, never)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    keep = np.zeros(count, bool)
    if count == 2:  # one component is the main one, with no neighbours
        keep[1] = True
        return labels, stats, keep
    h, w = mask.shape
    left, top, wide, tall, area = (stats[1:, i] for i in range(5))
    right, bottom = left + wide, top + tall
    # A paper edge or a shadow touches the border and runs along it, thin across; or it fills most of the image.
    along_rows = ((top == 0) | (bottom == h)) & (wide >= 0.4 * w) & (tall <= 0.2 * h)
    along_cols = ((left == 0) | (right == w)) & (tall >= 0.4 * h) & (wide <= 0.2 * w)
    touches = (top == 0) | (bottom == h) | (left == 0) | (right == w)
    huge = touches & (tall * wide >= 0.6 * h * w) & (area >= 0.3 * h * w)
    candidate = ~(along_rows | along_cols | huge)
    if not candidate.any():  # nothing but edges: better the edge than nothing
        candidate[:] = True
    main = int(np.argmax(np.where(candidate, area, -1)))
    chosen = np.zeros(count - 1, bool)
    chosen[main] = True
    box = np.array([top[main], bottom[main], left[main], right[main]], np.float64)
    worthy = candidate & (area >= SPECK * area[main])
    for _ in range(3):  # a broken stroke is a chain: each added piece widens the box the next may touch
        margin = NEAR * max(box[1] - box[0], box[3] - box[2])
        near = (
            (top < box[1] + margin) & (bottom > box[0] - margin) & (left < box[3] + margin) & (right > box[2] - margin)
        )
        added = worthy & near & ~chosen
        if not added.any():
            break
        chosen |= added
        box = np.array([top[chosen].min(), bottom[chosen].max(), left[chosen].min(), right[chosen].max()], np.float64)
    keep[1:] = chosen
    return labels, stats, keep


def _digit_ink(grey: np.ndarray) -> np.ndarray:
    """The digit's ink strength (0 = paper, 1 = full stroke) in its box of `grey`, at `grey`'s resolution."""
    h, w = grey.shape
    factor = math.ceil(max(h, w) / ANALYSIS_SIDE)
    small = (_resize(grey, -(-w // factor), -(-h // factor)) if factor > 1 else grey).astype(np.float32, copy=False)
    dark_ink, level = _paper(small)
    contrast, strength = _strength(small, level, dark_ink)
    if float(contrast.max()) < MIN_CONTRAST:
        raise Blank("the image has no ink: it is blank or too faint to read a digit")
    strength = cv2.threshold(strength, 0, 0, cv2.THRESH_TOZERO)[1]
    peak = float(strength.max())
    threshold, mask = _otsu(strength, peak)
    labels, stats, keep = _select(mask)
    sh, sw = small.shape
    # The chosen components' box, and a rim of one pixel around their ink.
    kept = stats[keep].tolist()  # [left, top, width, height, area] each: a few, faster in plain Python
    top, left = max(min(k[1] for k in kept) - 1, 0), max(min(k[0] for k in kept) - 1, 0)
    bottom, right = min(max(k[1] + k[3] for k in kept) + 1, sh), min(max(k[0] + k[2] for k in kept) + 1, sw)
    allowed = cv2.dilate(keep[labels[top:bottom, left:right]].view(np.uint8), CROSS)
    if factor == 1:
        fine = strength[top:bottom, left:right]
    else:  # at the caller's resolution: small digits in large images keep their detail
        sy, sx = h / sh, w / sw
        y0, y1, x0, x1 = int(top * sy), min(math.ceil(bottom * sy), h), int(left * sx), min(math.ceil(right * sx), w)
        size = (x1 - x0, y1 - y0)
        fine = _strength(
            grey[y0:y1, x0:x1].astype(np.float32), _resize(level[top:bottom, left:right], *size), dark_ink
        )[1]
        allowed = cv2.resize(allowed, size, interpolation=cv2.INTER_NEAREST)
    fine = cv2.multiply(fine, allowed, dtype=cv2.CV_32F)
    # Anti-aliased levels are kept: paper below half the threshold is cut, the strongest tenth of the ink is 1.
    floor = 0.5 * threshold
    inked = fine[fine >= threshold]
    inked = inked[:: max(1, inked.size // 4096)]  # every k-th: a percentile needs no more than a few thousand
    tenth = inked.size * 9 // 10
    full = max(float(np.partition(inked, tenth)[tenth]) if inked.size else peak, threshold)
    scaled = cv2.addWeighted(fine, 1.0 / (full - floor), fine, 0.0, -floor / (full - floor))
    return cv2.min(cv2.max(scaled, 0.0), 1.0)


# -- MNIST's stroke, slant and frame -----------------------------------------------------------------------


def _stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels: area over half the perimeter of ink >= 0.5 (exact for long strokes)."""
    mask = cv2.copyMakeBorder((ink >= 0.5).view(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    # The perimeter counts ink/paper changes along rows and columns; paper lies beyond the border.
    edges = cv2.countNonZero(mask[1:] ^ mask[:-1]) + cv2.countNonZero(mask[:, 1:] ^ mask[:, :-1])
    return 2.0 * cv2.countNonZero(mask) / max(edges, 1)


def _thicken(crop: np.ndarray) -> np.ndarray:
    """Dilate strokes much thinner than MNIST's (a pen of one pixel on a large canvas)."""
    radius = int((STROKE * max(crop.shape) / BOX - _stroke_width(crop)) / 2)
    if radius <= 0:
        return crop
    padded = cv2.copyMakeBorder(crop, radius, radius, radius, radius, cv2.BORDER_CONSTANT, value=0)
    return _crop(cv2.dilate(padded, _disc(radius)))


def _thin(crop: np.ndarray) -> np.ndarray:
    """Erode strokes bolder than MNIST's (a marker) to THIN_TO, at 80-160 px where a pixel is fine."""
    factor = max(1, max(crop.shape) // (4 * BOX))
    if factor > 1:  # area average: a thick stroke loses nothing
        crop = _resize(crop, -(-crop.shape[1] // factor), -(-crop.shape[0] // factor))
    target = THIN_TO * max(crop.shape) / BOX
    area = np.count_nonzero(crop >= 0.5)
    thinned = crop
    # One pixel a step, measuring as we go: area / half-perimeter underestimates bold, short strokes, so a
    # radius computed from it once falls short. Never below a quarter of the ink: the skeleton survives.
    # A cross and a square in turn erode close to a disc; paper lies beyond the border.
    for step in range(max(crop.shape) // 4):
        if _stroke_width(thinned) <= target:
            break
        eroded = cv2.erode(thinned, SQUARE if step % 2 else CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        if np.count_nonzero(eroded >= 0.5) < area / 4:
            break
        thinned = eroded
    # A part thinner than the others (a hairline joining two bold strokes) vanishes: keep it as it was.
    # Within step + 1 of the thinned ink: a distance (exact, Euclidean) costs the same for any radius.
    survived = cv2.distanceTransform((thinned < 0.5).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE) <= step + 1
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
    if ink is not None:  # MNIST itself comes back as it went in
        return _centre(ink)
    crop = _crop(_digit_ink(grey))
    if not crop.any():  # cannot happen for finite input; a 500 (a division by zero mass below) would be worse
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
            crop = max_pool(crop, math.ceil(long_side / POOL_TARGET))
        crop = _thicken(crop)
    if DESKEW:
        crop = _deskew(crop)
    return _centre(_fit_box(crop))
