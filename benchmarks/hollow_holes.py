"""The holes `serving.regions.fill_hollow` weighs, on the real-world set's development split: which are bands to fill.

Every image of the dev split goes through the service's preprocessing; each hole (paper that ink encloses) of a crop
that reaches `fill_hollow` is measured as the band test measures it: its area, its half-width (the deepest pixel's
distance to the ink), the glyph's long side and the rims' width. Holes of solid digits (every condition but `outline`
and `hollow_photo`) are counters, which must stay open; outlined digits' holes are bands (to fill) and counters.
The report gives the elongation (area / half-width^2) of both, under city-block and Euclidean distance, and how many
holes pass the band test at each elongation bar; and of the holes short of the served bar, their solidity (pixels over
the convex hull's area: `regions.HOLLOW_SOLIDITY` fills the bent ones). A choice is made here: only the dev split is
read, never sealed.

Usage:  python -m benchmarks.hollow_holes [--per-condition 200] [--out reports/hollow]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from benchmarks import harness as H
from serving import ink, regions
from serving.preprocess import ServingError, from_image
from testkit.servers import REPO

HOLLOW = ("outline", "hollow_photo")  # the conditions whose digits are outlines
BARS = (9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0)
SOLIDITY_BARS = (0.8, 0.85, 0.9, 0.92, 0.95)
DISTANCES = {"city-block": (cv2.DIST_L1, 3), "Euclidean": (cv2.DIST_L2, cv2.DIST_MASK_PRECISE)}


def holes_of(crop: np.ndarray, rim_width: float) -> list[dict]:
    """Each hole of a crop as `fill_hollow` sees it (its mask, pooled to at most regions.ANALYSIS a side)."""
    mask, factor = regions.hole_mask(crop)
    count, labels = regions._holes(mask)
    inside = (labels > 0).view(np.uint8)
    depths = {name: cv2.distanceTransform(inside, kind, size) for name, (kind, size) in DISTANCES.items()}
    served = regions._half_widths(labels, count)
    found = []
    for k in range(1, count):
        hole = (labels == k).view(np.uint8)
        area = cv2.countNonZero(hole)
        if area:  # the outside's label, emptied by _holes
            half = {name: cv2.minMaxLoc(depth, hole)[1] for name, depth in depths.items()}
            found.append(
                {
                    "area": area,
                    "long": max(mask.shape),
                    "rim": rim_width / factor,
                    "half_width": half,
                    "served": served[k],
                    "solidity": regions.solidity(hole),
                }
            )
    return found


def collect(per_condition: int) -> list[dict]:
    """Every hole `fill_hollow` weighs on the dev split, with its image's condition and label."""
    from training.realworld import generate
    from training.realworld.splits import get_split

    rows: list[dict] = []
    current: dict = {}
    weigh = regions.fill_hollow

    def spy(crop: np.ndarray, rim_width: float) -> np.ndarray | None:
        rows.extend({**current, **hole} for hole in holes_of(crop, rim_width))
        return weigh(crop, rim_width)

    ink.fill_hollow = spy  # what to_frame calls
    try:
        for sample in generate(per_condition, seed=get_split("dev").seed, split="dev"):
            current = {"condition": sample.condition, "label": int(sample.label)}
            try:
                from_image(sample.image)
            except ServingError:
                pass
    finally:
        ink.fill_hollow = weigh
    return rows


def summarise(rows: list[dict]) -> dict:
    """Per distance: the solid counters' highest elongations, the outlined holes' spread, and passes per bar."""
    out = {}
    for name in DISTANCES:
        by_kind: dict[str, list[float]] = {"solid": [], "outlined": []}
        solid_named: list[tuple[float, str]] = []
        for hole in rows:
            half = hole["half_width"][name]
            if half > 0 and regions.band_width(np.float64(half), hole["long"], hole["rim"]):
                kind = "outlined" if hole["condition"] in HOLLOW else "solid"
                by_kind[kind].append(hole["area"] / half**2)
                if kind == "solid":
                    solid_named.append((hole["area"] / half**2, f"{hole['condition']}, a {hole['label']}"))
        out[name] = {
            "weighed": {kind: len(values) for kind, values in by_kind.items()},
            "solid_highest": [f"{e:.1f} ({what})" for e, what in sorted(solid_named, reverse=True)[:6]],
            "outlined_spread": dict(sorted(Counter(min(int(e), 30) for e in by_kind["outlined"]).items())),
            "passing": {
                f"{bar:g}": {kind: sum(e >= bar for e in values) for kind, values in by_kind.items()} for bar in BARS
            },
        }
    return out


