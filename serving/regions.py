"""Regions of a glyph, with OpenCV: which connected ink is the digit, block maxima that keep thin strokes, and
hollow glyphs filled.

The digit is kept whole (issue 20): the main piece, the worthy pieces near it (a broken stroke is a chain),
any piece as weighty as a quarter of the main one (the other side of a 0 whose top and bottom the light took,
the stem of a 4 written apart), and the crumbs inside its box (the dot-like ends of a light 0); never specks
outside it, paper edges or a shadow's line from border to border.

Outline ("hollow", bubble) digits are drawn as two thin rims around a stroke that is not inked: a model
trained on MNIST reads the rims, not the digit (an outlined 1 looks like a 0). `fill_hollow` fills the
holes that are bands, as wide as a stroke and much wider than the rims around them, long and thin or bent far
from convex, and leaves the round counters of 0, 4, 6, 8 and 9 open.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Stop 42 tried the four bars below at (0.6, 11, 4, 0.95), chosen on MNIST validation digits drawn as bubble outlines
# and photographed: the CNN read 80.5% -> 95.0% of them (93.8% of fresh seeds); on dev the CNN's answers stayed put,
# AlexNet, ViT and VGG16 gained 3-4, Faster R-CNN 3 for 1 lost (a `lowres` digit); solid photos and 600 faint ones
# stayed put, of 1,500 faint ones the CNN's too, the other models lost 1-2 each (reports/hollow/fill/). The sealed
# split, read once, fell for every model (`outline` 1.5-3 points, `hollow_photo` 1-2.5, three solid digits lost and one
# gained: reports/robustness/fill-bars-757fca0/): not taken. Unexamined (the sealed images are not looked at); at 0.95
# the bars filled 7 of dev's solid counters (reports/hollow/fill/holes.md). A pool of typeset outlines drawn afterwards
# (shadowed_digits --style font: reports/hollow/fill/font/) shows the trial losing 2-6 answers of every model but the
# CNN: weigh a change to these bars on it as well as on the bubble, solid and faint pools.
#
# A band hole is at most this wide, as a fraction of the glyph's long side (bold fonts reached 0.34 by city-block
# distance, which measures no band narrower than Euclidean distance does).
HOLLOW_BAND = 0.42
# Area / half-width^2 of a band: a disc has ~3. On dev (reports/hollow/holes.md) the solid digits' counters measured at
# most 12.2 (a 0's) and 10.4 next; of the outlined digits' 602 holes (their bands, and counters that must stay open),
# 389 reach 14.
HOLLOW_ELONGATION = 14.0
HOLLOW_RIM = 2.0  # a band is at least this many times as wide as the rims around it
# A hole short of the elongation bar is a band still when it is bent far from convex: its pixels under this share of
# its convex hull's area. A fat bubble digit's band (a 2, 3, 5 or 7 round a bend, a 9's loop with its tail) is as
# short as a counter, but a digit's counters are near-convex: on dev the solid digits' counters held 0.897 of their
# hull or more (reports/hollow/holes.md). Chosen (0.75, 0.8, 0.85 tried) on MNIST validation digits drawn as bubble
# outlines and photographed (benchmarks.shadowed_digits --style hollow, seed 7), with a margin below dev's counters;
# checked on MNIST validation digits reduced to UCI's grid (benchmarks.real_digits --digits mnist-val) and the
# shadowed set. 0: off.
HOLLOW_SOLIDITY = 0.8
ANALYSIS = 128  # holes are measured on a mask at most this large
SPECK = 0.03  # components under this fraction of the main one's area are specks
NEAR = 0.35  # components this close to the digit's box (fraction of its long side) belong to it
# Pieces of at least SIGNIFICANT of the main piece's area join it when its box is under GUARD of their joint
# box's area, and that box is at most GUARD_SPAN times the long side of those chosen (not a line across the page).
SIGNIFICANT, GUARD, GUARD_SPAN = 0.25, 0.5, 2.0
THIN = 0.1  # a line from border to border at most this thick (of the image's side) is a shadow's, not a stroke
CRUMB = 0.005  # pieces inside the digit's box of at least this fraction of the main one's area stay
# SIGNIFICANT to CRUMB: tuned on the real-world development split (reports/preprocess/accuracy.md).
# A straight line is paper (a fold, a crease, a ruled line, a table's edge) when it runs through the image: its ink
# covers at least LINE_CHORD of the line's chord through the image, and that chord is at least LINE_MIN of the
# image's longer side. A digit's stroke stops at the digit.
LINE_CHORD, LINE_MIN, LINE_WIDTH, LINE_REACH = 0.75, 0.5, 0.1, 0.1
# Lines are searched for on the mask's rim (LINE_EDGES; False: on all of it, the ablation's "full mask"): a fold's
# few pixels are nearly all rim, a bold stroke's many mostly inside it, and the search's cost goes with the points.
LINE_EDGES = True
# Lines are looked for first on the rim max-pooled to at most about LINE_GRID pixels a side, where a line through
# the image passes bars LINE_SLACK times as low; then only along those at full resolution.
LINE_GRID, LINE_SLACK = 128, 0.8
RIM = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))


@dataclass(frozen=True)
class Pieces:
    """Connected components' boxes (bottom and right exclusive) and areas, label 1 first."""

    top: np.ndarray
    bottom: np.ndarray
    left: np.ndarray
    right: np.ndarray
    area: np.ndarray

    @classmethod
    def of(cls, stats: np.ndarray) -> Pieces:
        left, top, wide, tall, area = (stats[1:, i] for i in range(5))
        return cls(top, top + tall, left, left + wide, area)

    def box(self, chosen: np.ndarray) -> tuple[float, float, float, float]:
        """(top, bottom, left, right) of the chosen pieces together."""
        return self.top[chosen].min(), self.bottom[chosen].max(), self.left[chosen].min(), self.right[chosen].max()

    def chain(self, chosen: np.ndarray, worthy: np.ndarray) -> np.ndarray:
        """The chosen pieces and the worthy ones near them, each added piece widening the box the next may touch."""
        chosen = chosen.copy()
        for _ in range(3):
            top, bottom, left, right = self.box(chosen)
            margin = NEAR * max(bottom - top, right - left)
            near = (self.top < bottom + margin) & (self.bottom > top - margin)
            near &= (self.left < right + margin) & (self.right > left - margin)
            added = worthy & near & ~chosen
            if not added.any():
                break
            chosen |= added
        return chosen


