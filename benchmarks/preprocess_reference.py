"""A small reference of an earlier revision's frames, for the parity check in tests/test_preprocess_parity.py.

The sample: the first images of each condition of the real-world development split (training.realworld, the
evaluation seed; never the sealed split), the 56 px digit PNGs the serving benchmarks send and the web page's
canvas; each through the old `serving.preprocess` (read with `git show`, as benchmarks/preprocess_parity.py does).
Stored: each input's checksum, its label and the old frame (8-bit) or the old error's class, in
tests/samples/preprocess_reference.npz. Re-run it when the inputs change.
Usage:  python -m benchmarks.preprocess_reference [--against c729eef] [--per-condition 6] [--out PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from serving.errors import ServingError
from testkit.digits import digit_pngs, draw_one, draw_seven, draw_zero
from testkit.servers import REPO

REFERENCE = REPO / "tests" / "samples" / "preprocess_reference.npz"
AGAINST = "c729eef"  # the last revision with the hand-written numpy preprocessing


def reference_cases(per_condition: int, seed: int) -> list[tuple[str, Image.Image, int]]:
    """(name, decoded image, label) of every input of the sample."""
    from training.realworld import generate

    samples = enumerate(generate(per_condition, seed=seed, split="dev"))  # never the sealed split
    cases = [(f"{s.condition} #{i % per_condition} ({s.source})", s.image, s.label) for i, s in samples]
    cases += [(f"digit_pngs(56) {d}", Image.open(io.BytesIO(png)), d) for d, png in enumerate(digit_pngs())]
    # The web page's pad: a white 18 px pen on an opaque black 280x280 RGBA canvas.
    pads = {7: draw_seven(width=18), 1: draw_one((280, 280), width=18), 0: draw_zero((280, 280), width=18)}
    cases += [(f"web canvas {d}", ImageOps.invert(pad).convert("RGBA"), d) for d, pad in pads.items()]
    return cases


def digest(image: Image.Image) -> str:
    """A checksum of a decoded image: its mode, size and pixels."""
    image.load()
    return hashlib.sha256(f"{image.mode} {image.size}".encode() + image.tobytes()).hexdigest()[:16]


def outcome(preprocess, image: Image.Image) -> tuple[np.ndarray | None, str]:
    """(the frame (28, 28) float32, "") or (None, the error's class name) of one input."""
    try:
        return preprocess.from_image(image)[0], ""
    except ServingError as exc:
        return None, type(exc).__name__


def main() -> None:
    from benchmarks.preprocess_parity import load_revision, resolve_revision
    from training.robustness import SEED

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", default=AGAINST, help="git revision whose preprocessing makes the reference")
    ap.add_argument("--per-condition", type=int, default=6, help="real-world images per condition")
    ap.add_argument("--out", type=Path, default=REFERENCE)
    args = ap.parse_args()
    commit = resolve_revision(args.against)
    old = load_revision(args.against)["serving.preprocess"]
    cases = reference_cases(args.per_condition, SEED)
    frames, errors = [], []
    for _, image, _ in cases:
        frame, error = outcome(old, image)
        frames.append(np.zeros((28, 28), np.uint8) if frame is None else np.round(frame * 255).astype(np.uint8))
        errors.append(error)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        names=np.array([c[0] for c in cases]),
        labels=np.array([c[2] for c in cases]),
        digests=np.array([digest(c[1]) for c in cases]),
        frames=np.stack(frames),
        errors=np.array(errors),
        against=np.array(commit),
        per_condition=np.array(args.per_condition),
        seed=np.array(SEED),
    )
    print(f"{args.out}: {len(cases)} inputs, {sum(map(bool, errors))} errors, frames of {args.against}")


if __name__ == "__main__":
    main()
