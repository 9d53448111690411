"""A grey image -> MNIST's frame: the digit as white ink on black, 20x20 box, centre of mass at (14, 14).

Numpy and Pillow only (the service never imports torch). The steps, in order:
paper under uneven light (`_background`), which side is ink (`_polarity`), what counts as ink (`_otsu`),
which ink is the digit (`_components`, `_select`), MNIST's stroke width (`_stroke_width`, `_thin`,
`_thicken`) and slant (`_deskew`), then the 20x20 box (`_fit_box`) centred by mass (`_centre`).
Analysis runs on a copy reduced to at most 256 px; the digit is rendered from the caller's <= 512 px grey.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image

from serving.regions import components, fill_hollow, paint

SIDE, BOX = 28, 20  # MNIST frame and the box the digit is scaled into
ANALYSIS_SIDE = 256  # background, threshold and components are found at this size: fast, and fine enough
GRID = 16  # the paper's brightness is estimated on a GRID x GRID lattice of blocks
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


class Blank(ValueError):
    """No ink: the image is blank, or too faint to read a digit."""


# -- MNIST as it is ------------------------------------------------------------------------------------


def _mnist_like(grey: np.ndarray) -> np.ndarray | None:
    """An image that is already an MNIST digit (small, white on a black ground, long side ~20) as ink, else None."""
    h, w = grey.shape
    if max(h, w) > SIDE + 8:
        return None
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    ground = _median(border)
    peak = float(grey.max())
    if ground > 8.0 or peak - ground < 4 * MIN_CONTRAST:  # MNIST's ground is 0 and its strokes reach 255
        return None
    ink = np.clip((grey - ground) / (peak - ground), 0.0, 1.0)
    rows, cols = np.nonzero(ink > 0)
    long_side = max(rows.max() - rows.min(), cols.max() - cols.min()) + 1
    if not BOX - 2 <= long_side <= BOX + 1:  # MNIST's is 20 (19 for 3 of its 10,000 test digits)
        return None
    return ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


# -- paper, polarity and threshold -----------------------------------------------------------------------


def _reduce(grey: np.ndarray, factor: int) -> np.ndarray:
    """Box-average by `factor` (Pillow, in C); partial blocks at the edges average what they hold."""
    if factor <= 1:
        return grey
    return np.asarray(Image.fromarray(grey.astype(np.float32, copy=False), "F").reduce(factor))


def _median(values: np.ndarray) -> float:
    """np.median of finite values without its overhead: the middle of a partition, or the mean of the two middles."""
    flat = values.ravel()
    half = flat.size // 2
    if flat.size % 2:
        return float(np.partition(flat, half)[half])
    part = np.partition(flat, (half - 1, half))
    return float((part[half - 1] + part[half]) / 2)  # in the input's dtype, as np.mean of the two does


def _percentile(values: np.ndarray, percent: float) -> float:
    """np.percentile(values, percent) of finite values (its default, linear method, bit for bit), minus overhead."""
    flat = values.ravel()
    n = flat.size
    position = (n - 1) * (percent / 100)  # where the percentile lies between the sorted values, as numpy finds it
    below = math.floor(position)
    if position >= n - 1:  # numpy then reads the last value twice, weighted by position + 1
        below, gamma = n - 1, position + 1
    else:
        gamma = position - below
    part = np.partition(flat, (below, min(below + 1, n - 1)))
    a, b = part[below], part[min(below + 1, n - 1)]
    step = float(b - a)  # in the input's dtype, then the interpolation in float64, as numpy's _lerp
    return float(b) - step * (1 - gamma) if gamma >= 0.5 else float(a) + step * gamma


def _blocks(grey: np.ndarray) -> tuple[np.ndarray, int]:
    """Pixels of each GRID x GRID lattice block (edges replicated), partitioned at the median, and the block side."""
    h, w = grey.shape
    side = max(1, math.ceil(max(h, w) / GRID))
    gh, gw = math.ceil(h / side), math.ceil(w / side)
    padded = grey
    if (gh * side, gw * side) != (h, w):  # np.pad(mode="edge"), without its overhead
        padded = np.empty((gh * side, gw * side), grey.dtype)
        padded[:h, :w] = grey
        padded[h:, :w] = grey[-1]
        padded[:, w:] = padded[:, w - 1 : w]
    blocks = padded.reshape(gh, side, gw, side).transpose(0, 2, 1, 3).reshape(gh, gw, side * side)
    # Only a few ranks are read (`_rank`): a partition puts exactly the values a full sort would at those places.
    return np.partition(blocks, side * side // 2, axis=2), side


def _rank(ranked: np.ndarray, r: int) -> np.ndarray:
    """Each block's r-th smallest pixel, from blocks partitioned at the median: the half that holds it, partitioned."""
    m = ranked.shape[2] // 2
    if r == m:
        return ranked[..., m]
    if r < m:
        return np.partition(ranked[..., :m], r, axis=2)[..., r]
    return np.partition(ranked[..., m + 1 :], r - m - 1, axis=2)[..., r - m - 1]