def _paper_edges(p: Pieces, h: int, w: int) -> np.ndarray:
    """Pieces that are paper, not ink: an edge or a shadow along the border, thin across; a line from border
    to border; or most of the image."""
    # Each side's contact and each extent once: numpy's per-call overhead is most of the cost on a few dozen pieces.
    top, bottom, left, right = p.top == 0, p.bottom == h, p.left == 0, p.right == w
    tall, wide = p.bottom - p.top, p.right - p.left
    along_rows = (top | bottom) & (wide >= 0.4 * w) & (tall <= 0.2 * h)
    along_cols = (left | right) & (tall >= 0.4 * h) & (wide <= 0.2 * w)
    across = (top & bottom & (wide <= THIN * w)) | (left & right & (tall <= THIN * h))
    huge = (top | bottom | left | right) & (tall * wide >= 0.6 * h * w) & (p.area >= 0.3 * h * w)
    return along_rows | along_cols | across | huge


def _chord(x1: float, y1: float, x2: float, y2: float, h: int, w: int) -> tuple[float, tuple[int, int, int, int]]:
    """The length of the line through two points within the w x h image, and the chord's end points."""
    dx, dy = x2 - x1, y2 - y1
    ts = []
    for t in (
        (-x1 / dx, (w - 1 - x1) / dx) if dx else (),
        (-y1 / dy, (h - 1 - y1) / dy) if dy else (),
    ):
        ts.extend(t)
    inside = sorted(t for t in ts if -1e-6 <= x1 + t * dx <= w - 1 + 1e-6 and -1e-6 <= y1 + t * dy <= h - 1 + 1e-6)
    if len(inside) < 2:
        return 0.0, (0, 0, 0, 0)
    a, b = inside[0], inside[-1]
    ends = (round(x1 + a * dx), round(y1 + a * dy), round(x1 + b * dx), round(y1 + b * dy))
    return math.hypot((b - a) * dx, (b - a) * dy), ends


