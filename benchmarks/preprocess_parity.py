"""Parity of the served preprocessing with an earlier revision: `from_image` / `to_frame` old vs new, same inputs.

The old `serving/regions.py`, `ink.py` and `preprocess.py` are read with `git show <rev>:<path>` into temporary
modules (no copy of old code is kept); each input goes through both and the outcomes must agree: the same error
class and message, or frames within --tolerance (max |difference|). Inputs: the real-world evaluation set
(training.realworld, as training.robustness builds it), MNIST's test digits (as they are, inverted, and
photographed with testkit.digits.as_photo), the fuzz images of testkit.attacks, the
digits of testkit.digits, benchmarks/preprocess.py's photos, and random grey arrays.
Usage:  python -m benchmarks.preprocess_parity --against <git rev> [--per-condition 200] [--out reports/preprocess]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one thread, as benchmarks.preprocess
    os.environ[_var] = "1"

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import serving.preprocess  # noqa: E402  (the new modules are imported before the old ones borrow their names)
from benchmarks import harness as H  # noqa: E402
from mnistserve.contracts import atomic_write_bytes  # noqa: E402
from serving.errors import ServingError  # noqa: E402
from testkit import attacks, digits  # noqa: E402
from testkit.servers import REPO  # noqa: E402

MODULES = ("serving.regions", "serving.ink", "serving.preprocess")  # in import order: each imports the one before
MAX_PIXELS = 1 << 24
Case = tuple[str, Callable[[types.ModuleType], np.ndarray]]  # a name and a call of some version's preprocess module


# -- the old implementation, from git ------------------------------------------------------------------------


@contextlib.contextmanager
def _borrowed(name: str, module: types.ModuleType) -> Iterator[None]:
    """`module` answers imports of `name` (sys.modules and the package attribute) until the block ends."""
    package, _, attr = name.rpartition(".")
    saved = sys.modules[name], getattr(sys.modules[package], attr)
    sys.modules[name] = module
    setattr(sys.modules[package], attr, module)
    try:
        yield
    finally:
        sys.modules[name] = saved[0]
        setattr(sys.modules[package], attr, saved[1])


def load_revision(rev: str) -> dict[str, types.ModuleType]:
    """serving.regions, .ink and .preprocess as they were at `rev`, each importing the others of that revision."""
    modules: dict[str, types.ModuleType] = {}
    with contextlib.ExitStack() as stack:
        for name in MODULES:
            path = name.replace(".", "/") + ".py"
            shown = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=REPO, capture_output=True, text=True)
            if shown.returncode != 0:
                sys.exit(f"cannot read {path} at {rev}: {shown.stderr.strip()}")
            module = types.ModuleType(f"{name}@{rev}")
            module.__file__ = f"{rev}:{path}"
            exec(compile(shown.stdout, module.__file__, "exec"), module.__dict__)  # noqa: S102  (our own history)
            stack.enter_context(_borrowed(name, module))
            modules[name] = module
    return modules


# -- inputs ------------------------------------------------------------------------------------------------


def _image(image: Image.Image) -> Callable[[types.ModuleType], np.ndarray]:
    return lambda pre: pre.from_image(image)


def _grey(array: np.ndarray) -> Callable[[types.ModuleType], np.ndarray]:
    return lambda pre: pre.ink.to_frame(array)


def realworld_cases(per_condition: int) -> Iterator[Case]:
    """The real-world evaluation set, as training.robustness generates it (same seed)."""
    from training.realworld import generate
    from training.robustness import SEED

    for i, sample in enumerate(generate(per_condition, seed=SEED, split="dev")):
        yield f"realworld {sample.condition} #{i} ({sample.source}, label {sample.label})", _image(sample.image)


def mnist_cases(photos: int) -> Iterator[Case]:
    """MNIST's test digits as they are and inverted (dark on light); `photos` of them on paper at varied sizes."""
    from training.data import load_mnist  # torch: only here, never in serving/

    images = load_mnist(allow_download=False).test.images.numpy()
    rng = np.random.default_rng(0)
    for i, d in enumerate(images):
        yield f"mnist #{i}", _image(Image.fromarray(d))
        if i % 10 == 0:
            yield f"mnist #{i} inverted", _image(Image.fromarray(255 - d))
    for i in rng.choice(len(images), photos, replace=False).tolist():
        scale, paper = int(rng.integers(1, 12)), int(rng.integers(150, 256))
        canvas = (int(rng.integers(28 * scale, 28 * scale + 400)), int(rng.integers(28 * scale, 28 * scale + 300)))
        at = (int(rng.integers(0, canvas[0] - 28 * scale + 1)), int(rng.integers(0, canvas[1] - 28 * scale + 1)))
        yield (
            f"mnist #{i} as_photo scale {scale} paper {paper} canvas {canvas} at {at}",
            _image(digits.as_photo(images[i], scale=scale, canvas=canvas, at=at, paper=paper)),
        )


def _decoded(data: bytes) -> Image.Image | None:
    try:
        return serving.preprocess.open_image(data, max_pixels=MAX_PIXELS)
    except serving.preprocess.ServingError:  # not a preprocessing question
        return None


