"""Would an ensemble endpoint or test-time augmentation pay (issue 20, point 4)? Every servable model of `exported/`
reads the real-world development split through this tree's preprocessing; then every combination of them (their
calibrated probabilities averaged) and the default model over shifted, turned, scaled and re-inked copies of each
frame (averaged) are scored: accuracy, the worst condition, the "unsure" flag at a threshold chosen for each
(`training.metrics.flag_threshold`, as the export chooses it) and the inference time a request would pay.

Dev only: a choice is made here, so the sealed split is never read.
Usage:  python -m benchmarks.ensemble [--per-condition 200]
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks import harness as H
from serving import ink
from serving import preprocess as P
from testkit.servers import REPO
from training.metrics import UNSURE_BUDGET, UNSURE_CATCH, flag_stats, flag_threshold

# Test-time views of a 28x28 frame: (dx, dy) pixels, degrees, scale, and a 2x2 dilation (+1) or erosion (-1).
VIEWS = {
    "as served": (0, 0, 0.0, 1.0, 0),
    "right 1 px": (1, 0, 0.0, 1.0, 0),
    "left 1 px": (-1, 0, 0.0, 1.0, 0),
    "up 1 px": (0, -1, 0.0, 1.0, 0),
    "down 1 px": (0, 1, 0.0, 1.0, 0),
    "turned +8": (0, 0, 8.0, 1.0, 0),
    "turned -8": (0, 0, -8.0, 1.0, 0),
    "scaled 1.1": (0, 0, 0.0, 1.1, 0),
    "scaled 0.9": (0, 0, 0.0, 0.9, 0),
    "bolder": (0, 0, 0.0, 1.0, 1),
    "thinner": (0, 0, 0.0, 1.0, -1),
}
TTA = {
    "shifts": ["as served", "right 1 px", "left 1 px", "up 1 px", "down 1 px"],
    "turns": ["as served", "turned +8", "turned -8"],
    "scales": ["as served", "scaled 1.1", "scaled 0.9"],
    "inks": ["as served", "bolder", "thinner"],
    "all eleven": list(VIEWS),
}


def view(frame: np.ndarray, dx: int, dy: int, angle: float, scale: float, ink_change: int) -> np.ndarray:
    """One test-time copy of a frame."""
    matrix = cv2.getRotationMatrix2D((13.5, 13.5), angle, scale)
    matrix[:, 2] += (dx, dy)
    out = cv2.warpAffine(frame, matrix, (28, 28), flags=cv2.INTER_LINEAR)
    if ink_change:
        out = (cv2.dilate if ink_change > 0 else cv2.erode)(out, np.ones((2, 2), np.uint8))
    return out


def dev_frames(per_condition: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The development split through this tree's preprocessing: (frames, labels, conditions); unread: blank."""
    from training.realworld import generate, get_split

    frames, labels, conditions = [], [], []
    for sample in generate(per_condition, seed=get_split("dev").seed, split="dev"):
        try:
            frames.append(ink.to_frame(P._grey(sample.image)))
        except ink.Blank:
            frames.append(np.zeros((28, 28), np.float32))
        labels.append(sample.label)
        conditions.append(sample.condition)
    return np.asarray(frames, np.float32), np.asarray(labels), np.asarray(conditions)


def summary(probabilities: np.ndarray, labels: np.ndarray, conditions: np.ndarray, ms: float) -> dict:
    """Accuracy, the worst condition, and the flag at its own dev threshold."""
    right = probabilities.argmax(1) == labels
    per = {c: float(right[conditions == c].mean()) for c in dict.fromkeys(conditions.tolist())}
    worst = min(per, key=per.get)
    threshold = flag_threshold(probabilities, labels)
    return {
        "accuracy": float(right.mean()),
        "worst": [worst, per[worst]],
        "per_condition": per,
        "threshold": threshold,
        **flag_stats(probabilities, labels, threshold),
        "ms_per_image": ms,
    }


def score(per_condition: int, exported: Path) -> dict:
    """Every single model, every combination, and the default model's test-time augmentations."""
    from serving.store import ModelStore

    store = ModelStore(exported)
    frames, labels, conditions = dev_frames(per_condition)
    probs, ms = {}, {}
    for name, served in store.models.items():
        start = time.perf_counter()
        probs[name] = served.probabilities(served.run(frames[:, None])[0])
        ms[name] = (time.perf_counter() - start) * 1000 / len(frames)
    rows = {}
    for size in range(1, len(probs) + 1):
        for combo in itertools.combinations(probs, size):
            mean = np.mean([probs[n] for n in combo], axis=0)
            rows[" + ".join(combo)] = summary(mean, labels, conditions, sum(ms[n] for n in combo))
    default = store.models[store.default]
    views = {}
    for name, args in VIEWS.items():
        copies = np.stack([view(f, *args) for f in frames])[:, None]
        start = time.perf_counter()
        views[name] = default.probabilities(default.run(copies)[0])
        views[name + " ms"] = (time.perf_counter() - start) * 1000 / len(frames)
    tta = {}
    for label, names in TTA.items():
        mean = np.mean([views[n] for n in names], axis=0)
        tta[label] = summary(mean, labels, conditions, sum(views[n + " ms"] for n in names))
    return {
        "models": {n: s.entry["sha256"] for n, s in store.models.items()},
        "default": store.default,
        "images": len(labels),
        "ensembles": rows,
        "tta": tta,
    }


def _row(label: str, r: dict) -> str:
    return (
        f"| {label} | {100 * r['accuracy']:.2f} | {r['worst'][0]} {100 * r['worst'][1]:.1f} | {r['threshold']:.3f} | "
        f"{100 * r['caught']:.1f} | {100 * r['flagged_right']:.1f} | {100 * r['confident_wrong']:.2f} | "
        f"{r['ms_per_image']:.3f} |"
    )


def markdown(report: dict) -> str:
    env, res = report["environment"], report["results"]
    head = (
        "| {} | accuracy % | worst condition % | flag below | wrong caught % | right flagged % | wrong at >= 0.9 % "
        "| inference ms an image |"
    )
    rule = "|---|---|---|---|---|---|---|---|"
    lines = [
        *H.markdown_head(env, "Ensembles and test-time augmentation on the real-world development split"),
        f"- set: the development split, {res['images']} images, through this tree's preprocessing; the sealed split is"
        " not read (a choice is made here)",
        "- each row's flag threshold is chosen on these images as the export chooses it (catch"
        f" {UNSURE_CATCH:.0%} of the wrong answers, or flag at most {UNSURE_BUDGET:.0%} of the right ones), so rows"
        " compare at their best; inference time: batched, one process, both cores",
        "",
        "## Models and their ensembles (calibrated probabilities averaged)",
        "",
        head.format("models"),
        rule,
        *(_row(label, r) for label, r in res["ensembles"].items()),
        "",
        f"## Test-time augmentation of the default model ({res['default']}: its views' probabilities averaged)",
        "",
        head.format("views"),
        rule,
        *(_row(f"{label} ({len(TTA[label])})", r) for label, r in res["tta"].items()),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-condition", type=int, default=200)
    ap.add_argument("--exported", type=Path, default=REPO / "exported")
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "generalisation")
    args = ap.parse_args()
    exported = H.require_manifest(args.exported)
    report = {"environment": H.environment(exported=exported), "results": score(args.per_condition, exported)}
    H.write_report(args.out, "ensemble", report, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