def _median(values: np.ndarray) -> float:
    """np.median of a 1-D array (the mean of the middle two for an even count) by one partition, without its
    overhead, which was most of its cost here."""
    k = values.size // 2
    if values.size % 2:
        return float(np.partition(values, k)[k])
    lower, upper = np.partition(values, [k - 1, k])[k - 1 : k + 1]
    return (float(lower) + float(upper)) / 2


def _bands(mask: np.ndarray, segments: np.ndarray, widest: float, samples: int = 32) -> list[tuple[float, float]]:
    """For each segment (rows of x1, y1, x2, y2): the median width of the mask's ink across it, and the median offset
    of its middle from the segment (along the normal (-dy, dx)), counted on SAMPLES perpendiculars up to LINE_REACH of
    the image's side each way: where a digit's stroke crosses the line, the medians do not move. The offset only for a
    band up to `widest`. All segments are sampled in one array: a fold's edge comes as several segments, and numpy's
    per-call overhead was most of the cost of sampling them one at a time."""
    h, w = mask.shape
    reach = max(2, round(LINE_REACH * max(h, w)))
    x1, y1, x2, y2 = (segments[:, i, None, None].astype(np.float64) for i in range(4))
    length = np.maximum(np.hypot(x2 - x1, y2 - y1), 1e-6)
    nx, ny = -(y2 - y1) / length, (x2 - x1) / length
    t = np.linspace(0.0, 1.0, samples)[:, None]
    s = np.arange(-reach, reach + 1)[None, :]
    xs = np.clip(np.rint(x1 + t * (x2 - x1) + s * nx), 0, w - 1).astype(np.intp)
    ys = np.clip(np.rint(y1 + t * (y2 - y1) + s * ny), 0, h - 1).astype(np.intp)
    ink = mask[ys, xs] > 0  # (segments, samples, 2 * reach + 1)
    counts = np.count_nonzero(ink, axis=2)
    widths = np.median(counts, axis=1)
    found = []
    for across, along, count in zip(widths.tolist(), ink, counts, strict=True):
        if across > widest:
            found.append((across, 0.0))
            continue
        inked = count > 0
        middles = (along * s).sum(axis=1)[inked] / count[inked]
        found.append((across, _median(middles) if middles.size else 0.0))
    return found


def _hough(points: np.ndarray, side: float) -> np.ndarray | None:
    """Straight segments through a mask's points, as long as a line through the image (`side`: its longer side)."""
    return cv2.HoughLinesP(
        points, 1, math.pi / 180, threshold=int(0.2 * side), minLineLength=0.3 * side, maxLineGap=0.08 * side
    )


def _through(
    found: np.ndarray, h: int, w: int
) -> list[tuple[tuple[int, int, int, int], float, tuple[int, int, int, int]]]:
    """The segments (HoughLinesP's (n, 1, 4)) whose line runs through the h x w image, each with its length and its
    chord's ends."""
    through = []
    for x1, y1, x2, y2 in found[:, 0].tolist():
        chord, ends = _chord(x1, y1, x2, y2, h, w)
        length = math.hypot(x2 - x1, y2 - y1)
        if chord >= LINE_MIN * max(h, w) and length >= LINE_CHORD * chord:
            through.append(((x1, y1, x2, y2), length, ends))
    return through