def fuzz_cases(count: int) -> Iterator[Case]:
    """The fuzz strategies' images (every mode and format, extreme number images, animations), drawn by a seed."""
    rng = np.random.default_rng(1)
    for _ in range(count):
        size = (int(rng.integers(1, 200)), int(rng.integers(1, 200)))
        pattern, mode = str(rng.choice(("noise", "stroke", "flat"))), str(rng.choice(attacks.MODES))
        fmt = str(rng.choice([f for f in attacks.FORMATS if f != "EPS"]))
        seed = int(rng.integers(0, 2**16))
        data, _ = attacks.encode_image(attacks.in_mode(attacks.canvas(*size, pattern, seed), mode, seed), fmt)
        if (image := _decoded(data)) is not None:
            yield f"fuzz {pattern} {size} {mode} {fmt} seed {seed}", _image(image)
    for pattern in sorted(attacks.EXTREMES):
        for mode, dtype, formats in attacks.NUMBER_KINDS:
            for size in ((28, 28), (1, 1), (3, 40), (64, 48), (600, 20), (700, 700)):
                for fmt in formats:
                    buffer = io.BytesIO()
                    attacks.number_image(pattern, mode, dtype, size).save(buffer, fmt)
                    if (image := _decoded(buffer.getvalue())) is not None:
                        yield f"number image {pattern} {mode} {size} {fmt}", _image(image)


def digit_cases() -> Iterator[Case]:
    """testkit.digits (the serving benchmarks' PNGs among them) and benchmarks/preprocess.py's cases."""
    from benchmarks.preprocess import cases

    for size in (20, 28, 40, 56, 100, 280):
        for d, png in enumerate(digits.digit_pngs(size)):
            yield f"digit_pngs({size}) {d}", _image(_decoded(png))
    for width in (1, 2, 4, 8, 16, 24, 36, 60):
        for box in ((0.3, 0.2, 0.7, 0.8), (0.05, 0.05, 0.95, 0.95), (0.6, 0.7, 0.7, 0.8)):
            for mode, ink, paper in (("L", 0, 255), ("L", 255, 0), ("RGB", 20, 230), ("RGBA", 0, 255)):
                image = digits.draw_seven(width=width, box=box, mode=mode, ink=ink, paper=paper)
                yield f"draw_seven width {width} box {box} {mode} ink {ink}", _image(image)
    for size in (28, 64, 200, 512, 1000):
        for width in (1, 3, 16, 60):
            yield f"draw_one {size} width {width}", _image(digits.draw_one((size, size), width=width))
            yield f"draw_zero {size} width {width}", _image(digits.draw_zero((size, size), width=width))
    for name, images in cases().items():
        for i, image in enumerate(images):
            yield f"benchmarks.preprocess {name} #{i}", _image(image)


def grey_cases(count: int) -> Iterator[Case]:
    """Random grey arrays straight into ink.to_frame (float32 and float64): noise, gradients, blobs, flat."""
    rng = np.random.default_rng(2)
    for i in range(count):
        h, w = int(rng.integers(1, 300)), int(rng.integers(1, 300))
        y, x = np.mgrid[0:h, 0:w] / max(h, w)
        grey = rng.uniform(0, 255) + rng.uniform(-120, 120) * (x - y) + rng.normal(0, rng.uniform(0, 30), (h, w))
        for _ in range(int(rng.integers(0, 4))):  # dark or light blobs: strokes, specks, shadows
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(1, max(h, w) / 3)
            grey[(y * max(h, w) - cy) ** 2 + (x * max(h, w) - cx) ** 2 < r * r] = rng.uniform(0, 255)
        dtype = np.float32 if i % 2 else np.float64
        yield f"grey {h}x{w} {np.dtype(dtype).name} #{i}", _grey(np.clip(grey, 0, 255).astype(dtype))


# -- comparison ------------------------------------------------------------------------------------------------


def outcome(call: Callable[[types.ModuleType], np.ndarray], module: types.ModuleType) -> tuple[object, float]:
    """(frame, or (error class, message)) of one call, and its seconds."""
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result: object = call(module)
    except (ValueError, ServingError) as exc:  # Blank, NoInk, BadInput: outcomes to compare, not failures
        result = (type(exc).__name__, str(exc))
    return result, time.perf_counter() - t0


def compare(source: str, cases: Iterator[Case], old: types.ModuleType, new: types.ModuleType, tolerance: float) -> dict:
    """Counts, errors, the largest difference and the first mismatches of one source's cases."""
    row = {
        "source": source,
        "inputs": 0,
        "errors": 0,
        "identical": 0,
        "max_abs_diff": 0.0,
        "mismatches": [],
        "old_s": 0.0,
        "new_s": 0.0,
    }
    for name, call in cases:
        (a, t_old), (b, t_new) = outcome(call, old), outcome(call, new)
        row["inputs"] += 1
        row["old_s"] += t_old
        row["new_s"] += t_new
        if isinstance(a, tuple) or isinstance(b, tuple):
            row["errors"] += isinstance(a, tuple)
            if a != b:
                row["mismatches"].append(f"{name}: old {_brief(a)}, new {_brief(b)}")
            continue
        diff = float(np.max(np.abs(a - b))) if a.shape == b.shape else float("inf")
        row["max_abs_diff"] = max(row["max_abs_diff"], diff)
        row["identical"] += bool(a.shape == b.shape and np.array_equal(a, b))
        if diff > tolerance:
            row["mismatches"].append(f"{name}: max |difference| {diff:.3g}")
    print(
        f"{source}: {row['inputs']} inputs, {len(row['mismatches'])} mismatches, max |diff| {row['max_abs_diff']:.3g}",
        flush=True,
    )
    return row


