"""Where a 1000x750 photo's preprocessing time goes, against issue 21's budget (4x faster than c729eef's numpy).

Three measurements on one pinned core, this tree only (c729eef read with `git show`, as benchmarks/preprocess.py
reads it, for the budget):
- the stages of `from_bytes` (a JPEG) and `from_image` (the decoded RGB photo), each stage's median time (what runs
  inside it included);
- floors no preprocessing can go under: Pillow decoding the JPEG at 1/1 to 1/8 of its size (libjpeg-turbo's DCT
  scaling; Huffman decoding is paid in full at every scale), and reading a decoded RGB photo's pixels at all;
- the working resolution as the lever: `preprocess.WORK_SIDE` (the grey image's long side) and `ink.ANALYSIS_SIDE`
  (where paper, polarity and pieces are found) lowered, each pair's photo time and the default model's accuracy on
  the real-world development split (dev only: this is a choice; the sealed split is never read).
Usage:  python -m benchmarks.photo_budget [--runs 200] [--per-condition 200] [--out reports/preprocess]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one thread, before numpy loads
    os.environ[_var] = "1"

import argparse  # noqa: E402
import contextlib  # noqa: E402
import functools  # noqa: E402
import io  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks import harness as H  # noqa: E402
from benchmarks import preprocess as B  # noqa: E402
from serving import ink, paper  # noqa: E402
from serving import preprocess as P  # noqa: E402
from testkit.servers import REPO  # noqa: E402

# Each stage timed: the module whose global its caller looks up (ink calls paper's ink_map by its own name), and
# the stage it runs inside, for the table's order and indentation (a stage's time includes its children's).
STAGES: dict[str, tuple[ModuleType, str | None]] = {
    "_open": (P, None),
    "_grey": (P, None),
    "to_frame": (ink, None),
    "_margin": (ink, "to_frame"),
    "_digit_ink": (ink, "to_frame"),
    "box_reduce": (ink, "_digit_ink"),
    "ink_map": (ink, "_digit_ink"),
    "_lattice_paper": (paper, "ink_map"),
    "_fine_paper": (paper, "ink_map"),
    "_strokes_dark": (paper, "ink_map"),
    "_above_shade_noise": (paper, "ink_map"),
    "paper_lines": (ink, "_digit_ink"),
    "select_digit": (ink, "_digit_ink"),
    "fill_hollow": (ink, "to_frame"),
    "_thicken": (ink, "to_frame"),
    "_thin": (ink, "to_frame"),
    "_deskew": (ink, "to_frame"),
    "_fit_box": (ink, "to_frame"),
}
SIDES = ((512, 256), (384, 256), (256, 256), (512, 128), (256, 128))  # (WORK_SIDE, ANALYSIS_SIDE); served first


@contextlib.contextmanager
def timed_stages(spent: dict[str, list[float]]) -> Iterator[None]:
    """Every stage of STAGES wrapped to append its wall time (ms) to spent[name] while inside the block."""
    saved = []
    for name, (module, _) in STAGES.items():
        original = getattr(module, name)

        def wrapper(*args, _f=original, _n=name, **kwargs):
            t0 = time.perf_counter()
            try:
                return _f(*args, **kwargs)
            finally:
                spent.setdefault(_n, []).append((time.perf_counter() - t0) * 1000)

        saved.append((module, name, original))
        setattr(module, name, functools.wraps(original)(wrapper))
    try:
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


def stage_split(call: Callable, inputs: list, runs: int) -> dict[str, float]:
    """Median ms of each stage (per call; a stage called twice counts both) and of the whole call, over `runs`."""
    for item in inputs:  # warm
        call(item)
    spent: dict[str, list[float]] = {}
    whole = []
    with timed_stages(spent):
        for i in range(runs):
            before = {name: len(v) for name, v in spent.items()}
            t0 = time.perf_counter()
            call(inputs[i % len(inputs)])
            whole.append((time.perf_counter() - t0) * 1000)
            for name, values in spent.items():  # sum repeated calls of one stage within this call
                extra = len(values) - before.get(name, 0)
                if extra > 1:
                    values[-extra:] = [sum(values[-extra:])]
    return {"whole": float(np.median(whole)), **{name: float(np.median(v)) for name, v in spent.items()}}


def _decode_at(data: bytes, scale: int) -> Image.Image:
    """The JPEG decoded to luminance at 1/scale of its size (Pillow's draft: the decoder's DCT scaling)."""
    image = Image.open(io.BytesIO(data))
    image.draft("L", (image.width // scale, image.height // scale))
    image.load()
    return image


def floors(jpegs: list[bytes], photos: list[Image.Image], runs: int) -> dict[str, dict]:
    """The decoder's and Pillow's own costs, which every version of the preprocessing pays."""
    calls = {f"JPEG decoded to luminance at 1/{s}": functools.partial(_decode_at, scale=s) for s in (1, 2, 4, 8)}
    out = {name: t["new"] for name, fn in calls.items() for t in [B.time_pair({"new": fn}, jpegs, runs)]}
    out["decoded RGB photo read as an array (np.asarray)"] = B.time_pair({"new": np.asarray}, photos, runs)["new"]
    out["decoded RGB photo to luminance (Pillow convert L)"] = B.time_pair(
        {"new": lambda im: im.convert("L")}, photos, runs
    )["new"]
    return out


@contextlib.contextmanager
def sides(work: int, analysis: int) -> Iterator[None]:
    """The preprocessing with its working and analysis sides set (module globals, read at call time)."""
    saved = P.WORK_SIDE, ink.ANALYSIS_SIDE
    P.WORK_SIDE, ink.ANALYSIS_SIDE = work, analysis
    try:
        yield
    finally:
        P.WORK_SIDE, ink.ANALYSIS_SIDE = saved


def resolution(jpegs: list[bytes], photos: list[Image.Image], runs: int, per_condition: int, exported: Path) -> list:
    """Each (WORK_SIDE, ANALYSIS_SIDE): the photo's median ms (bytes, decoded) and dev accuracy of the default model."""
    from serving.store import ModelStore
    from training.robustness import build

    store = ModelStore(exported)
    model = store.get(None)
    rows = []
    for work, analysis in SIDES:
        with sides(work, analysis):
            row = {
                "work_side": work,
                "analysis_side": analysis,
                "jpeg_ms": B.time_pair({"new": functools.partial(P.from_bytes, max_pixels=B.MAX_PIXELS)}, jpegs, runs)[
                    "new"
                ]["median_ms"],
                "decoded_ms": B.time_pair({"new": P.from_image}, photos, runs)["new"]["median_ms"],
            }
            dev = build(per_condition, "dev")
        right = model.run(dev.images)[0].argmax(1) == dev.labels
        row["model"] = model.name
        row["dev_accuracy"] = float(right.mean())
        row["per_condition"] = {c: float(right[dev.conditions == c].mean()) for c in dict.fromkeys(dev.conditions)}
        rows.append(row)
        print(
            f"sides {work}/{analysis}: {row['jpeg_ms']:.3f} / {row['decoded_ms']:.3f} ms, dev {row['dev_accuracy']:.4f}"
        )
    return rows