def short_holes(rows: list[dict]) -> dict:
    """The holes that pass the band test's width bars but not its served elongation bar (Euclidean, as served): their
    solidity's lowest values, and how many of each kind each solidity bar would fill."""
    short: dict[str, list[tuple[float, str]]] = {"solid": [], "outlined": []}
    for hole in rows:
        half = hole["served"]
        if half > 0 and regions.band_width(np.float64(half), hole["long"], hole["rim"]):
            if hole["area"] < regions.HOLLOW_ELONGATION * half**2:
                kind = "outlined" if hole["condition"] in HOLLOW else "solid"
                short[kind].append((hole["solidity"], f"{hole['condition']}, a {hole['label']}"))
    return {
        "holes": {kind: len(v) for kind, v in short.items()},
        "solid_lowest": [f"{s:.3f} ({what})" for s, what in sorted(short["solid"])[:6]],
        "filled_below": {
            f"{bar:g}": {kind: sum(s < bar for s, _ in v) for kind, v in short.items()} for bar in SOLIDITY_BARS
        },
    }


def markdown(report: dict) -> str:
    """The elongation tables."""
    env, data = report["environment"], report["results"]
    lines = H.markdown_head(env, "Holes the hollow-digit test weighs, on the real-world development split")
    lines += [
        f"- dev split: {data['per_condition']} images a condition; the holes that reach the band test's elongation "
        "bar (its other two bars passed): solid digits' counters, and outlined digits' holes "
        f"({', '.join(HOLLOW)}): "
        + "; ".join(
            f"{name} {s['weighed']['solid']} and {s['weighed']['outlined']}" for name, s in data["distances"].items()
        ),
        f"- served now: `HOLLOW_ELONGATION` {data['served']['elongation_bar']:g}, and `serving.regions._half_widths` "
        f"gives every hole's {' and '.join(data['served']['distance']) or 'neither'} depth",
        "",
        "| distance | bar | solid counters passing (must be 0) | outlined holes passing |",
        "|---|---|---|---|",
    ]
    for name, s in data["distances"].items():
        for bar, n in s["passing"].items():
            lines.append(f"| {name} | {bar} | {n['solid']} | {n['outlined']} |")
    lines.append("")
    for name, s in data["distances"].items():
        lines.append(f"- {name}: solid counters' highest elongations: {', '.join(s['solid_highest'])}")
        spread = ", ".join(f"{k}{'+' if k == 30 else ''}: {v}" for k, v in s["outlined_spread"].items())
        lines.append(f"- {name}: outlined holes by elongation (whole part): {spread}")
    short = data["short"]
    lines += [
        "",
        f"Holes short of the served elongation bar ({regions.HOLLOW_ELONGATION:g}), their width bars passed: "
        f"{short['holes']['solid']} solid digits' counters and {short['holes']['outlined']} outlined digits' holes. "
        f"`HOLLOW_SOLIDITY` ({data['served']['solidity_bar']:g} served) fills those under a solidity bar; the solid "
        f"counters' lowest solidities: {', '.join(short['solid_lowest'])}.",
        "",
        "| solidity bar | solid counters filled (must be 0) | outlined holes filled |",
        "|---|---|---|",
        *(f"| {bar} | {n['solid']} | {n['outlined']} |" for bar, n in short["filled_below"].items()),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-condition", type=int, default=200)
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "hollow")
    args = ap.parse_args()
    rows = collect(args.per_condition)
    results = {
        "per_condition": args.per_condition,
        "served": {
            "elongation_bar": regions.HOLLOW_ELONGATION,
            "solidity_bar": regions.HOLLOW_SOLIDITY,
            # which distance the served half-widths are: the one that equals them for every hole
            "distance": [n for n in DISTANCES if all(abs(h["half_width"][n] - h["served"]) < 1e-4 for h in rows)],
        },
        "distances": summarise(rows),
        "short": short_holes(rows),
    }
    report = {"environment": H.environment(), "results": results}
    H.write_report(args.out, "holes", report, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