def _brief(result: object) -> str:
    return f"{result[0]}: {result[1][:80]}" if isinstance(result, tuple) else "a frame"


def markdown(rows: list[dict], args: argparse.Namespace, rev: str, env: dict, changed: bool) -> str:
    ok = all(not r["mismatches"] for r in rows)
    lines = [
        "# Preprocessing parity: this tree against an earlier revision",
        "",
        f"- command: `{env['command']}`",
        f"- this tree: git {env['git_revision']}; serving/regions.py, ink.py, preprocess.py "
        + ("differ from that commit (uncommitted changes)" if changed else "as committed there"),
        f"- against: {args.against} = {rev} (`git show {rev}:serving/<file>.py`, loaded as temporary modules)",
        f"- device: {env['device']['cpu']}; OMP_NUM_THREADS=1; versions: Python {env['versions']['python']}, "
        f"numpy {env['versions']['numpy']}, Pillow {env['versions']['pillow']}",
        f"- pass: every input gives the same outcome (the same error class and message, or frames with max "
        f"|difference| <= {args.tolerance:g})",
        "",
        "| source | inputs | errors (both) | frames bit-identical | max abs diff | mismatches | old s | new s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['source']} | {r['inputs']} | {r['errors']} | {r['identical']} | {r['max_abs_diff']:.3g} "
            f"| {len(r['mismatches'])} | {r['old_s']:.2f} | {r['new_s']:.2f} |"
        )
    total = sum(r["inputs"] for r in rows)
    lines += [
        "",
        f"**{'PASS' if ok else 'FAIL'}**: {total} inputs, "
        f"{sum(len(r['mismatches']) for r in rows)} mismatches. (old s / new s: total seconds of all calls, "
        "a shared machine's rough guide; benchmarks/preprocess.py is the timing.)",
    ]
    for r in rows:
        lines += [f"- {r['source']}: {m}" for m in r["mismatches"][:20]]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", required=True, help="git revision whose serving/ preprocessing is the reference")
    ap.add_argument("--per-condition", type=int, default=200, help="real-world images per condition (cpu profile: 200)")
    ap.add_argument("--mnist-photos", type=int, default=1000, help="MNIST test digits also sent as photos")
    ap.add_argument("--fuzz", type=int, default=1500, help="fuzz images of every mode and format")
    ap.add_argument("--grey", type=int, default=1000, help="random grey arrays into ink.to_frame")
    ap.add_argument("--tolerance", type=float, default=1e-6)
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "preprocess")
    args = ap.parse_args()
    resolved = subprocess.run(
        ["git", "rev-parse", "--verify", f"{args.against}^{{commit}}"], cwd=REPO, capture_output=True, text=True
    )
    if resolved.returncode != 0:
        sys.exit(f"--against {args.against!r} is not a commit of this repository")
    rev = resolved.stdout.strip()
    old, new = load_revision(rev)["serving.preprocess"], serving.preprocess
    changed = (
        subprocess.run(
            ["git", "diff", "--quiet", "HEAD", "--", *(m.replace(".", "/") + ".py" for m in MODULES)], cwd=REPO
        ).returncode
        != 0
    )
    env = H.environment()
    sources: list[tuple[str, Callable[[], Iterator[Case]]]] = [
        ("real-world set (training.realworld)", lambda: realworld_cases(args.per_condition)),
        ("MNIST test digits (training.data)", lambda: mnist_cases(args.mnist_photos)),
        ("fuzz images (testkit.attacks)", lambda: fuzz_cases(args.fuzz)),
        ("drawn digits (testkit.digits, benchmarks.preprocess)", digit_cases),
        ("random grey arrays (ink.to_frame)", lambda: grey_cases(args.grey)),
    ]
    from training.data import DataUnavailable

    rows = []
    for source, make in sources:
        try:
            rows.append(compare(source, make(), old, new, args.tolerance))
        except DataUnavailable as exc:  # MNIST not on this machine: say so rather than pass silently
            rows.append(
                {
                    "source": source,
                    "inputs": 0,
                    "errors": 0,
                    "identical": 0,
                    "max_abs_diff": 0.0,
                    "mismatches": [f"not run: {exc}"],
                    "old_s": 0.0,
                    "new_s": 0.0,
                }
            )
    text = markdown(rows, args, rev, env, changed)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / "parity.md", text.encode())
    print(text)
    sys.exit(0 if all(not r["mismatches"] for r in rows) else 1)


if __name__ == "__main__":
    main()