def _coarse_lines(found: np.ndarray, h: int, w: int, near: int) -> list[tuple[int, int, int, int]]:
    """The chords (end points) of the lines through the h x w image that a coarse search's segments cover, with bars
    LINE_SLACK times as low. Segments whose chords end within `near` pixels of each other are pieces of one line,
    and their union along it counts: HoughLinesP breaks a pooled line lying a little off its angle bins into
    overlapping pieces (a 45-degree fold on a 700 px page came out as three, each under 0.6 of its chord)."""
    groups: list[tuple[tuple[int, int, int, int], float, list[tuple[float, float]]]] = []
    for x1, y1, x2, y2 in found[:, 0].tolist():
        chord, ends = _chord(x1, y1, x2, y2, h, w)
        if chord < LINE_SLACK * LINE_MIN * max(h, w):
            continue
        group = next((g for g in groups if _same_chord(g[0], ends, near)), None)
        if group is None:
            group = (ends, chord, [])
            groups.append(group)
        (ax, ay, bx, by), length, spans = group  # the group's first chord: the line the pieces are measured along
        ux, uy = (bx - ax) / max(length, 1.0), (by - ay) / max(length, 1.0)
        a, b = (x1 - ax) * ux + (y1 - ay) * uy, (x2 - ax) * ux + (y2 - ay) * uy
        spans.append((min(a, b), max(a, b)))
    lines = []
    for ends, chord, spans in groups:
        covered, reach = 0.0, -math.inf
        for a, b in sorted(spans):
            covered += max(0.0, b - max(a, reach))
            reach = max(reach, b)
        if covered >= LINE_SLACK * LINE_CHORD * chord:
            lines.append(ends)
    return lines


def _same_chord(one: tuple[int, int, int, int], other: tuple[int, int, int, int], near: int) -> bool:
    """Whether two chords end within `near` pixels of each other, in either direction."""
    # Plain arithmetic on the eight numbers: generators over them cost most of the coarse search's Python.
    (ax, ay, bx, by), (cx, cy, dx, dy) = one, other
    same = max(abs(ax - cx), abs(ay - cy), abs(bx - dx), abs(by - dy)) <= near
    return same or max(abs(ax - dx), abs(ay - dy), abs(bx - cx), abs(by - cy)) <= near