def _tree(parent: str | None = None, depth: int = 0) -> Iterator[tuple[str, int]]:
    """The stages depth first, each with its depth: a parent, then what runs inside it."""
    for name, (_, up) in STAGES.items():
        if up == parent:
            yield name, depth
            yield from _tree(name, depth + 1)


def markdown(report: dict) -> str:
    """The budget, the stage tables, the floors and the resolution table."""
    env, r = report["environment"], report["results"]
    lines = H.markdown_head(env, "Where a 1000x750 photo's preprocessing time goes, against issue 21's 4x budget")
    lines += [f"- pinned: {report['pinned']}; {r['runs']} timed calls a measurement, median ms", ""]
    for case, budget in r["budget"].items():
        split = r["stages"][case]
        lines += [
            f"## {case}",
            "",
            f"c729eef {budget['old_ms']:.3f} ms, so the 4x goal leaves **{budget['old_ms'] / 4:.3f} ms**; this tree "
            f"{split['whole']:.3f} ms ({budget['old_ms'] / split['whole']:.1f}x).",
            "",
            "| stage | median ms |",
            "|---|---|",
        ]
        for name, depth in [("whole", 0), *_tree()]:
            if name in split:
                lines.append(f"| {'&nbsp;' * 4 * depth}`{name}` | {split[name]:.3f} |")
        lines += [
            "",
            f"- {budget['floor']}: {budget['floor_ms']:.3f} ms, which leaves "
            f"{budget['old_ms'] / 4 - budget['floor_ms']:.3f} ms for the rest; this tree's rest takes "
            f"{split['whole'] - budget['floor_ms']:.3f} ms",
            "",
        ]
    lines += ["## Floors: what every version pays", "", "| what | median ms |", "|---|---|"]
    lines += [f"| {name} | {t['median_ms']:.3f} |" for name, t in r["floors"].items()]
    lines += [
        "",
        f"## The working resolution as the lever ({r['model']} on the dev split, {r['per_condition']} a condition)",
        "",
        "| WORK_SIDE | ANALYSIS_SIDE | JPEG bytes ms | decoded ms | dev accuracy | worst conditions |",
        "|---|---|---|---|---|---|",
    ]
    for row in r["resolution"]:
        worst = sorted(row["per_condition"].items(), key=lambda kv: kv[1])[:3]
        lines.append(
            f"| {row['work_side']} | {row['analysis_side']} | {row['jpeg_ms']:.3f} | {row['decoded_ms']:.3f} | "
            f"{100 * row['dev_accuracy']:.2f}% | " + ", ".join(f"{c} {100 * a:.1f}" for c, a in worst) + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200, help="timed calls a measurement (at least 50)")
    ap.add_argument("--per-condition", type=int, default=200, help="dev images a condition for the accuracy")
    ap.add_argument("--exported", type=Path, default=REPO / "exported")
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "preprocess")
    args = ap.parse_args()
    runs = max(args.runs, 50)
    pinned = B.pin_one_core()
    env = H.environment(exported=args.exported)
    old = B.old_preprocess(B.AGAINST)
    photos, jpegs = B.cases()[B.PHOTO], B.byte_cases()[B.PHOTO_BYTES]
    by_bytes = functools.partial(P.from_bytes, max_pixels=B.MAX_PIXELS)
    old_bytes = functools.partial(old.from_bytes, max_pixels=B.MAX_PIXELS)
    cases = {B.PHOTO_BYTES: (by_bytes, old_bytes, jpegs), B.PHOTO: (P.from_image, old.from_image, photos)}
    results = {"runs": runs, "budget": {}, "stages": {}}
    for case, (new, old_call, inputs) in cases.items():
        results["budget"][case] = {"old_ms": B.time_pair({"old": old_call}, inputs, runs)["old"]["median_ms"]}
        results["stages"][case] = stage_split(new, inputs, runs)
    results["floors"] = floors(jpegs, photos, runs)
    # The least each case pays before any preprocessing: the smallest JPEG decode, Pillow's own luminance.
    for case, floor in (
        (B.PHOTO_BYTES, "JPEG decoded to luminance at 1/8"),
        (B.PHOTO, "decoded RGB photo to luminance (Pillow convert L)"),
    ):
        results["budget"][case] |= {"floor": floor, "floor_ms": results["floors"][floor]["median_ms"]}
    results["resolution"] = resolution(jpegs, photos, runs, args.per_condition, args.exported)
    results["model"] = results["resolution"][0]["model"]
    results["per_condition"] = args.per_condition
    report = {"environment": env, "pinned": pinned, "against": B.AGAINST, "results": results}
    H.write_report(args.out, "photo-budget", report, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
