"""MNIST training digits captured the ways users capture digits, then preprocessed exactly as the service does.

MNIST is one kind of capture: a scanned pen stroke, 20 px tall, anti-aliased. The service also gets 8x8 scans blown
up, canvases drawn with a very thick pen, light pencil photographed on unevenly lit paper and outline glyphs; its
preprocessing turns each into a 28x28 that looks blocky, bold or broken, unlike anything in MNIST. Each generator
here redraws a *training* digit in one such way (numpy and OpenCV, nothing shared with the evaluation sets of
`training.realworld`), and `serving.preprocess.from_image` makes of it what a model would be served. A run mixes
these into its training split (`Hparams.captures`); labels are the digits' own.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from mnistserve.contracts import atomic_write_bytes

Rng = np.random.Generator
Capture = Callable[[Rng, np.ndarray], Image.Image]
INTERPOLATIONS = (cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_CUBIC)


def _ink(digit: np.ndarray, height: int) -> np.ndarray:
    """The digit's ink (float32 in [0, 1]) cropped to its box and scaled to `height` px, aspect kept."""
    rows, cols = np.nonzero(digit > 0)
    crop = digit[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].astype(np.float32) / 255
    width = max(1, round(crop.shape[1] * height / crop.shape[0]))
    return np.clip(cv2.resize(crop, (width, height), interpolation=cv2.INTER_CUBIC), 0, 1)


def _disc(radius: float) -> np.ndarray:
    side = 2 * max(1, round(radius)) + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))


def _place(ink: np.ndarray, rng: Rng, fill: tuple[float, float]) -> np.ndarray:
    """The ink on a canvas whose height makes the digit `fill` of it, at a random spot clear of the edges."""
    h, w = ink.shape
    side = max(int(h / rng.uniform(*fill)), w + 4)
    canvas = np.zeros((side, side), np.float32)
    y, x = int(rng.integers(2, side - h - 1)) if side - h > 3 else 0, int(rng.integers(2, side - w - 1))
    canvas[y : y + h, x : x + w] = ink[: side - y, : side - x]
    return canvas


def _light(shape: tuple[int, int], rng: Rng, strength: float) -> np.ndarray:
    """Illumination in (0, 1]: a linear fall-off across the page in a random direction, and sometimes a soft shadow."""
    h, w = shape
    v, u = np.mgrid[-1 : 1 : h * 1j, -1 : 1 : w * 1j].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * u + np.sin(angle) * v + 2) / 4  # 0.25..0.75 across the page
    light = 1 - strength * ramp
    if rng.random() < 0.4:
        edge = rng.uniform(-0.5, 0.5)
        light *= 1 - rng.uniform(0.1, 0.3) / (1 + np.exp(-(u * np.sin(angle) - v * np.cos(angle) - edge) / 0.1))
    return light


def _photo(ink: np.ndarray, rng: Rng, paper: float, contrast: float, shading: float) -> Image.Image:
    """Dark ink of `contrast` grey levels on `paper`, under uneven light, with blur, sensor noise and JPEG."""
    page = (paper - contrast * ink) * _light(ink.shape, rng, shading)
    page = cv2.GaussianBlur(page, (0, 0), rng.uniform(0.4, 1.4))
    page += rng.normal(0, rng.uniform(1.5, 7), page.shape).astype(np.float32)
    buffer = io.BytesIO()
    photo = Image.fromarray(np.clip(page + 0.5, 0, 255).astype(np.uint8))
    photo.save(buffer, "JPEG", quality=int(rng.integers(35, 90)))
    return Image.open(io.BytesIO(buffer.getvalue()))


def lowres(rng: Rng, digit: np.ndarray) -> Image.Image:
    """A digit 7-16 px tall (an old scan, an 8x8 dataset), few grey levels, blown up blocky or blurred."""
    k = int(rng.integers(7, 17))
    ink = _ink(digit, 64)
    width = k if rng.random() < 0.15 else max(1, round(ink.shape[1] * k / 64))  # some scans stretch to a square
    small = cv2.resize(ink, (width, k), interpolation=cv2.INTER_AREA)
    margin = int(rng.choice([0, 0, 1, 2, 3]))
    frame = np.zeros((k + 2 * margin, max(width, k) + 2 * margin), np.float32)
    left = margin + (max(width, k) - width) // 2
    frame[margin : margin + k, left : left + width] = small
    levels = int(rng.choice([2, 5, 17, 17, 256]))
    frame = np.round(frame * (levels - 1)) / (levels - 1)
    if rng.random() < 0.5:  # dark on light
        frame = 1 - frame
    scale = rng.uniform(28, 300) / frame.shape[0]
    size = (max(1, round(frame.shape[1] * scale)), max(1, round(frame.shape[0] * scale)))
    big = cv2.resize(frame, size, interpolation=INTERPOLATIONS[int(rng.integers(3))])
    return Image.fromarray(np.clip(big * 255 + 0.5, 0, 255).astype(np.uint8))