def paper_lines(weak: np.ndarray, width: float) -> tuple[np.ndarray, int] | None:
    """A uint8 mask of the straight lines that run through the image (folds, creases, ruled lines, shadows'
    edges), each drawn at least `width` wide, and the widest one's width; None when there are none."""
    h, w = weak.shape
    side = max(h, w)
    points = cv2.subtract(weak, cv2.erode(weak, RIM)) if LINE_EDGES else weak
    # The search's cost goes with its points: lines, which run through the image, are looked for on a coarser grid
    # first, and only the points along what it finds are searched at full resolution (a coarse line's angle is off
    # by up to a coarse pixel at its ends, too much for a thin band's edge).
    pool = -(-side // LINE_GRID)
    if pool > 1:
        coarse = _hough(max_pool(points, pool), side / pool)
        candidates = _coarse_lines(coarse * pool + (pool - 1) // 2, h, w, 4 * pool) if coarse is not None else []
        if not candidates:
            return None
        near = np.zeros_like(points)
        for ends in candidates:
            cv2.line(near, ends[:2], ends[2:], 1, 4 * pool + 1)
        points = cv2.bitwise_and(points, near)
    found = _hough(points, side)
    through = _through(found, h, w) if found is not None else []
    if not through:
        return None
    lines, widest = np.zeros_like(weak), 0
    bands = _bands(weak, np.array([segment for segment, *_ in through]), LINE_WIDTH * side)
    for ((x1, y1, x2, y2), length, ends), (across, middle) in zip(through, bands, strict=True):
        if across <= LINE_WIDTH * side:  # a fold or a shadow's edge is a band; a digit's stroke is no longer than it
            widest = max(widest, thick := max(1, round(max(width, across + 2))))
            # Found along one rim of the band, the line is drawn along its middle.
            dx, dy = round(-(y2 - y1) / length * middle), round((x2 - x1) / length * middle)
            cv2.line(lines, (ends[0] + dx, ends[1] + dy), (ends[2] + dx, ends[3] + dy), 1, thick)
    return (lines, widest) if widest else None


def select_digit(weak: np.ndarray, ink: np.ndarray, pieces: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The digit among the components of `weak` (0/1 uint8 masks; `ink` within it: a piece must hold some ink);
    `pieces`: their count and the paper's, where already counted (`serving.paper.InkMap.pieces`; 0: not). For one
    piece the labels are `weak` itself: callers read them, never write.

    Returns the labels, their stats and which labels are the digit's (label 0, the paper, never)."""
    stats = None
    if pieces > 2:  # several, known: labelled once, with their statistics
        count, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(weak, 8, cv2.CV_32S, cv2.CCL_BBDT)
    elif pieces == 2:  # one, known: the 0/1 mask is its own labels
        count, labels = 2, weak
    else:
        count, labels = cv2.connectedComponentsWithAlgorithm(weak, 8, cv2.CV_32S, cv2.CCL_BBDT)
    keep = np.zeros(count, bool)
    if count == 2:  # one piece: the digit, its box without the cost of OpenCV's statistics pass
        keep[1] = True
        x, y, w, h = cv2.boundingRect(weak)
        return labels, np.array([[0, 0, 0, 0, 0], [x, y, w, h, cv2.countNonZero(weak)]]), keep
    if stats is None:
        stats = cv2.connectedComponentsWithStatsWithAlgorithm(weak, 8, cv2.CV_32S, cv2.CCL_BBDT)[2]
    p = Pieces.of(stats)
    inked = np.bincount(labels[ink > 0], minlength=count)[1:] > 0  # weak ink alone is noise, never a piece
    candidate = inked & ~_paper_edges(p, *weak.shape)
    if not candidate.any():  # nothing but edges: better the edge than nothing
        candidate = inked if inked.any() else np.ones(count - 1, bool)
    main = int(np.argmax(np.where(candidate, p.area, -1)))
    chosen = np.zeros(count - 1, bool)
    chosen[main] = True
    worthy = candidate & (p.area >= SPECK * p.area[main])
    chosen = p.chain(chosen, worthy)
    # A fragment is never the digit: weighty ink outside the chosen box joins it, and what lies near that.
    significant = candidate & (p.area >= SIGNIFICANT * p.area[main])
    top, bottom, left, right = p.box(chosen)
    u_top, u_bottom, u_left, u_right = p.box(chosen | significant)
    small = (bottom - top) * (right - left) < GUARD * (u_bottom - u_top) * (u_right - u_left)
    if small and max(u_bottom - u_top, u_right - u_left) <= GUARD_SPAN * max(bottom - top, right - left):
        chosen = p.chain(chosen | significant, worthy)
        top, bottom, left, right = p.box(chosen)
    # Crumbs inside the digit's box cannot shrink it: they stay; specks outside it do not.
    inside = (p.top >= top) & (p.bottom <= bottom) & (p.left >= left) & (p.right <= right)
    keep[1:] = chosen | (candidate & inside & (p.area >= CRUMB * p.area[main]))
    return labels, stats, keep


def max_pool(image: np.ndarray, factor: int) -> np.ndarray:
    """Block maximum: shrinks by `factor` (partial blocks at the edges too) while a one-pixel stroke stays whole."""
    pooled = cv2.dilate(image, np.ones((factor, factor), np.uint8), anchor=(0, 0))[::factor, ::factor]
    return np.ascontiguousarray(pooled)  # what reads it next (numpy, and OpenCV's copy of a strided view) is faster


def _paper_labels(mask: np.ndarray) -> tuple[int, np.ndarray, int]:
    """The paper around and inside ink, 8-connected: (label count, labels, the label of the paper around the glyph);
    label 0 is the ink."""
    ground = cv2.copyMakeBorder((~mask).view(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=1)
    count, labels = cv2.connectedComponentsWithAlgorithm(ground, 8, cv2.CV_32S, cv2.CCL_BBDT)
    return count, labels[1:-1, 1:-1], int(labels[0, 0])  # the padded border's component is the outside


def _holes(mask: np.ndarray) -> tuple[int, np.ndarray]:
    """The paper that ink encloses, 8-connected: (label count, labels); label 0 is the ink and the outside."""
    count, labels, outside = _paper_labels(mask)
    labels[labels == outside] = 0
    return count, labels


def _half_widths(labels: np.ndarray, count: int) -> np.ndarray:
    """Each label's half-width: its deepest pixel's Euclidean distance to the nearest pixel of label 0 (the radius
    of the largest disc inside it). City-block distance overstated a diagonal band's by up to 1.41 and a crossing's by
    2 (a bold outlined 4's band, crossbar over stem, read as no band and stayed hollow)."""
    inside = labels > 0
    depth = cv2.distanceTransform(inside.view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    if count <= 16:  # a glyph has a few holes: one masked maximum each is cheaper than numpy's maximum.at
        return np.array([0.0, *(cv2.minMaxLoc(depth, (labels == k).view(np.uint8))[1] for k in range(1, count))])
    half_width = np.zeros(count)  # noise: many
    np.maximum.at(half_width, labels[inside], depth[inside])
    return half_width


def hole_mask(ink: np.ndarray) -> tuple[np.ndarray, int]:
    """The bool mask of `ink` >= 0.5 whose holes `fill_hollow` measures (at most ANALYSIS a side), and its factor."""
    mask = ink >= 0.5
    factor = max(1, -(-max(mask.shape) // ANALYSIS))
    if factor > 1:  # any ink in a block counts: rims must stay closed at the smaller size
        mask = max_pool(mask.view(np.uint8), factor).view(bool)
    return mask, factor


def solidity(region: np.ndarray) -> float:
    """A 0/1 uint8 region's pixels over the area of its convex hull (about 1 when convex, above it for small ones)."""
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return cv2.countNonZero(region) / max(cv2.contourArea(cv2.convexHull(np.concatenate(contours))), 1.0)


def band_width(half_width: np.ndarray, side: int, rim: float) -> np.ndarray:
    """The band test's two width bars: at most HOLLOW_BAND of the glyph's long side `side`, HOLLOW_RIM rims or more."""
    return (2 * half_width <= HOLLOW_BAND * side) & (2 * half_width >= HOLLOW_RIM * rim)


def fill_hollow(ink: np.ndarray, rim_width: float) -> np.ndarray | None:
    """The mask of band-shaped holes to fill in `ink`'s glyph (at ink's size), or None when there are none."""
    mask, factor = hole_mask(ink)
    # Most glyphs have no hole, or none large enough: the outside is relabelled as ink only when one may be a band.
    count, labels, outside = _paper_labels(mask)
    if count <= 2:  # only ink and the outside
        return None
    area = np.bincount(labels.ravel(), minlength=count)
    area[outside] = 0  # no hole (the ink's count, label 0's, is no hole's either)
    rim = rim_width / factor
    # A band is at least HOLLOW_RIM rims wide and HOLLOW_ELONGATION half-widths squared large: a hole smaller
    # than that cannot be one, whatever its half-width (the counters of small digits; no distance needed). A bent
    # band, shorter, is still many rims wide: a bubble letter's band holds hundreds of those squares.
    if not (area[1:] >= HOLLOW_ELONGATION * (HOLLOW_RIM * rim / 2) ** 2).any():
        return None
    labels[labels == outside] = 0
    half_width = _half_widths(labels, count)
    wide = band_width(half_width, max(mask.shape), rim) & (half_width > 0)
    wide[0] = False  # the ink (and the outside, whose labels are now 0)
    band = wide & (area >= HOLLOW_ELONGATION * half_width**2)
    if HOLLOW_SOLIDITY:  # a short hole is a bent band or a counter
        for k in np.flatnonzero(wide & ~band):
            band[k] = solidity((labels == k).view(np.uint8)) < HOLLOW_SOLIDITY
    if not band.any():
        return None
    fill = band[labels]
    if factor > 1:
        fill = cv2.resize(
            fill.view(np.uint8), (fill.shape[1] * factor, fill.shape[0] * factor), interpolation=cv2.INTER_NEAREST
        )
        fill = fill[: ink.shape[0], : ink.shape[1]].view(bool)
    return fill
