"""MNIST validation digits photographed on unevenly lit paper, read as served: written faintly with a thin pen, or
drawn as bubble outlines (`--style hollow`).

A validation set for the preprocessing's handling of light: each digit (MNIST's validation split, from digit 2000 on,
which the low-resolution checks do not use) is thinned to its skeleton (scikit-image), drawn with a pen 1.2-3% of its
height at 20-50% of full ink (fading along the stroke), on paper of one of three tints, under one of three lights: a
shadow with a sharp edge across the page (a phone's or a hand's, 25-50% darker), a lamp's spot, or a plain gradient;
then sensor noise, a lens blur and JPEG. This code, not `training.realworld`, draws them, so a choice tuned here
leaves the real-world set's sealed split as unseen as before. No model trains on them.

`--style hollow`: a validation set for the hollow-digit fill (`serving.regions.fill_hollow`) from handwriting, not
fonts: each digit (from digit 2300 on) is made bold by 4-9% of its height on each side and only the bold shape's rim
is drawn, 1.2-3% of the height wide at 60-100% of full ink (a bubble letter), then photographed as above.

`--style solid`: what the fill must leave alone: each digit (from digit 2600 on) drawn with MNIST's own strokes
(a felt pen about a tenth of the digit's height) at 60-100% of full ink, its counters open, photographed as above.

`--style font`: typeset outlines, which handwriting's bubbles do not stand for: the digits 0-9 in turn, each in one
of Debian's Liberation and GNU FreeFont sans and serif faces (`apt-get install fonts-liberation fonts-freefont-ttf`;
neither real-world split draws from them), drawn as the glyph's outline only, a rim 1.2-3% of its height, and
photographed as above.

`--gallery` saves the default model's mistakes through this tree (each photo beside the frame it received) as
mistakes.png: these pools are for looking at, unlike the sealed split.

`--variant "label: module.CONSTANT=value ..."` adds this tree with some constants of serving.paper, .regions or .ink
changed, each variant's answers gained and lost against this tree's. `--against REV` adds the preprocessing of an
earlier revision (read with `git show`), side by side. `--blank N` (150) photographs N pages with nothing written on
them for each `--blank-seed` (5), which must be refused (NoInk): a preprocessing that reads fainter ink must not read
these.

Usage:  python -m benchmarks.shadowed_digits [--style faint|hollow|solid|font] [--count 300] [--seed 7 ...]
        [--variant "label: regions.HOLLOW_RIM=3" ...] [--against REV] [--blank 150] [--blank-seed 5 ...]
        [--out reports/shadowed]
"""

from __future__ import annotations

import argparse
import hashlib
import io
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from benchmarks import harness as H
from benchmarks import variants
from benchmarks.preprocess_parity import load_revision, resolve_revision
from mnistserve.contracts import softmax
from serving import preprocess as P
from testkit.servers import REPO

FIRST = 2000  # MNIST validation digits from here: benchmarks.real_digits --digits mnist-val reads 0-1999
HOLLOW_FIRST = 2300  # the bubble outlines' digits: after the faint ones'
LIGHTS = ("shadow", "lamp", "gradient")
TINTS = ((1.0, 1.0, 1.0), (1.0, 0.97, 0.9), (0.96, 0.98, 1.0))  # white, cream and bluish paper (RGB)
INKS = ((30, 30, 40), (40, 60, 160), (90, 90, 95))  # black, blue, pencil grey (RGB)
MAX_PIXELS = 1 << 24
SIDE = 28  # MNIST's digits
BLANK_SEED = 5  # the blank pages' own seed: not one of the digits'


def _thin_digit(digit: np.ndarray, tall: int, pen: float) -> np.ndarray:
    """The digit's skeleton at `tall` px, drawn with a round pen `pen` px wide: coverage in [0, 1]."""
    from skimage.morphology import skeletonize  # a benchmark's dependency (the dev extra), never the service's

    big = cv2.resize(digit.astype(np.float32), (tall, tall), interpolation=cv2.INTER_CUBIC)
    skeleton = skeletonize(big > 100).astype(np.uint8)
    r = int(np.ceil(pen / 2))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.GaussianBlur(cv2.dilate(skeleton, disc).astype(np.float32), (0, 0), 0.7)