def _second_smallest(part: np.ndarray) -> np.ndarray:
    """The second smallest of each row (at least two values): the smallest again if it repeats, else the next."""
    low = part.min(axis=2, keepdims=True)
    ties = part == low
    return np.where(np.count_nonzero(ties, axis=2) >= 2, low[..., 0], np.where(ties, np.inf, part).min(axis=2))


def _second_extremes(ranked: np.ndarray) -> tuple[float, float]:
    """The lowest rank-1 and the highest rank n-2 pixel of all blocks (blocks partitioned at the median)."""
    n = ranked.shape[2]
    m = n // 2
    # Rank 1 lies in the lower half and rank n-2 in the upper one unless it is the median itself (n <= 4).
    darkest = _second_smallest(ranked[..., :m]) if 1 < m else ranked[..., min(1, n - 1)]
    lightest = -_second_smallest(-ranked[..., m + 1 :]) if n - 2 > m else ranked[..., max(n - 2, 0)]
    return float(darkest.min()), float(lightest.max())


def _polarity(ranked: np.ndarray) -> bool:
    """True for dark ink on light paper: the darkest pixels lie further from the typical (paper) level."""
    n = ranked.shape[2]
    typical = _median(ranked[..., n // 2])  # paper, unless ink covers half the image
    # The second extreme of each block: a single noisy pixel does not decide. Uneven light spreads the paper
    # about its median on both sides; ink adds a long tail on one side only. A vote of blocks would fail for
    # thick strokes (blocks mostly ink) and a median of the border for a dark paper edge along one side.
    darkest, lightest = _second_extremes(ranked)
    return typical - darkest > lightest - typical


@functools.lru_cache(maxsize=32)
def _design(gh: int, gw: int) -> np.ndarray:
    """The quadratic surface's design matrix over a gh x gw lattice of block centres in [-1, 1] (read-only)."""
    y, x = np.mgrid[0:gh, 0:gw]
    y, x = (2 * y + 1) / gh - 1.0, (2 * x + 1) / gw - 1.0
    design = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=-1).reshape(-1, 6)
    design.flags.writeable = False
    return design


def _background(paper: np.ndarray) -> np.ndarray:
    """Paper level per block, robust to blocks that ink covers: a quadratic surface fills those in."""
    gh, gw = paper.shape
    design = _design(gh, gw)
    z = paper.ravel().astype(np.float64)
    fit = np.full(z.shape, _median(z))  # a robust start: least squares on all blocks bends towards the ink
    keep = np.ones(z.shape, bool)
    for step in range(4):  # blocks darkened by ink (a thick marker) fall out; the surface follows the rest
        resid = z - fit
        scale = 1.4826 * _median(np.abs(resid[keep])) + 1.0
        # In ink-bright terms only the ink side is an outlier; a shadow darkens paper by less than SHADOW.
        kept = resid < np.maximum(2.5 * scale, SHADOW * (255.0 - fit))
        # The same blocks give the same surface (fit came from `keep`), so every later round would repeat this one.
        if step > 0 and np.array_equal(kept, keep):
            break
        keep = kept
        if keep.sum() < 6:
            break
        fit = design @ np.linalg.lstsq(design[keep], z[keep], rcond=None)[0]
    keep = z - fit < np.maximum(2.5 * scale, SHADOW * (255.0 - fit))
    # Where the block is paper, its own level follows a shadow better than any surface; elsewhere the surface.
    return np.where(keep, z, fit).reshape(gh, gw).astype(np.float32)


def _upsample(grid: np.ndarray, side: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """The block lattice bilinearly interpolated at the pixels of `box` (left, top, right, bottom)."""
    left, top, right, bottom = box
    region = tuple(v / side for v in box)
    return np.asarray(
        Image.fromarray(grid, "F").resize((right - left, bottom - top), Image.Resampling.BILINEAR, box=region)
    )


def _strength(grey: np.ndarray, ground: np.ndarray, dark_ink: bool) -> tuple[np.ndarray, np.ndarray]:
    """Ink strength (paper = 0) and contrast in grey levels, with `ground` in the ink-bright orientation."""
    bright = 255.0 - grey if dark_ink else grey
    contrast = bright - ground
    # Light falls on paper and ink alike: relative to the local paper (255 - ground) a stroke in the shade is
    # as strong as in full light. The floor keeps dark paper from amplifying its noise.
    return contrast / np.maximum(255.0 - ground, 64.0), contrast


def _otsu(values: np.ndarray, bins: int = 128) -> float:
    """Otsu's threshold of `values` in [0, max]: the split that maximises the between-class variance."""
    top = float(values.max())
    if top <= 0:
        return 0.0
    counts = np.bincount(np.minimum((values.ravel() * (bins / top)).astype(np.int64), bins - 1), minlength=bins)
    mass = counts * (np.arange(bins) + 0.5) * (top / bins)
    w0, m0 = np.cumsum(counts)[:-1].astype(np.float64), np.cumsum(mass)[:-1]  # the class below each split
    w1, m1 = counts.sum() - w0, mass.sum() - m0
    between = w0 * w1 * (m0 / np.maximum(w0, 1) - m1 / np.maximum(w1, 1)) ** 2
    return float((np.argmax(between) + 1) * (top / bins))


# -- the digit among the ink -------------------------------------------------------------------------------


def _select(mask: np.ndarray) -> np.ndarray:
    """The digit's ink: the main component and its near, not tiny neighbours; no specks, no paper edges."""
    h, w = mask.shape
    rows, starts, ends, label = components(mask)
    k = int(label.max()) + 1
    if k == 1:  # one component is the main one, with no neighbours: all of the mask
        return mask
    area = np.bincount(label, weights=ends - starts, minlength=k)
    # Every label 0..k-1 has runs: sorted by label, each component's runs are one segment to reduce.
    order = np.argsort(label, kind="stable")
    first = np.searchsorted(label[order], np.arange(k))
    top, bottom = np.minimum.reduceat(rows[order], first), np.maximum.reduceat(rows[order], first) + 1
    left, right = np.minimum.reduceat(starts[order], first), np.maximum.reduceat(ends[order], first)
    tall, wide = bottom - top, right - left
    # A paper edge or a shadow touches the border and runs along it, thin across; or it fills most of the image.
    along_rows = ((top == 0) | (bottom == h)) & (wide >= 0.4 * w) & (tall <= 0.2 * h)
    along_cols = ((left == 0) | (right == w)) & (tall >= 0.4 * h) & (wide <= 0.2 * w)
    touches = (top == 0) | (bottom == h) | (left == 0) | (right == w)
    huge = touches & (tall * wide >= 0.6 * h * w) & (area >= 0.3 * h * w)
    candidate = ~(along_rows | along_cols | huge)
    if not candidate.any():  # nothing but edges: better the edge than nothing (the old behaviour)
        candidate[:] = True
    main = int(np.argmax(np.where(candidate, area, -1)))
    keep = np.zeros(k, bool)
    keep[main] = True
    box = np.array([top[main], bottom[main], left[main], right[main]], np.float64)
    worthy = candidate & (area >= SPECK * area[main])
    for _ in range(3):  # a broken stroke is a chain: each added piece widens the box the next may touch
        margin = NEAR * max(box[1] - box[0], box[3] - box[2])
        near = (
            (top < box[1] + margin) & (bottom > box[0] - margin) & (left < box[3] + margin) & (right > box[2] - margin)
        )
        added = worthy & near & ~keep
        if not added.any():
            break
        keep |= added
        box = np.array([top[keep].min(), bottom[keep].max(), left[keep].min(), right[keep].max()], np.float64)
    chosen = keep[label]
    return paint(mask.shape, rows[chosen], starts[chosen], ends[chosen])


# -- the digit's crop at the rendering scale ---------------------------------------------------------------


def _max_pool(ink: np.ndarray, factor: int) -> np.ndarray:
    """Block maximum: shrinks by `factor` while a one-pixel stroke stays at full strength."""
    h, w = ink.shape
    padded = np.zeros((math.ceil(h / factor) * factor, math.ceil(w / factor) * factor), np.float32)
    padded[:h, :w] = ink
    return padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor).max(axis=(1, 3))


def _stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels: area over half the perimeter of ink >= 0.5 (exact for long strokes)."""
    mask = ink >= 0.5
    # The perimeter counts ink/paper changes along rows and columns, and ink on the border (paper beyond it).
    edges = (
        np.count_nonzero(mask[1:] != mask[:-1])
        + np.count_nonzero(mask[:, 1:] != mask[:, :-1])
        + np.count_nonzero(mask[0])
        + np.count_nonzero(mask[-1])
        + np.count_nonzero(mask[:, 0])
        + np.count_nonzero(mask[:, -1])
    )
    return 2.0 * np.count_nonzero(mask) / max(edges, 1)


def _pad(ink: np.ndarray, radius: int) -> np.ndarray:
    """np.pad(ink, radius) with zeros, without its overhead."""
    h, w = ink.shape
    padded = np.zeros((h + 2 * radius, w + 2 * radius), ink.dtype)
    padded[radius : radius + h, radius : radius + w] = ink
    return padded


def _shift_reduce(out: np.ndarray, source: np.ndarray, dy: int, dx: int, reduce: np.ufunc) -> None:
    """out[i, j] = reduce(out[i, j], source[i + dy, j + dx]) wherever (i + dy, j + dx) lies inside source."""
    h, w = source.shape
    view = out[max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
    reduce(view, source[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)], out=view)


def _disc_filter(ink: np.ndarray, radius: int, reduce: np.ufunc) -> np.ndarray:
    """Grey dilation (np.maximum: grows by `radius` on each side) or erosion (np.minimum) by a disc."""
    padded = _pad(ink, radius)
    # The disc is rows of horizontal segments: reduce along x once per half-width (segment k from k - 1),
    # then along y. Max and min are exact, so this equals reducing over every offset of the disc in turn.
    segments = [padded]
    for k in range(1, radius + 1):
        segment = segments[-1].copy()
        _shift_reduce(segment, padded, 0, -k, reduce)
        _shift_reduce(segment, padded, 0, k, reduce)
        segments.append(segment)
    out = padded.copy()
    for dy in range(-radius, radius + 1):
        _shift_reduce(out, segments[math.isqrt(radius * radius - dy * dy)], dy, 0, reduce)
    return out if reduce is np.maximum else out[radius:-radius, radius:-radius]


def _grow(mask: np.ndarray) -> np.ndarray:
    """A boolean mask grown by one pixel up, down, left and right (a disc of radius 1), at the same size."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def _bounds(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of a boolean mask's True pixels, bottom and right exclusive; None when none."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _crop(ink: np.ndarray, level: float = INK_LEVEL) -> np.ndarray:
    """The bounding box of ink >= level (the whole array when there is none)."""
    bounds = _bounds(ink >= level)
    if bounds is None:
        return ink
    return ink[bounds[0] : bounds[1], bounds[2] : bounds[3]]


def _thicken(crop: np.ndarray) -> np.ndarray:
    """Dilate strokes much thinner than MNIST's (a pen of one pixel on a large canvas)."""
    radius = int((STROKE * max(crop.shape) / BOX - _stroke_width(crop)) / 2)
    return _crop(_disc_filter(crop, radius, np.maximum)) if radius > 0 else crop


def _erode_once(ink: np.ndarray, step: int) -> np.ndarray:
    """Grey erosion by one pixel: a cross, then a square, in turn (together close to a disc)."""
    padded = _pad(ink, 1)
    out = np.minimum(np.minimum(padded[:-2, 1:-1], padded[2:, 1:-1]), np.minimum(padded[1:-1, :-2], padded[1:-1, 2:]))
    if step % 2:
        out = np.minimum(
            out, np.minimum(np.minimum(padded[:-2, :-2], padded[:-2, 2:]), np.minimum(padded[2:, :-2], padded[2:, 2:]))
        )
    return np.minimum(out, ink)


def _thin(crop: np.ndarray) -> np.ndarray:
    """Erode strokes bolder than MNIST's (a marker) to THIN_TO, at 80-160 px where a pixel is fine."""
    crop = _reduce(crop, max(1, max(crop.shape) // (4 * BOX)))  # box average: a thick stroke loses nothing
    target = THIN_TO * max(crop.shape) / BOX
    area = np.count_nonzero(crop >= 0.5)
    thinned = crop
    # One pixel a step, measuring as we go: area / half-perimeter underestimates bold, short strokes, so a
    # radius computed from it once falls short. Never below a quarter of the ink: the skeleton survives.
    for step in range(max(crop.shape) // 4):
        if _stroke_width(thinned) <= target:
            break
        eroded = _erode_once(thinned, step)
        if np.count_nonzero(eroded >= 0.5) < area / 4:
            break
        thinned = eroded
    # A part thinner than the others (a hairline joining two bold strokes) vanishes: keep it as it was.
    r = step + 1
    survived = _disc_filter((thinned >= 0.5).astype(np.float32), r, np.maximum)[r:-r, r:-r]
    return _crop(np.where((survived > 0) | (crop < 0.5), thinned, crop))


def _deskew(crop: np.ndarray) -> np.ndarray:
    """Shear a slant beyond MNIST's range (|mu11 / mu02| > DESKEW_LIMIT) back to the limit."""
    rows, cols = np.indices(crop.shape)
    mass = float(crop.sum())
    cy, cx = float((rows * crop).sum()) / mass, float((cols * crop).sum()) / mass
    mu02 = float(((rows - cy) ** 2 * crop).sum()) / mass
    slant = float(((rows - cy) * (cols - cx) * crop).sum()) / mass / max(mu02, 1e-6)
    excess = slant - math.copysign(DESKEW_LIMIT, slant)
    if abs(slant) <= DESKEW_LIMIT:
        return crop
    h, w = crop.shape
    pad = math.ceil(abs(excess) * h / 2) + 1
    # Pillow's affine maps each output pixel to its source: x_src = x + excess * (y - cy) - pad.
    sheared = Image.fromarray(crop.astype(np.float32), "F").transform(
        (w + 2 * pad, h),
        Image.Transform.AFFINE,
        (1.0, excess, -pad - excess * cy, 0.0, 1.0, 0.0),
        Image.Resampling.BILINEAR,
    )
    return _crop(np.asarray(sheared), 1e-3)


def _fit_box(crop: np.ndarray) -> np.ndarray:
    """The crop scaled (aspect ratio kept) so its long side is 20 pixels, peak 1."""
    h, w = crop.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # PIL wants (width, height)
    resized = np.asarray(Image.fromarray(crop.astype(np.float32), "F").resize(size, Image.Resampling.BILINEAR))
    resized = np.clip(resized, 0.0, None)
    peak = float(resized.max())
    return resized / peak if peak > 0 else resized


def _centre(box: np.ndarray) -> np.ndarray:
    """Place the box in 28x28 with its centre of mass at (14, 14), without pushing ink out of the frame."""
    h, w = box.shape
    rows, cols = np.indices(box.shape)
    mass = float(box.sum())
    cy, cx = float((rows * box).sum() / mass), float((cols * box).sum() / mass)
    top = int(np.clip(round(SIDE / 2 - cy), 0, SIDE - h))
    left = int(np.clip(round(SIDE / 2 - cx), 0, SIDE - w))
    frame = np.zeros((SIDE, SIDE), np.float32)
    frame[top : top + h, left : left + w] = box
    return frame


# -- all together ------------------------------------------------------------------------------------------


def _digit_box(grey: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The digit's ink strength (0 = paper, 1 = full stroke) and its box (left, top, right, bottom) in `grey`."""
    h, w = grey.shape
    factor = math.ceil(max(h, w) / ANALYSIS_SIDE)
    small = _reduce(grey, factor)
    ranked, side = _blocks(small)
    dark_ink = _polarity(ranked)
    n = ranked.shape[2]
    # The paper is the ink-bright image's lower quartile in each block: right unless ink covers 3/4 of it.
    paper = 255.0 - _rank(ranked, n - 1 - n // 4) if dark_ink else _rank(ranked, n // 4)
    grid = _background(paper)
    strength, contrast = _strength(small, _upsample(grid, side, (0, 0, small.shape[1], small.shape[0])), dark_ink)
    if float(contrast.max()) < MIN_CONTRAST:
        raise Blank("the image has no ink: it is blank or too faint to read a digit")
    strength = np.maximum(strength, 0.0)
    peak = float(strength.max())
    # Otsu splits ink from paper; the bounds keep it off the paper's noise and off a few very dark pixels.
    threshold = min(max(_otsu(strength), 0.2 * peak), 0.6 * peak)
    digit = _grow(_select(strength >= threshold))  # and a rim of one pixel
    top, bottom, left, right = _bounds(digit)  # never None: the strongest pixel is >= threshold
    box = (left * factor, top * factor, min(right * factor, w), min(bottom * factor, h))
    # At the caller's resolution: small digits in large images keep their detail.
    allowed = np.repeat(np.repeat(digit[top:bottom, left:right], factor, 0), factor, 1)
    region = grey[box[1] : box[3], box[0] : box[2]]
    fine = _strength(region, _upsample(grid, side * factor, box), dark_ink)[0]
    fine = np.where(allowed[: region.shape[0], : region.shape[1]], fine, 0.0)
    # Anti-aliased levels are kept: paper below half the threshold is cut, the strongest tenth of the ink is 1.
    floor = 0.5 * threshold
    inked = fine[fine >= threshold]
    full = max(_percentile(inked, 90) if inked.size else peak, threshold)
    return np.clip((fine - floor) / (full - floor), 0.0, 1.0).astype(np.float32), box


def to_frame(grey: np.ndarray) -> np.ndarray:
    """(H, W) finite grey levels in [0, 255] -> (28, 28) float32 in [0, 1], MNIST-style; raises Blank."""
    ink = _mnist_like(grey)
    if ink is not None:  # MNIST itself comes back as it went in
        return _centre(ink)
    crop = _crop(_digit_box(grey)[0])
    if not crop.any():  # cannot happen for finite input; a 500 (a division by zero mass below) would be worse
        raise Blank("the image has no ink: it is blank or too faint to read a digit")
    width = _stroke_width(crop) if max(crop.shape) > BOX else 0.0
    if max(crop.shape) > BOX and (fill := fill_hollow(crop, width)) is not None:
        crop = np.maximum(crop, fill.astype(np.float32))  # an outline digit becomes the solid digit it outlines
        width = _stroke_width(crop)
    if max(crop.shape) > BOX and width * BOX / max(crop.shape) > STROKE_MAX:
        crop = _thin(crop)
    elif max(crop.shape) > BOX:  # only a reduction can make thin strokes vanish
        if max(crop.shape) > POOL_TARGET:
            crop = _max_pool(crop, math.ceil(max(crop.shape) / POOL_TARGET))
        crop = _thicken(crop)
    if DESKEW:
        crop = _deskew(crop)
    return _centre(_fit_box(crop))
