"""Hand-authored pen paths for the ways people write each digit, in a unit box (x right, y down).

Each stroke is one pen-down path written as pieces: `C` runs a smooth curve through the points
that follow, `L` straight lines, `O` a closed smooth loop. A piece starts where the previous one
ended, so `C ... L ...` puts a corner at the join (the elbow of a 2, the waist of a 3).
"""

from __future__ import annotations

import numpy as np

SKELETONS: dict[int, dict[str, tuple[str, ...]]] = {
    0: {
        "oval0": ("O .30,0 .55,.14 .61,.50 .50,.88 .30,1 .09,.88 0,.50 .06,.14",),
        "overlap0": ("C .42,.08 .26,0 .07,.17 0,.52 .12,.92 .34,1 .55,.83 .60,.45 .50,.12 .32,.02 .20,.08",),
    },
    1: {
        "bare1": ("L .30,0 .29,1",),
        "flag1": ("L .12,.22 .36,0 .36,1",),
        "euro1": ("L 0,.40 .40,0 .40,1",),
        "euro1_serif": ("L .02,.38 .40,0 .40,1", "L .14,1 .66,1"),
    },
    2: {
        "plain2": ("C .04,.24 .20,.03 .42,.02 .58,.20 .52,.42 .30,.68 L .02,1 .64,.99",),
        "loop2": (
            "C .05,.24 .22,.02 .46,.03 .58,.22 .48,.48 .24,.76 .08,.93 .16,1 .27,.93 .20,.85 .09,.90 "
            ".16,.99 .40,.98 .66,.94",
        ),
    },
    3: {
        "round3": ("C .04,.14 .24,0 .48,.04 .56,.22 .44,.42 .24,.47 C .50,.52 .61,.72 .50,.93 .28,1 .02,.89",),
        "flat3": ("L .04,0 .58,0 .26,.40 C .50,.46 .62,.70 .50,.93 .26,1 .02,.88",),
    },
    4: {
        "closed4": ("L .46,0 .02,.68 .64,.68", "L .46,0 .46,1"),
        "open4": ("L .08,0 .04,.60 .64,.60", "L .47,.04 .47,1"),
    },
    5: {
        "plain5": ("L .56,0 .10,0 .06,.44 C .30,.36 .54,.46 .60,.70 .48,.94 .24,1 .02,.88",),
        "split5": ("L .08,.02 .05,.44 C .30,.36 .54,.46 .60,.70 .48,.94 .24,1 .02,.88", "L .12,0 .60,.02"),
    },
    6: {
        "round6": ("C .50,.02 .28,.08 .08,.34 .02,.66 .12,.93 .32,1 .52,.90 .56,.68 .44,.52 .24,.51 .06,.64",),
        "straight6": ("L .50,0 .10,.55 C .02,.74 .12,.95 .32,1 .52,.90 .55,.70 .42,.55 .22,.56 .08,.66",),
    },
    7: {
        "plain7": ("L 0,.02 .60,.02 .24,1",),
        "cross7": ("L 0,.02 .60,.02 .24,1", "L .14,.52 .58,.50"),
        "serif7": ("L .02,.18 0,.02 .60,.02 C .48,.30 .34,.62 .28,1",),
    },
    8: {
        "loop8": ("O .30,0 .08,.14 .14,.34 .30,.48 .52,.66 .46,.94 .26,1 .04,.86 .10,.62 .30,.48 .48,.32 .52,.12",),
        "stacked8": (
            "O .30,0 .50,.10 .52,.28 .30,.44 .10,.28 .12,.10",
            "O .30,.44 .58,.55 .60,.80 .30,1 0,.80 .04,.55",
        ),
    },
    9: {
        "curved9": ("C .58,.12 .32,0 .04,.12 .04,.40 .30,.52 .58,.30 C .58,.60 .50,.88 .30,1 .06,.94",),
        "straight9": ("C .56,.12 .30,0 .04,.16 .06,.42 .32,.50 .56,.26", "L .58,.02 .56,1"),
    },
}


def _catmull_rom(points: np.ndarray, *, closed: bool, per_span: int = 12) -> np.ndarray:
    """Points on a smooth curve through `points` (uniform Catmull-Rom)."""
    n = len(points)
    if closed:
        idx = np.arange(n)
        p0, p1, p2, p3 = (points[(idx + k) % n] for k in (-1, 0, 1, 2))
    else:  # mirror a phantom point past each end so the curve leaves and arrives straight
        ext = np.vstack([2 * points[0] - points[1], points, 2 * points[-1] - points[-2]])
        p0, p1, p2, p3 = (ext[k : k + n - 1] for k in range(4))
    t = np.linspace(0, 1, per_span, endpoint=False)[None, :, None]  # (1, T, 1) against (S, 1, 2)
    p0, p1, p2, p3 = (p[:, None, :] for p in (p0, p1, p2, p3))
    curve = 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (3 * p1 - p0 - 3 * p2 + p3) * t**3)
    return np.vstack([curve.reshape(-1, 2), points[:1] if closed else points[-1:]])


def _parse(stroke: str) -> list[tuple[str, np.ndarray]]:
    """Pieces `(kind, points)` of one stroke string; each piece holds its start point."""
    pieces: list[tuple[str, list[tuple[float, float]]]] = []
    for token in stroke.split():
        if token in ("C", "L", "O"):
            start = [pieces[-1][1][-1]] if pieces and token != "O" else []
            pieces.append((token, start))
        else:
            x, y = token.split(",")
            pieces[-1][1].append((float(x), float(y)))
    return [(kind, np.array(pts, dtype=np.float64)) for kind, pts in pieces]


def skeleton_strokes(digit: int, variant: str, rng: np.random.Generator, jitter: float) -> list[np.ndarray]:
    """The variant's polylines with every control point nudged: a hand never repeats a shape exactly."""
    strokes = []
    for stroke in SKELETONS[digit][variant]:
        pieces = _parse(stroke)
        moved = {}  # a point shared by two pieces moves once, so the pen path stays unbroken
        for _, pts in pieces:
            for pt in map(tuple, pts):
                moved.setdefault(pt, np.array(pt) + rng.normal(0.0, jitter, 2))
        path = []
        for kind, pts in pieces:
            ctrl = np.array([moved[tuple(pt)] for pt in pts])
            path.append(ctrl if kind == "L" else _catmull_rom(ctrl, closed=kind == "O"))
        strokes.append(np.vstack(path))
    return strokes


def skeleton_hand(digit: int, rng: np.random.Generator, jitter: float = 0.03) -> tuple[str, list[np.ndarray]]:
    """A variant of `digit` picked at random, with its control points jittered: the dev split's hand."""
    variant = str(rng.choice(list(SKELETONS[digit])))
    return variant, skeleton_strokes(digit, variant, rng, jitter)