def thick(rng: Rng, digit: np.ndarray) -> Image.Image:
    """A pen 0.15-0.35 of the digit's height: loops fill. As the web page's canvas draws it, or dark on paper."""
    height = int(rng.integers(90, 200))
    ink = (_ink(digit, height) > 0.35).astype(np.float32)
    pen = rng.uniform(0.15, 0.35) * height  # MNIST's own stroke is about a tenth of the height
    ink = cv2.dilate(ink, _disc(max(0.0, pen - 0.1 * height) / 2))
    ink = cv2.GaussianBlur(_place(ink, rng, (0.5, 0.8)), (0, 0), 0.8)
    if rng.random() < 0.5:  # the canvas: white on black, PNG
        return Image.fromarray(np.clip(ink * 255 + 0.5, 0, 255).astype(np.uint8))
    return _photo(ink, rng, paper=rng.uniform(200, 250), contrast=rng.uniform(120, 200), shading=rng.uniform(0, 0.3))


def light(rng: Rng, digit: np.ndarray) -> Image.Image:
    """Thin, light strokes (pencil, a dry pen), sometimes broken, photographed on grey, unevenly lit paper."""
    height = int(rng.integers(120, 320))
    ink = (_ink(digit, height) > 0.5).astype(np.float32)
    ink = cv2.erode(ink, _disc(rng.uniform(0.02, 0.05) * height)) if rng.random() < 0.7 else ink
    if not ink.any():
        ink = (_ink(digit, height) > 0.5).astype(np.float32)
    if rng.random() < 0.5:  # the pen skipped: a few gaps across the stroke
        rows, cols = np.nonzero(ink)
        for i in rng.integers(0, len(rows), int(rng.integers(1, 4))):
            cv2.circle(ink, (int(cols[i]), int(rows[i])), max(1, int(rng.uniform(0.015, 0.04) * height)), 0.0, -1)
    ink = _place(ink, rng, (0.3, 0.7)) * rng.uniform(0.5, 1.0)  # graphite is never full black
    return _photo(ink, rng, paper=rng.uniform(140, 235), contrast=rng.uniform(25, 90), shading=rng.uniform(0.2, 0.6))


def hollow(rng: Rng, digit: np.ndarray) -> Image.Image:
    """An outline (bubble) digit: the rim of a bold stroke, on paper or photographed."""
    height = int(rng.integers(100, 220))
    ink = (_ink(digit, height) > 0.35).astype(np.float32)
    bold = cv2.dilate(ink, _disc(rng.uniform(0.03, 0.08) * height))
    rim = bold - cv2.erode(bold, _disc(rng.uniform(0.01, 0.025) * height))
    rim = _place(rim, rng, (0.4, 0.8))
    return _photo(rim, rng, paper=rng.uniform(170, 250), contrast=rng.uniform(90, 200), shading=rng.uniform(0, 0.5))


CAPTURES: dict[str, Capture] = {"lowres": lowres, "thick": thick, "light": light, "hollow": hollow}


def parse(spec: str) -> tuple[str, ...]:
    """'lowres,thick' -> ('lowres', 'thick'); 'all' -> every kind; 'none' or '' -> ()."""
    if spec in ("none", ""):
        return ()
    names = tuple(CAPTURES) if spec == "all" else tuple(s.strip() for s in spec.split(",") if s.strip())
    unknown = [s for s in names if s not in CAPTURES]
    if unknown:
        raise ValueError(f"unknown capture kind {', '.join(unknown)}; choose from {', '.join(CAPTURES)}, all or none")
    return names


def build(images: np.ndarray, labels: np.ndarray, n: int, kinds: tuple[str, ...], seed: int) -> tuple[np.ndarray, ...]:
    """`n` captures of digits drawn from `images` (uint8 (N, 28, 28)), kinds in turn: uint8 (n, 28, 28) and labels."""
    from serving.preprocess import ServingError, from_image  # the service's own preprocessing, numpy and OpenCV

    rng = np.random.default_rng([seed, 0x6361707475726573])
    out, out_labels = np.zeros((n, 28, 28), np.uint8), np.zeros(n, np.int64)
    picks = rng.integers(0, len(images), n)
    made = 0
    for i, j in enumerate(picks):
        try:
            frame = from_image(CAPTURES[kinds[i % len(kinds)]](rng, images[j]))[0]
        except ServingError:  # the service would refuse it (too faint): not a training example
            continue
        out[made], out_labels[made] = np.clip(frame * 255 + 0.5, 0, 255).astype(np.uint8), labels[j]
        made += 1
    return out[:made], out_labels[:made]


def _digest() -> str:
    """This module's and the preprocessing's sources: a change to either makes a new pool."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    from serving.preprocess import SOURCES  # every module of the preprocessing, as serving lists them

    for rel in ("training/captures.py", *SOURCES):
        path = root / rel
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def load(images: np.ndarray, labels: np.ndarray, n: int, kinds: tuple[str, ...], seed: int, cache_dir: Path):
    """`build`'s pool from `cache_dir` when the code and inputs are unchanged, else built and cached."""
    key = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()[:12]
    path = cache_dir / f"captures-{_digest()}-{key}-{'+'.join(kinds)}-{n}-{seed}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return z["images"], z["labels"]
    made = build(images, labels, n, kinds, seed)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=made[0], labels=made[1])
    atomic_write_bytes(path, buffer.getvalue())
    return made
