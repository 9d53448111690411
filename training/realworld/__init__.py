"""Real-world digits for evaluation only: conditions MNIST never shows (thick markers, photos, chalkboards,
hollow and European glyphs), drawn offline from pen fonts, hand-authored skeletons and TrueType fonts.

Never train on these: they measure how far a model generalises beyond MNIST. numpy, Pillow and
`hershey-fonts` only (no torch), so reports and the serving side can use them too.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from training.realworld.conditions import CONDITIONS as _RENDERERS

CONDITIONS: tuple[str, ...] = tuple(_RENDERERS)


@dataclass(frozen=True)
class Sample:
    """One evaluation image with its true digit, condition and glyph source."""

    image: Image.Image  # RGB, L or RGBA; size and mode depend on the condition
    label: int
    condition: str
    source: str  # "hershey:scripts", "skeleton:euro1", "ttf:DejaVuSans-Bold"


def describe() -> dict[str, str]:
    """Each condition's one-line description, for reports."""
    return {name: fn.__doc__.strip().splitlines()[0] for name, fn in _RENDERERS.items()}


def _checked(conditions: Sequence[str] | None) -> tuple[str, ...]:
    """The requested conditions, or all; an unknown name raises ValueError listing the known ones."""
    if conditions is None:
        return CONDITIONS
    unknown = [c for c in conditions if c not in _RENDERERS]
    if unknown:
        raise ValueError(f"unknown condition(s) {unknown}; known: {', '.join(CONDITIONS)}")
    return tuple(conditions)


def generate(n_per_condition: int, *, seed: int = 0, conditions: Sequence[str] | None = None) -> Iterator[Sample]:
    """`n_per_condition` samples of each condition, labels cycling 0-9 (balanced when n is a multiple of 10).

    Deterministic: sample i of a condition depends only on (seed, condition, i), so asking for fewer
    conditions or samples yields the same images.
    """
    names = _checked(conditions)  # validated here, not on first next()

    def samples() -> Iterator[Sample]:
        for name in names:
            for i in range(n_per_condition):
                rng = np.random.default_rng([seed, zlib.crc32(name.encode()), i])
                image, source = _RENDERERS[name](rng, i % 10)
                yield Sample(image, i % 10, name, source)

    return samples()


def _thumbnail(image: Image.Image, size: int) -> Image.Image:
    """The whole image shrunk into a size x size tile; transparency shows as a grey checkerboard."""
    img = image.convert("RGBA")
    img.thumbnail((size, size), Image.LANCZOS)
    checks = ((np.indices((img.height, img.width)) // 4).sum(0) % 2 * 48 + 96).astype(np.uint8)
    under = Image.fromarray(checks, "L").convert("RGBA")
    under.alpha_composite(img)
    tile = Image.new("RGB", (size, size), (210, 210, 210))
    tile.paste(under.convert("RGB"), ((size - img.width) // 2, (size - img.height) // 2))
    return tile


def save_gallery(samples: Iterable[Sample], path: str | Path, per_row: int = 10, thumb: int = 64) -> Path:
    """Tile thumbnails, each captioned with its label and condition, into one PNG for people to look at."""
    samples = list(samples)
    rows = max(1, -(-len(samples) // per_row))
    cell = (thumb + 2, thumb + 14)
    sheet = Image.new("RGB", (cell[0] * per_row, cell[1] * rows), "white")
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default()
    for k, s in enumerate(samples):
        x, y = k % per_row * cell[0], k // per_row * cell[1]
        sheet.paste(_thumbnail(s.image, thumb), (x + 1, y + 1))
        draw.text((x + 2, y + thumb + 2), f"{s.label} {s.condition}"[: thumb // 6], fill="black", font=font)
    path = Path(path)
    sheet.save(path)
    return path
