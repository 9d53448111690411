"""Regions of a binary image, in numpy only: connected components as runs, and hollow glyphs filled.

Outline ("hollow", bubble) digits are drawn as two thin rims around a stroke that is not inked: a model
trained on MNIST reads the rims, not the digit (an outlined 1 looks like a 0). `fill_hollow` fills the
holes that are long thin bands, as wide as a stroke and much wider than the rims around them, and leaves
the round counters of 0, 4, 6, 8 and 9 open.
"""

from __future__ import annotations

import numpy as np

HOLLOW_BAND = 0.42  # a band hole is at most this wide, as a fraction of the glyph's long side (bold fonts reach 0.34)
HOLLOW_ELONGATION = 11.0  # area / half-width^2 of a band (a disc has ~3; counters of 0, 4, 6, 8, 9 measured 3-10)
HOLLOW_RIM = 2.0  # a band is at least this many times as wide as the rims around it
ANALYSIS = 128  # holes are measured on a mask at most this large


def components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """8-connected components of `mask` as runs: (run rows, run starts, run ends, component of each run)."""
    h, w = mask.shape
    padded = np.zeros((h, w + 2), np.int8)  # paper on both sides: every run has a start and an end
    padded[:, 1:-1] = mask
    step = padded[:, 1:] - padded[:, :-1]  # +1 where a run starts, -1 after it
    rows, starts = np.nonzero(step == 1)
    ends = np.nonzero(step == -1)[1]  # row-major order pairs every start with its end
    n = len(rows)
    # Runs of the next row that touch a run (diagonals included) form one contiguous slice of the sorted runs.
    line = np.int64(w + 2)
    start_keys, end_keys = rows * line + starts, rows * line + ends
    first = np.searchsorted(end_keys, (rows + 1) * line + starts, side="left")
    last = np.searchsorted(start_keys, (rows + 1) * line + ends, side="right")
    counts = np.maximum(last - first, 0)
    a = np.repeat(np.arange(n), counts)
    b = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts - first, counts)
    # Union-find in whole-array steps: hook the larger root onto the smaller, then jump pointers to the roots.
    parent = np.arange(n)
    while True:
        pa, pb = parent[a], parent[b]
        if np.array_equal(pa, pb):
            break
        np.minimum.at(parent, np.maximum(pa, pb), np.minimum(pa, pb))
        while not np.array_equal(jumped := parent[parent], parent):
            parent = jumped
    return rows, starts, ends, np.unique(parent, return_inverse=True)[1]


def _run_pixels(width: int, rows: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices (row * width + column) of every pixel of the runs, and the length of each run."""
    lengths = ends - starts
    offsets = np.cumsum(lengths) - lengths  # where each run's pixels begin in the concatenation
    return np.repeat(rows * width + starts - offsets, lengths) + np.arange(lengths.sum()), lengths


def paint(shape: tuple[int, int], rows: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """A boolean image of the given runs."""
    out = np.zeros(shape[0] * shape[1], bool)
    out[_run_pixels(shape[1], rows, starts, ends)[0]] = True
    return out.reshape(shape)


def _label_image(
    shape: tuple[int, int], rows: np.ndarray, starts: np.ndarray, ends: np.ndarray, label: np.ndarray
) -> np.ndarray:
    """An int image: component label + 1 on each run's pixels, 0 elsewhere."""
    out = np.zeros(shape[0] * shape[1], np.int32)
    pixels, lengths = _run_pixels(shape[1], rows, starts, ends)
    out[pixels] = np.repeat(label + 1, lengths)  # runs never overlap: each pixel is written once
    return out.reshape(shape)


def _erode(mask: np.ndarray) -> np.ndarray:
    """Binary erosion by a 3x3 cross (paper beyond the border)."""
    out = mask.copy()
    out[1:] &= mask[:-1]
    out[:-1] &= mask[1:]
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    out[0] = out[-1] = False
    out[:, 0] = out[:, -1] = False
    return out


def fill_hollow(ink: np.ndarray, rim_width: float) -> np.ndarray | None:
    """The mask of band-shaped holes to fill in `ink`'s glyph (at ink's size), or None when there are none."""
    mask = ink >= 0.5
    factor = max(1, -(-max(mask.shape) // ANALYSIS))
    if factor > 1:  # any ink in a block counts: rims must stay closed at the smaller size
        h, w = -(-mask.shape[0] // factor) * factor, -(-mask.shape[1] // factor) * factor
        padded = np.zeros((h, w), bool)
        padded[: mask.shape[0], : mask.shape[1]] = mask
        mask = padded.reshape(h // factor, factor, w // factor, factor).any(axis=(1, 3))
    rim = rim_width / factor
    ground = np.ones((mask.shape[0] + 2, mask.shape[1] + 2), bool)  # the outside becomes one component
    ground[1:-1, 1:-1] = ~mask
    rows, starts, ends, label = components(ground)
    if label.max() == 0:  # the ground is one piece, the outside: no holes
        return None
    labels = _label_image(ground.shape, rows, starts, ends, label)[1:-1, 1:-1]
    k = int(labels.max()) + 1
    outside = np.zeros(k, bool)  # the labels that touch the border: the ground around the glyph
    outside[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
    holes = np.where(outside[labels], 0, labels)
    if not holes.any():
        return None
    area = np.bincount(holes.ravel(), minlength=k).astype(np.float64)
    half_width = np.zeros(k)
    eroded = holes > 0
    depth = 0
    while eroded.any():  # each erosion peels one pixel: a hole's half-width is how long it survives
        depth += 1
        half_width[holes[eroded]] = depth  # repeated labels all get the same depth
        eroded = _erode(eroded)
    side = max(mask.shape)
    band = (
        (2 * half_width <= HOLLOW_BAND * side)
        & (area >= HOLLOW_ELONGATION * half_width**2)
        & (2 * half_width >= HOLLOW_RIM * rim)
        & (half_width > 0)
    )
    band[0] = False
    if not band.any():
        return None
    fill = band[holes]
    if factor > 1:
        fill = np.repeat(np.repeat(fill, factor, 0), factor, 1)[: ink.shape[0], : ink.shape[1]]
    return fill
