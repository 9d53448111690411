"""Real-world digits for evaluation only: conditions MNIST never shows (thick markers, photos, chalkboards,
hollow and European glyphs, low resolution, the web page's canvas), drawn offline from pen fonts, hand-written
shapes and TrueType fonts, in two splits (`splits.py`): `dev`, which every choice may look at, and `sealed`,
drawn from sources and settings dev never uses, which no choice may look at (`CHOICES` says which is which).

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
from training.realworld.splits import CHOICES, SPLITS, get_split

CONDITIONS: tuple[str, ...] = tuple(_RENDERERS)
__all__ = ["CHOICES", "CONDITIONS", "SPLITS", "Sample", "describe", "generate", "save_gallery"]


@dataclass(frozen=True)
class Sample:
    """One evaluation image with its true digit, condition, glyph source and split."""

    image: Image.Image  # RGB, L or RGBA; size and mode depend on the condition
    label: int
    condition: str
    source: str  # "hershey:scripts", "skeleton:euro1" (dev), "hand:base1" (sealed), "ttf:cmr10"
    split: str = "dev"


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


def generate(
    n_per_condition: int, *, seed: int = 0, conditions: Sequence[str] | None = None, split: str = "dev"
) -> Iterator[Sample]:
    """`n_per_condition` samples of each condition of `split`, labels cycling 0-9 (balanced when n is a multiple of 10).

    Deterministic: sample i of a condition depends only on (seed, split, condition, i), so asking for fewer
    conditions or samples yields the same images. Dev draws exactly as the set did before the split existed.
    """
    names, chosen = _checked(conditions), get_split(split)  # validated here, not on first next()
    salt = [] if chosen.name == "dev" else [zlib.crc32(chosen.name.encode())]  # a retired split keeps its draws

    def samples() -> Iterator[Sample]:
        for name in names:
            for i in range(n_per_condition):
                rng = np.random.default_rng([seed, zlib.crc32(name.encode()), i, *salt])
                image, source = _RENDERERS[name](rng, i % 10, chosen)
                yield Sample(image, i % 10, name, source, split)

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


def write_galleries(out: str | Path, per_condition: int = 10, splits: Sequence[str] = tuple(SPLITS)) -> list[Path]:
    """`gallery-<split>.png` in `out` for each split: the first images of every condition of the project's set."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return [
        save_gallery(
            generate(per_condition, seed=get_split(name).seed, split=name),
            out / f"gallery-{name}.png",
            per_row=per_condition,
            thumb=96,
        )
        for name in splits
    ]
