"""Batched augmentation on the device: what real handwriting, drawings and photos do to a digit, done to MNIST.

Every part works on a whole batch (N, 1, 28, 28) in [0, 1] with per-image random strengths drawn from one
generator, so it costs a few tensor ops per batch, never a Python loop over images. A run names the parts
it uses (`Hparams.augment`, e.g. "stroke,affine,elastic"); `benchmarks/augment_ablation.py` measures what
each one buys on the real-world set (reports/augment/).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

Part = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]


def _uniform(n: int, low: float, high: float, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """(n,) uniform draws on x's device."""
    return low + (high - low) * torch.rand(n, device=x.device, generator=generator)


def _chosen(p: float, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """(N, 1, 1, 1) mask: which images get a part applied (the rest stay as they are)."""
    return (torch.rand(x.shape[0], device=x.device, generator=generator) < p).view(-1, 1, 1, 1)


def _dilate(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 3, stride=1, padding=1)


def _erode(x: torch.Tensor) -> torch.Tensor:
    return -F.max_pool2d(-x, 3, stride=1, padding=1)


def _peak_one(x: torch.Tensor) -> torch.Tensor:
    """Each image scaled so its strongest ink is 1: the service's preprocessing does the same to every frame."""
    return x / x.amax((2, 3), keepdim=True).clamp_min(1e-6)


def stroke(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Stroke width from a thin pen to a marker: blend toward an eroded, once or twice dilated digit.

    Why: thick 7s, 1s and 4s read as 8 by models that only saw MNIST's pen. t < 0 thins (at most 60 %
    of a one-pixel erosion, so MNIST's thin strokes never vanish), 0..1 thickens by up to one pixel on
    each side, 1..2 by up to two.
    """
    t = _uniform(x.shape[0], -0.6, 2.0, x, generator).view(-1, 1, 1, 1)
    dil = _dilate(x)
    dil2 = _dilate(dil)
    thin = x + (-t).clamp(0, 1) * (_erode(x) - x)
    thick = x + t.clamp(0, 1) * (dil - x) + (t - 1).clamp(0, 1) * (dil2 - dil)
    out = torch.where(t < 0, thin, thick)
    return torch.where(_chosen(0.7, x, generator), out, x)


def fill(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A pen too thick for the digit's loops: a closing of 2-3 px fills the loops of 0, 6, 8 and 9, strokes keep
    their width (the service's preprocessing thins bold strokes back to MNIST's, but a filled loop stays filled)."""
    k = 2 + (torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5).view(-1, 1, 1, 1)
    grown = _dilate(_dilate(x))
    closed2 = _erode(_erode(grown))
    closed3 = _erode(_erode(_erode(_dilate(grown))))
    out = torch.where(k == 2, closed2, closed3).clamp(0, 1)
    return torch.where(_chosen(0.15, x, generator), torch.maximum(out, x), x)


def _affine_theta(n: int, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """(N, 2, 3) inverse maps: rotation +-15 deg, shear +-0.3, scale 0.8..1.15 (aspect +-12 %), shift +-2.5 px."""
    angle = _uniform(n, -15, 15, x, generator) * (math.pi / 180)
    shear = _uniform(n, -0.3, 0.3, x, generator)
    scale = _uniform(n, 0.8, 1.15, x, generator)
    aspect = _uniform(n, 0.88, 1.12, x, generator)
    shift = _uniform(2 * n, -2.5, 2.5, x, generator).view(n, 2) * (2 / 28)  # pixels -> grid units
    sx, sy = scale * aspect, scale / aspect
    cos, sin = torch.cos(angle), torch.sin(angle)
    # Forward map A = R(angle) @ Shear @ S; grid_sample wants where each output pixel comes from: A^-1.
    a = torch.stack(
        [
            torch.stack([cos * sx, cos * shear * sy - sin * sy], 1),
            torch.stack([sin * sx, sin * shear * sy + cos * sy], 1),
        ],
        1,
    )  # (N, 2, 2)
    inv = torch.linalg.inv(a)
    return torch.cat([inv, -(inv @ shift.unsqueeze(2))], 2)


def _elastic_offsets(n: int, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """(N, 28, 28, 2) smooth random displacements (a hand's wobble), up to ~1.5 px, in grid units."""
    coarse = torch.randn(n, 2, 4, 4, device=x.device, generator=generator)
    strength = _uniform(n, 0.0, 1.5, x, generator).view(-1, 1, 1, 1) * (2 / 28)
    field = F.interpolate(coarse, size=x.shape[-2:], mode="bicubic", align_corners=False) * strength
    return field.permute(0, 2, 3, 1)


def warp(
    x: torch.Tensor, generator: torch.Generator | None = None, *, affine: bool = True, elastic: bool = True
) -> torch.Tensor:
    """Affine (rotation, shear, scale, shift) and elastic distortion in one resampling."""
    n = x.shape[0]
    if affine:
        theta = _affine_theta(n, x, generator)
        keep = ~_chosen(0.8, x, generator).view(-1, 1, 1)
        theta = torch.where(keep, torch.eye(2, 3, device=x.device).expand(n, 2, 3), theta)
    else:
        theta = torch.eye(2, 3, device=x.device).expand(n, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    if elastic:
        grid = grid + _elastic_offsets(n, x, generator) * _chosen(0.5, x, generator).view(-1, 1, 1, 1)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


def blur(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gaussian blur with a per-image sigma of 0.3..1.1 px (out-of-focus photos, soft pencils)."""
    n = x.shape[0]
    sigma = _uniform(n, 0.3, 1.1, x, generator).view(n, 1, 1)
    r = torch.arange(-2, 3, device=x.device, dtype=x.dtype)
    g = torch.exp(-(r.view(1, 1, 5) ** 2) / (2 * sigma**2))  # (N, 1, 5)
    g = g / g.sum(-1, keepdim=True)
    # Separable: one grouped convolution per axis, a kernel per image.
    y = F.conv2d(x.reshape(1, n, 28, 28), g.view(n, 1, 1, 5), padding=(0, 2), groups=n)
    y = F.conv2d(y, g.view(n, 1, 5, 1), padding=(2, 0), groups=n).reshape(x.shape)
    y = _peak_one(y)
    return torch.where(_chosen(0.3, x, generator), y, x)


def contrast(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Ink tone: gamma 0.5..1.8 (felt pen vs pencil edges) and a faint background left by thresholding."""
    n = x.shape[0]
    gamma = torch.exp(_uniform(n, math.log(0.5), math.log(1.8), x, generator)).view(-1, 1, 1, 1)
    floor = _uniform(n, 0.0, 0.08, x, generator).view(-1, 1, 1, 1)
    y = floor + (1 - floor) * x.clamp(0, 1).pow(gamma)
    return torch.where(_chosen(0.5, x, generator), y, x)


def noise(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Sensor and paper noise: Gaussian, sigma up to 0.12, clipped to [0, 1]."""
    sigma = _uniform(x.shape[0], 0.0, 0.12, x, generator).view(-1, 1, 1, 1)
    y = (x + sigma * torch.randn(x.shape, device=x.device, generator=generator)).clamp(0, 1)
    return torch.where(_chosen(0.3, x, generator), y, x)


def fade(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uneven ink along the stroke (30 %): a smooth field dims parts of the digit to 15-100 %, grain dims pixels,
    and the strongest ink is 1 again; thin strokes also lose up to half a pixel.

    Why: thin, light strokes photographed under uneven light reach the model as a thin digit whose ink comes and
    goes along the stroke (a light 6 read as 5, its loop half gone); MNIST's felt pen never does that.
    """
    n = x.shape[0]
    coarse = torch.rand(n, 1, 4, 4, device=x.device, generator=generator)
    smooth = F.interpolate(coarse, size=x.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
    low = _uniform(n, 0.15, 0.7, x, generator).view(-1, 1, 1, 1)
    grain = _uniform(n, 0.0, 0.5, x, generator).view(-1, 1, 1, 1)
    thin = _uniform(n, 0.0, 0.5, x, generator).view(-1, 1, 1, 1)
    y = x + thin * (_erode(x) - x)
    y = y * (low + (1 - low) * smooth) * (1 - grain * torch.rand(x.shape, device=x.device, generator=generator))
    y = _peak_one(y)
    return torch.where(_chosen(0.3, x, generator), y, x)


def outline(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Hollow digits: the rim of a thickened digit (outline fonts, bubble letters), for 10 % of images."""
    thick = _dilate(_dilate(x))
    rim = (thick - _erode(thick)).clamp(0, 1)
    rim = _peak_one(rim)
    return torch.where(_chosen(0.1, x, generator), rim, x)


def _segments(x: torch.Tensor, start: torch.Tensor, end: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """(N, 1, 28, 28) ink of one anti-aliased segment per image, from start to end (N, 2) in (row, col) pixels."""
    rows = torch.arange(28, device=x.device, dtype=x.dtype).view(1, 28, 1)
    cols = torch.arange(28, device=x.device, dtype=x.dtype).view(1, 1, 28)
    d = (end - start).view(-1, 2, 1, 1)
    rel_r, rel_c = rows - start[:, 0].view(-1, 1, 1), cols - start[:, 1].view(-1, 1, 1)
    t = ((rel_r * d[:, 0] + rel_c * d[:, 1]) / (d[:, 0] ** 2 + d[:, 1] ** 2).clamp_min(1e-6)).clamp(0, 1)
    dist = torch.sqrt((rel_r - t * d[:, 0]) ** 2 + (rel_c - t * d[:, 1]) ** 2)
    return (width.view(-1, 1, 1) / 2 + 0.5 - dist).clamp(0, 1).unsqueeze(1)


def _ink_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First and last row holding ink (> 0.5) of each image, as floats."""
    has = (x[:, 0] > 0.5).any(2)  # (N, 28)
    idx = torch.arange(28, device=x.device, dtype=x.dtype)
    top = torch.where(has, idx, torch.full_like(idx, 99.0)).amin(1)
    bottom = torch.where(has, idx, torch.full_like(idx, -1.0)).amax(1)
    return top, bottom


def _col_at(x: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
    """Centre column of the ink on the given row of each image."""
    line = x[torch.arange(len(x), device=x.device), 0, row.long().clamp(0, 27)]  # (N, 28)
    cols = torch.arange(28, device=x.device, dtype=x.dtype)
    return (line * cols).sum(1) / line.sum(1).clamp_min(1e-6)


def styles(x: torch.Tensor, generator: torch.Generator | None = None, y: torch.Tensor | None = None) -> torch.Tensor:
    """Continental writing styles MNIST's American writers rarely used: a flag on 1s, a crossbar on 7s (30 %).

    Why: a European 1 (a long up-stroke to the top) reads as 7 to a model that never saw one, and a crossed 7
    as a 4 or an 8. Only images whose label names the style get it, so nothing else's label is touched.
    """
    if y is None:
        return x
    n = x.shape[0]
    top, bottom = _ink_rows(x)
    height = (bottom - top).clamp_min(1)
    width = _uniform(n, 1.6, 2.6, x, generator)
    # The 1's flag: from the top of the stem down and to the left, a third to a half of the digit's height.
    stem = _col_at(x, top + 1)
    length = height * _uniform(n, 0.3, 0.5, x, generator)
    angle = _uniform(n, 30, 60, x, generator) * (math.pi / 180)  # below the horizontal
    start = torch.stack([top, stem], 1)
    flag = _segments(x, start, start + torch.stack([length * torch.sin(angle), -length * torch.cos(angle)], 1), width)
    # The 7's crossbar: across the stem a little below the middle, as wide as a third of the digit.
    row = top + height * _uniform(n, 0.45, 0.6, x, generator)
    centre = _col_at(x, row)
    half = height * _uniform(n, 0.15, 0.22, x, generator)
    bar = _segments(x, torch.stack([row, centre - half], 1), torch.stack([row + 0.5, centre + half], 1), width)
    chosen = _chosen(0.3, x, generator) & (top < 99).view(-1, 1, 1, 1)
    out = torch.where((y == 1).view(-1, 1, 1, 1) & chosen, torch.maximum(x, flag), x)
    return torch.where((y == 7).view(-1, 1, 1, 1) & chosen, torch.maximum(out, bar), out)


# Order matters: shape first (stroke, geometry), then what a camera does to the picture.
# None: a geometric part; affine and elastic are done together by one `warp`, at the first of them.
PARTS: dict[str, Part | None] = {
    "styles": styles,
    "stroke": stroke,
    "fill": fill,
    "outline": outline,
    "affine": None,
    "elastic": None,
    "blur": blur,
    "contrast": contrast,
    "fade": fade,  # optional: the CNN gains on dev, AlexNet, ViT and Faster R-CNN lose (reports/augment/fade)
    "noise": noise,
}
DEFAULT = "styles,stroke,affine,elastic,blur,contrast,noise"  # reports/augment/ablation-cnn.md: styles pays most


def parse(spec: str | bool) -> tuple[str, ...]:
    """'stroke,affine' -> ('stroke', 'affine'); 'all' or True -> the default parts; 'none' or False -> ()."""
    if spec is True or spec == "all":
        spec = DEFAULT
    if spec is False or spec in ("none", ""):
        return ()
    names = tuple(s.strip() for s in str(spec).split(",") if s.strip())
    unknown = [s for s in names if s not in PARTS]
    if unknown:
        raise ValueError(f"unknown augmentation {', '.join(unknown)}; choose from {', '.join(PARTS)}, all or none")
    return tuple(p for p in PARTS if p in names)  # canonical order, whatever order was asked


def augment(
    x: torch.Tensor, parts: tuple[str, ...], generator: torch.Generator | None = None, y: torch.Tensor | None = None
) -> torch.Tensor:
    """Apply the named parts to a batch (N, 1, 28, 28) in [0, 1]; affine and elastic share one resampling.

    `y` (the labels) is only read by `styles`, which draws label-specific strokes; without it that part is skipped.
    """
    warped = False
    for name in parts:
        part = PARTS[name]
        if part is None:
            if not warped:
                x = warp(x, generator, affine="affine" in parts, elastic="elastic" in parts)
                warped = True
        else:
            x = styles(x, generator, y) if part is styles else part(x, generator)
    return x