def _light(rng: np.random.Generator, kind: str, h: int, w: int) -> np.ndarray:
    """How much light each pixel gets (about 0.3-1.1): a gradient across the page, and a shadow or a lamp on it."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    light = 1 - rng.uniform(0.1, 0.45) * ((np.cos(a) * xx / w + np.sin(a) * yy / h) + 1) / 2
    if kind == "shadow":  # a straight edge anywhere across the page, softened by 2-15 px
        b, offset = rng.uniform(0, 2 * np.pi), rng.uniform(-0.3, 0.3)
        shaded = (np.cos(b) * (xx / w - 0.5) + np.sin(b) * (yy / h - 0.5) - offset > 0).astype(np.float32)
        light *= 1 - rng.uniform(0.25, 0.5) * cv2.GaussianBlur(shaded, (0, 0), rng.uniform(2, 15))
    elif kind == "lamp":
        cy, cx, s = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.3, 0.7) * max(h, w)
        light *= 0.6 + 0.5 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    return light


def _page(rng: np.random.Generator) -> tuple[int, int, int]:
    """A page's height and width (600-999 px) and the digit's height on it (30-60% of its shorter side)."""
    h, w = int(rng.integers(600, 1000)), int(rng.integers(600, 1000))
    return h, w, int(min(h, w) * rng.uniform(0.3, 0.6))


def _placed(rng: np.random.Generator, drawing: np.ndarray, h: int, w: int, margin: int = 0) -> np.ndarray:
    """The square `drawing` on an (h, w) page of nothing, near its middle and `margin` px or more from its edges."""
    tall = drawing.shape[0]
    y = int(np.clip(h / 2 - tall / 2 + rng.normal(0, 0.05 * h), margin, h - tall - margin))
    x = int(np.clip(w / 2 - tall / 2 + rng.normal(0, 0.05 * w), margin, w - tall - margin))
    cover = np.zeros((h, w), np.float32)
    cover[y : y + tall, x : x + tall] = drawing
    return cover


def photo(rng: np.random.Generator, digit: np.ndarray, kind: str) -> bytes:
    """One 28x28 MNIST digit as a JPEG photo of a faint thin-pen drawing under the light `kind`."""
    h, w, tall = _page(rng)
    cover = _placed(rng, _thin_digit(digit, tall, max(1.5, tall * rng.uniform(0.012, 0.03))), h, w)
    # A light hand or a drying pen: the ink comes and goes along the stroke.
    fade = cv2.resize(rng.random((h // 50 + 2, w // 50 + 2)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    cover *= rng.uniform(0.2, 0.5) * np.clip(0.35 + fade, 0.35, 1.0)
    return _photograph(rng, cover, kind)


def hollow_photo(rng: np.random.Generator, digit: np.ndarray, kind: str) -> bytes:
    """One 28x28 MNIST digit as a JPEG photo of its bubble outline (the rim of the digit made bold) under `kind`."""
    h, w, tall = _page(rng)
    bold = int(tall * rng.uniform(0.04, 0.09))  # how far the bubble reaches beyond MNIST's stroke
    big = cv2.resize(digit.astype(np.float32), (tall, tall), interpolation=cv2.INTER_CUBIC) > 100
    big = np.pad(big, bold + 4)  # room for the bubble beyond the digit's frame
    solid = cv2.dilate(big.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * bold + 1,) * 2))
    rim = max(2, int(big.shape[0] * rng.uniform(0.012, 0.03)))
    inner = cv2.erode(solid, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rim + 1,) * 2))
    outline = cv2.GaussianBlur((solid - inner).astype(np.float32), (0, 0), 0.7)
    cover = _placed(rng, outline, h, w, margin=bold + 2)
    cover *= rng.uniform(0.6, 1.0)
    return _photograph(rng, cover, kind)


def solid_photo(rng: np.random.Generator, digit: np.ndarray, kind: str) -> bytes:
    """One 28x28 MNIST digit as a JPEG photo of its own strokes (a felt pen as wide as MNIST's) under `kind`."""
    h, w, tall = _page(rng)
    big = cv2.resize(digit.astype(np.float32) / 255, (tall, tall), interpolation=cv2.INTER_CUBIC)
    cover = _placed(rng, np.clip(big, 0, 1), h, w) * rng.uniform(0.6, 1.0)
    return _photograph(rng, cover, kind)


def font_faces() -> list[Path]:
    """The typefaces of `--style font`: Debian's Liberation and GNU FreeFont sans and serif faces (no monospace: its
    zeros may carry a dot or a slash), which neither real-world split draws from; an error says how to install them."""
    faces = sorted(p for d in FONT_DIRS for p in Path(d).glob("*.ttf") if "Mono" not in p.name)
    if not faces:
        raise SystemExit(f"--style font needs fonts in {' or '.join(FONT_DIRS)}: apt-get install {FONT_PACKAGES}")
    return faces


def font_photo(rng: np.random.Generator, label: int, kind: str, faces: list[Path]) -> bytes:
    """The digit `label` typeset in one of `faces` and drawn as its outline only (a rim 1.2-3% of its height round
    paper), photographed under `kind` as the other styles are."""
    from PIL import ImageDraw, ImageFont

    h, w, tall = _page(rng)
    rim = max(2, int(tall * rng.uniform(0.012, 0.03)))
    font = ImageFont.truetype(str(faces[rng.integers(len(faces))]), tall)
    canvas = Image.new("L", (2 * tall, 2 * tall), 0)
    # The stroke is drawn first and the glyph over it in paper: only the rim outside the glyph's edge stays ink.
    draw = ImageDraw.Draw(canvas)
    draw.text((tall // 2, tall // 4), str(label), font=font, fill=0, stroke_width=rim, stroke_fill=255)
    x0, y0, x1, y1 = canvas.getbbox()
    glyph = np.asarray(canvas, np.float32)[y0:y1, x0:x1] / 255
    side = max(glyph.shape)
    square = np.zeros((side, side), np.float32)
    top, left = (side - glyph.shape[0]) // 2, (side - glyph.shape[1]) // 2
    square[top : top + glyph.shape[0], left : left + glyph.shape[1]] = glyph
    cover = _placed(rng, cv2.GaussianBlur(square, (0, 0), 0.7), h, w, margin=2) * rng.uniform(0.6, 1.0)
    return _photograph(rng, cover, kind)


def _photograph(rng: np.random.Generator, cover: np.ndarray, kind: str) -> bytes:
    """Ink `cover` (0-1) on tinted paper under the light `kind`, with sensor noise, a lens blur and JPEG."""
    h, w = cover.shape
    paper = rng.uniform(160, 235) * np.asarray(TINTS[rng.integers(len(TINTS))], np.float32)
    ink = np.asarray(INKS[rng.integers(len(INKS))], np.float32)
    rgb = (paper * (1 - cover[..., None]) + ink * cover[..., None]) * _light(rng, kind, h, w)[..., None]
    rgb = cv2.GaussianBlur(rgb + rng.normal(0, rng.uniform(2, 6), rgb.shape), (0, 0), rng.uniform(0.5, 1.2))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB").save(
        buffer, "JPEG", quality=int(rng.integers(50, 90))
    )
    return buffer.getvalue()


SOLID_FIRST = 2600  # the solid digits': after the bubble outlines' (at the default --count)
# first digit, how it is drawn; "font" draws no MNIST digit: the labels 0-9 in turn, in a face of FONT_DIRS
STYLES = {"faint": (FIRST, photo), "hollow": (HOLLOW_FIRST, hollow_photo), "solid": (SOLID_FIRST, solid_photo)}
DRAWN = {
    "faint": "Faint thin-pen digits",
    "hollow": "Bubble-outline digits",
    "solid": "Digits in MNIST's own strokes",
    "font": "Typeset digits drawn as outlines",
}
FONT_DIRS = ("/usr/share/fonts/truetype/liberation", "/usr/share/fonts/truetype/freefont")
FONT_PACKAGES = "fonts-liberation fonts-freefont-ttf"


def build(count: int, seed: int, style: str = "faint") -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """`count` photos from MNIST validation digits (from the style's first; for "font", the digits 0-9 in turn
    typeset), their labels, and each one's light (index into LIGHTS)."""
    from training.data import load_mnist

    rng = np.random.default_rng(seed)
    if style == "font":
        faces, labels = font_faces(), np.arange(count) % 10
        lights = rng.integers(len(LIGHTS), size=count)
        return [font_photo(rng, int(d), LIGHTS[k], faces) for d, k in zip(labels, lights, strict=True)], labels, lights
    first, draw = STYLES[style]
    val = load_mnist(allow_download=False).val
    digits, labels = val.images[first : first + count].numpy(), val.labels[first : first + count].numpy()
    lights = rng.integers(len(LIGHTS), size=len(labels))
    return [draw(rng, d, LIGHTS[k]) for d, k in zip(digits, lights, strict=True)], labels.astype(np.int64), lights


def _described(style: str, count: int) -> str:
    """Which digits a style's photos show."""
    if style == "font":
        return f"the digits 0-9 in turn, {count} a seed, in {len(font_faces())} faces of {', '.join(FONT_DIRS)}"
    return f"MNIST validation digits {STYLES[style][0]}-{STYLES[style][0] + count - 1}, once per seed"


def blank_pages(count: int, seed: int) -> list[bytes]:
    """`count` photos of the same pages with nothing written on them, the lights taken in turn: what must be refused."""
    rng, empty = np.random.default_rng(seed), np.zeros((SIDE, SIDE), np.uint8)
    return [photo(rng, empty, LIGHTS[i % len(LIGHTS)]) for i in range(count)]


def frames(blobs: list[bytes], from_bytes: Callable[..., np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(N, 1, 28, 28) frames as the service makes them, and which it refused (a zero frame: counted wrong)."""
    out, refused = [], []
    for blob in blobs:
        try:
            out.append(from_bytes(blob, max_pixels=MAX_PIXELS))
            refused.append(False)
        except P.ServingError:
            out.append(np.zeros((1, P.SIDE, P.SIDE), np.float32))
            refused.append(True)
    return np.stack(out).astype(np.float32), np.asarray(refused)


def evaluate(
    exported: Path,
    count: int,
    seeds: list[int],
    against: str | None = None,
    blanks: int = 0,
    blank_seeds: tuple[int, ...] = (BLANK_SEED,),
    style: str = "faint",
    changed: dict[str, list[str]] | None = None,
    gallery: Path | None = None,
) -> dict:
    """Every served model on each seed's photos, through this tree's preprocessing, each of `changed`'s variants
    (label -> module.CONSTANT=value settings) and (given `against`) that revision's: accuracy overall and per light,
    the photos refused, and how many of `blanks` blank pages a blank seed are refused (the rest give a frame: a digit
    read where none is). `gallery`: the default model's mistakes through this tree, saved there as a PNG."""
    from serving.store import ModelStore

    versions: dict[str, tuple[Callable[..., np.ndarray], list[str]]] = {"this tree": (P.from_bytes, [])}
    versions |= {label: (P.from_bytes, settings) for label, settings in (changed or {}).items()}
    if against is not None:  # "at <rev>": a bare hash after a model's name would read as its checksum
        versions[f"at {resolve_revision(against)[:12]}"] = (load_revision(against)["serving.preprocess"].from_bytes, [])
    models = ModelStore(exported).models
    made = [build(count, seed, style) for seed in seeds]
    blobs = [b for m in made for b in m[0]]
    labels = np.concatenate([m[1] for m in made])
    lights = np.concatenate([m[2] for m in made])
    digest = hashlib.sha256(b"".join(blobs)).hexdigest()
    default = H.default_model(exported) if gallery is not None else None
    empty = [page for seed in blank_seeds for page in blank_pages(blanks, seed)]
    results, first = {}, {}  # first: each model's right answers through this tree, which the others gain or lose on
    for version, (from_bytes, settings) in versions.items():
        with variants.patched(settings):
            images, refused = frames(blobs, from_bytes)
            blank_refused = int(frames(empty, from_bytes)[1].sum()) if empty else 0
        per_model = {}
        for name, served in models.items():
            answers = softmax(H.run_chunked(served, images), served.temperature).argmax(1)
            right = (answers == labels) & ~refused
            if version == "this tree" and name == default:
                mistakes_sheet(blobs, images, labels, answers, ~right, gallery)
            base = first.setdefault(name, right)
            per_model[name] = {
                "sha256": served.entry["sha256"],
                "accuracy": float(right.mean()),
                # None for a light no photo drew (a small --count): no mean, and JSON has no NaN
                "lights": {
                    light: float(right[lights == i].mean()) if (lights == i).any() else None
                    for i, light in enumerate(LIGHTS)
                },
                "gained": int((right & ~base).sum()),
                "lost": int((base & ~right).sum()),
            }
        results[version] = {
            "blank_refused": blank_refused,
            "settings": settings,
            "refused": int(refused.sum()),
            "refused_by_light": {light: int(refused[lights == i].sum()) for i, light in enumerate(LIGHTS)},
            "models": per_model,
        }
    return {
        "dataset": {
            "style": style,
            "digits": _described(style, count),
            "seeds": seeds,
            "photos": len(labels),
            "per_light": {light: int((lights == i).sum()) for i, light in enumerate(LIGHTS)},
            "sha256": digest,
            "blank_pages": len(empty),
            "blank_seeds": list(blank_seeds),
        },
        "versions": results,
    }


def mistakes_sheet(
    blobs: list[bytes], images: np.ndarray, labels: np.ndarray, answers: np.ndarray, wrong: np.ndarray, path: Path
) -> None:
    """The photos read wrongly (at most 60), each beside the frame the model received, with its label and answer."""
    from PIL import ImageDraw

    cell, shown = 96, np.flatnonzero(wrong)[:60]
    sheet = Image.new("L", (cell * 2 * 6, (cell + 14) * max(1, -(-len(shown) // 6))), 96)
    draw = ImageDraw.Draw(sheet)
    for k, i in enumerate(shown):
        x, y = k % 6 * 2 * cell, k // 6 * (cell + 14)
        photo = Image.open(io.BytesIO(blobs[i])).convert("L")
        photo.thumbnail((cell, cell))
        sheet.paste(photo, (x, y))
        sheet.paste(
            Image.fromarray((images[i, 0] * 255).astype(np.uint8)).resize((cell, cell), Image.NEAREST), (x + cell, y)
        )
        draw.text((x + 2, y + cell + 1), f"{labels[i]} read as {answers[i]}", fill=255)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def markdown(report: dict) -> str:
    """Accuracy per model, preprocessing and light."""
    env, data = report["environment"], report["results"]
    ds = data["dataset"]
    drawn = DRAWN[ds.get("style", "faint")]
    lines = H.markdown_head(env, f"{drawn} photographed under shadows, a lamp or a gradient, as served")
    lines += [
        f"- photos: {ds['photos']} ({ds['digits']}; seeds {', '.join(map(str, ds['seeds']))}), sha256 "
        f"{ds['sha256'][:16]}; by light: " + ", ".join(f"{k} {v}" for k, v in ds["per_light"].items()),
        "- a validation set: preprocessing choices may read it (drawn here, not by training.realworld)",
        "- preprocessing refused (NoInk, counted wrong): "
        + "; ".join(
            f"{v}: {r['refused']} (" + ", ".join(f"{k} {n}" for k, n in r["refused_by_light"].items()) + ")"
            for v, r in data["versions"].items()
        ),
        f"- blank pages (the same paper and lights, nothing written; seeds "
        f"{', '.join(map(str, ds.get('blank_seeds', [BLANK_SEED])))}) refused, of {ds['blank_pages']}: "
        + "; ".join(f"{v}: {r['blank_refused']}" for v, r in data["versions"].items()),
        *(
            f"- variant `{v}`: this tree with `{' '.join(r['settings'])}`"
            for v, r in data["versions"].items()
            if r.get("settings")
        ),
        *(
            ["- gained, lost: photos read rightly here and wrongly through this tree, and the other way round"]
            if len(data["versions"]) > 1
            else []
        ),
        "",
        "| model | sha256 | preprocessing | all | gained | lost | " + " | ".join(LIGHTS) + " |",
        "|---|---|---|---|---|---|" + "---|" * len(LIGHTS),
    ]
    versions = data["versions"]
    for name in next(iter(versions.values()))["models"]:
        for version, result in versions.items():
            m = result["models"][name]
            moved = "- | -" if version == "this tree" else f"{m.get('gained', '-')} | {m.get('lost', '-')}"
            lines.append(
                f"| {name} | {m['sha256'][:12]} | {version} | {_pct(m['accuracy'])}% | {moved} | "
                + " | ".join(_pct(m["lights"][light]) for light in LIGHTS)
                + " |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exported", type=Path, default=REPO / "exported")
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "shadowed")
    ap.add_argument("--style", choices=(*STYLES, "font"), default="faint", help="what the photos show (see above)")
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        help='"label: module.CONSTANT=value ..." this tree with constants of serving.paper/.regions/.ink changed',
    )
    ap.add_argument("--count", type=int, default=300, help="digits a seed (each photographed once)")
    ap.add_argument("--seed", type=int, action="append", help="one set of photos a seed (default: 7, 11, 13, 17)")
    ap.add_argument("--against", default=None, help="also an earlier revision's preprocessing, side by side")
    ap.add_argument("--gallery", action="store_true", help="save the default model's mistakes as --out/mistakes.png")
    ap.add_argument("--blank", type=int, default=150, help="blank pages a blank seed, which must be refused")
    ap.add_argument("--blank-seed", type=int, action="append", help=f"blank pages a seed (default: {BLANK_SEED})")
    args = ap.parse_args()
    try:
        changed = variants.parse(args.variant, reserved=("this tree",))
    except ValueError as error:
        ap.error(str(error))
    exported = H.require_manifest(args.exported)
    seeds = list(dict.fromkeys(args.seed or [7, 11, 13, 17]))  # a seed given twice would count its photos twice
    blank_seeds = tuple(dict.fromkeys(args.blank_seed or [BLANK_SEED]))
    sheet = args.out / "mistakes.png" if args.gallery else None
    results = evaluate(exported, args.count, seeds, args.against, args.blank, blank_seeds, args.style, changed, sheet)
    report = {"environment": H.environment(exported=exported), "results": results}
    H.write_report(args.out, "shadowed", report, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
