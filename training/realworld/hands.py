"""The sealed split's hand-written digits: parametric pen paths, written apart from `skeletons.py`.

Where `skeletons.py` nudges fixed control points, each shape here is built from arcs, lines and Bezier curves
whose proportions are drawn per sample (loop sizes, bar heights, tail curvature, flag length), so two samples of
one variant differ as two people's digits do. Unit box: x right, y down, height 1, width about 0.6.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Rng = np.random.Generator
Shape = Callable[[Rng], list[np.ndarray]]


def arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float) -> np.ndarray:
    """Points on an ellipse from angle a0 to a1 (degrees; 0 = right, 90 = down, since y points down)."""
    t = np.deg2rad(np.linspace(a0, a1, max(8, int(abs(a1 - a0) / 6))))
    return np.column_stack([cx + rx * np.cos(t), cy + ry * np.sin(t)])


def bez(*pts: tuple[float, float]) -> np.ndarray:
    """A quadratic or cubic Bezier through its end points, shaped by the middle ones."""
    p = np.array(pts, float)
    t = np.linspace(0, 1, 24)[:, None]
    if len(p) == 3:
        return (1 - t) ** 2 * p[0] + 2 * (1 - t) * t * p[1] + t**2 * p[2]
    return (1 - t) ** 3 * p[0] + 3 * (1 - t) ** 2 * t * p[1] + 3 * (1 - t) * t**2 * p[2] + t**3 * p[3]


def line(*pts: tuple[float, float]) -> np.ndarray:
    return np.array(pts, float)


def join(*pieces: np.ndarray) -> np.ndarray:
    """One pen-down path through the pieces in order."""
    return np.vstack(pieces)


def _zero_narrow(r: Rng) -> list[np.ndarray]:
    rx, lean = r.uniform(0.14, 0.24), r.uniform(-0.08, 0.08)
    loop = arc(0.3, 0.5, rx, 0.5, -90, 275 + r.uniform(0, 25))
    return [loop + np.column_stack([-lean * (loop[:, 1] - 0.5), 0 * loop[:, 1]])]


def _zero_slanted(r: Rng) -> list[np.ndarray]:
    rx = r.uniform(0.24, 0.32)
    loop = arc(0.32, 0.5, rx, 0.5, -100, 265)
    return [loop + np.column_stack([-r.uniform(0.12, 0.25) * (loop[:, 1] - 0.5), 0 * loop[:, 1]])]


def _one_base(r: Rng) -> list[np.ndarray]:
    x, flag, base = r.uniform(0.3, 0.36), r.uniform(0.12, 0.25), r.uniform(0.14, 0.24)
    return [line((x - flag, flag * r.uniform(0.6, 1.0)), (x, 0), (x, 1)), line((x - base, 1), (x + base, 1))]


def _one_long_flag(r: Rng) -> list[np.ndarray]:
    x, drop = r.uniform(0.36, 0.44), r.uniform(0.28, 0.42)
    return [line((x - r.uniform(0.28, 0.36), drop), (x, 0), (x + r.uniform(-0.04, 0.02), 1))]


def _one_stroke(r: Rng) -> list[np.ndarray]:
    top = r.uniform(0.26, 0.34)
    return [line((top - 0.06, 0.07), (top, 0), (top - r.uniform(-0.03, 0.05), 1))]


def _two_swan(r: Rng) -> list[np.ndarray]:
    w, base = r.uniform(0.5, 0.62), r.uniform(0.9, 1.0)
    top = arc(w / 2, 0.26, w / 2, 0.26, 180 + r.uniform(0, 20), 380)
    return [join(top, bez(tuple(top[-1]), (w * 0.45, 0.72), (0.02, base)), line((0.02, base), (w + 0.04, 1)))]


def _two_looped(r: Rng) -> list[np.ndarray]:
    w, lr = r.uniform(0.5, 0.6), r.uniform(0.07, 0.1)
    top = arc(w / 2, 0.25, w / 2, 0.25, 190, 370)
    loop = arc(0.12, 1 - lr, lr, lr, 20, -270)  # in at its right side, round over the top, out at its bottom
    return [join(top, bez(tuple(top[-1]), (w * 0.5, 0.7), tuple(loop[0])), loop, line(tuple(loop[-1]), (w + 0.05, 1)))]


def _two_angular(r: Rng) -> list[np.ndarray]:
    w = r.uniform(0.5, 0.64)
    top = arc(w / 2, 0.2, w / 2, 0.2, 180, 350)
    return [join(top, line(tuple(top[-1]), (0.02, 1), (w + 0.03, 1)))]


def _three_flat(r: Rng) -> list[np.ndarray]:
    w, mid = r.uniform(0.5, 0.62), r.uniform(0.36, 0.46)
    low = arc(w * 0.45, (1 + mid) / 2, w * 0.55, (1 - mid) / 2, -100, 140)
    return [
        join(line((0.02, 0), (w, 0), (w * 0.35, mid)), bez((w * 0.35, mid), (w * 0.8, mid - 0.02), tuple(low[0])), low)
    ]


def _three_bowls(r: Rng) -> list[np.ndarray]:
    w, mid = r.uniform(0.48, 0.6), r.uniform(0.4, 0.5)
    up = arc(w * 0.5, mid / 2, w * r.uniform(0.4, 0.5), mid / 2, -160, 90)
    low = arc(w * 0.48, (1 + mid) / 2, w * 0.52, (1 - mid) / 2, -90, 150)
    return [join(up, low)]


def _four_open(r: Rng) -> list[np.ndarray]:
    bar, stem, w = r.uniform(0.55, 0.72), r.uniform(0.38, 0.48), r.uniform(0.58, 0.7)
    return [line((0.06, 0), (0.02, bar), (w, bar)), line((stem, r.uniform(0.0, 0.25)), (stem, 1))]


def _four_closed(r: Rng) -> list[np.ndarray]:
    bar, stem, w = r.uniform(0.58, 0.74), r.uniform(0.42, 0.5), r.uniform(0.6, 0.72)
    return [line((stem, 0), (0, bar), (w, bar)), line((stem, 0), (stem, 1))]


def _five_hook(r: Rng) -> list[np.ndarray]:
    w, neck = r.uniform(0.5, 0.6), r.uniform(0.36, 0.46)
    bowl = arc(w * 0.48, (1 + neck) / 2 + 0.02, w * 0.52, (1 - neck) / 2, -150, 150)
    return [join(line((0.08, 0), (0.05, neck)), bowl), line((0.08, 0), (w + 0.02, r.uniform(-0.03, 0.03)))]


def _five_single(r: Rng) -> list[np.ndarray]:
    w, neck = r.uniform(0.5, 0.62), r.uniform(0.38, 0.5)
    bowl = arc(w * 0.45, (1 + neck) / 2, w * 0.55, (1 - neck) / 2, -140, 145)
    return [join(line((w, 0.01), (0.08, 0), (0.04, neck)), bowl)]


def _six_loop(r: Rng) -> list[np.ndarray]:
    lr = r.uniform(0.2, 0.3)
    loop = arc(0.3, 1 - lr, 0.28, lr, 180, 530)
    return [join(bez((0.5, 0), (0.12, 0.2), (0.02, 1 - lr)), loop)]


def _six_open(r: Rng) -> list[np.ndarray]:
    lr = r.uniform(0.22, 0.3)
    loop = arc(0.3, 1 - lr, 0.28, lr, 180, 495 - r.uniform(0, 20))
    return [join(bez((0.52, 0.03), (0.15, 0.15), (0.02, 1 - lr)), loop)]


def _seven_curved(r: Rng) -> list[np.ndarray]:
    w = r.uniform(0.52, 0.66)
    return [join(line((0, 0.04), (w, 0)), bez((w, 0), (w * 0.45, 0.4), (w * 0.35, 1)))]


def _seven_bar(r: Rng) -> list[np.ndarray]:
    w, y = r.uniform(0.52, 0.66), r.uniform(0.45, 0.55)
    foot = w * 0.3
    x = w + (foot - w) * y
    return [line((0, r.uniform(0.1, 0.2)), (0, 0), (w, 0), (foot, 1)), line((x - 0.2, y), (x + 0.18, y))]


def _eight_snowman(r: Rng) -> list[np.ndarray]:
    mid, w = r.uniform(0.38, 0.48), r.uniform(0.24, 0.32)
    return [arc(0.3, mid / 2, w * 0.8, mid / 2, -90, 270), arc(0.3, (1 + mid) / 2, w, (1 - mid) / 2, -90, 270)]


def _eight_cross(r: Rng) -> list[np.ndarray]:
    w, mid = r.uniform(0.24, 0.3), r.uniform(0.42, 0.5)
    up = arc(0.3, mid / 2, w * 0.85, mid / 2, 90, -200)
    low = arc(0.3, (1 + mid) / 2, w, (1 - mid) / 2, -90, 250)
    return [join(up, low, line(tuple(low[-1]), (0.3 + w * 0.85 * np.cos(np.deg2rad(90)), mid)))]


def _nine_curved(r: Rng) -> list[np.ndarray]:
    lr, w = r.uniform(0.2, 0.28), r.uniform(0.24, 0.3)
    loop = arc(0.3, lr, w, lr, -10, 350)
    return [join(loop, bez(tuple(loop[-1]), (0.3 + w, 0.75), (0.2, 1)))]


def _nine_straight(r: Rng) -> list[np.ndarray]:
    lr, w = r.uniform(0.2, 0.3), r.uniform(0.24, 0.3)
    loop = arc(0.3, lr, w, lr, 0, 360 - r.uniform(0, 25))
    return [join(loop, line(tuple(loop[-1]), (0.3 + w, lr), (0.3 + w - r.uniform(0, 0.08), 1)))]


def _nine_open(r: Rng) -> list[np.ndarray]:
    lr = r.uniform(0.22, 0.28)
    loop = arc(0.3, lr, 0.27, lr, -20, 300)
    return [join(loop, bez((0.57, lr - 0.1), (0.6, 0.6), (0.42, 1)))]


HANDS: dict[int, dict[str, Shape]] = {
    0: {"narrow0": _zero_narrow, "slanted0": _zero_slanted},
    1: {"base1": _one_base, "longflag1": _one_long_flag, "stroke1": _one_stroke},
    2: {"swan2": _two_swan, "looped2": _two_looped, "angular2": _two_angular},
    3: {"flattop3": _three_flat, "bowls3": _three_bowls},
    4: {"open4": _four_open, "closed4": _four_closed},
    5: {"hook5": _five_hook, "single5": _five_single},
    6: {"loop6": _six_loop, "open6": _six_open},
    7: {"curved7": _seven_curved, "bar7": _seven_bar},
    8: {"snowman8": _eight_snowman, "cross8": _eight_cross},
    9: {"curved9": _nine_curved, "straight9": _nine_straight, "open9": _nine_open},
}


def hand_strokes(digit: int, rng: Rng, sway: float = 0.025) -> tuple[str, list[np.ndarray]]:
    """A variant of `digit` with freshly drawn proportions, each stroke then bent by a smooth per-sample sway."""
    name = str(rng.choice(list(HANDS[digit])))
    strokes = HANDS[digit][name](rng)
    # A person's shapes drift more than a font's: a random smooth warp of the whole digit (x and y).
    k = rng.normal(0.0, sway, (2, 3))
    warped = [
        s + np.column_stack([k[0, 0] * s[:, 1] ** 2 + k[0, 1] * s[:, 1], k[1, 0] * s[:, 0] ** 2 + k[1, 1] * s[:, 0]])
        for s in strokes
    ]
    return name, warped
