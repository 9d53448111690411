"""Parity of the served preprocessing with an earlier revision: `from_image` / `to_frame` old vs new, same inputs.

The old `serving/regions.py`, `ink.py` and `preprocess.py` are read with `git show <rev>:<path>` into temporary
modules (no copy of old code is kept); each input goes through both. Compared: the outcome (the same error
class, or a frame), the frames (bit-identical, or their similarity: the best correlation over shifts of at most
one pixel) and what the exported CNN reads in them (the same digit; accuracy where the label is known).
Pass: the outcome is the same for >= 99% of each source's inputs, and the CNN reads the same digit in >= 99% of
the digit sources' frames (or, with --tolerance, every frame within that max |difference|: a pure speed-up).
Inputs: the real-world evaluation set (training.realworld, as training.robustness builds it), MNIST's test
digits (as they are, inverted, and photographed with testkit.digits.as_photo), the fuzz images of
testkit.attacks, the digits of testkit.digits, benchmarks/preprocess.py's images, and
random grey arrays.
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

# In import order: each imports the ones before. serving.paper is newer than c729eef: a revision without it keeps
# none (its ink did that work itself); one with it must use its own, or "before" would run today's paper.
MODULES = ("serving.paper", "serving.regions", "serving.ink", "serving.preprocess")
OPTIONAL = {"serving.paper"}
MAX_PIXELS = 1 << 24
# A name, a call of some version's preprocess module and the digit it shows (None: unknown, or no digit).
Case = tuple[str, Callable[[types.ModuleType], np.ndarray], int | None]
SAME_OUTCOME = 0.99  # share of a source's inputs with the same outcome (error class or frame)
SAME_DIGIT = 0.99  # share of the digit sources' frames the CNN reads as the same digit


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


def resolve_revision(rev: str) -> str:
    """The full commit hash of a git revision of this repository; exits with a message when there is none."""
    resolved = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=REPO, capture_output=True, text=True
    )
    if resolved.returncode != 0:
        sys.exit(f"--against {rev!r} is not a commit of this repository")
    return resolved.stdout.strip()


def load_revision(rev: str) -> dict[str, types.ModuleType]:
    """serving.paper (where it existed), .regions, .ink and .preprocess as they were at `rev`, each importing the
    others of that revision."""
    modules: dict[str, types.ModuleType] = {}
    with contextlib.ExitStack() as stack:
        for name in MODULES:
            path = name.replace(".", "/") + ".py"
            shown = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=REPO, capture_output=True, text=True)
            if shown.returncode != 0 and name in OPTIONAL:
                continue
            if shown.returncode != 0:
                sys.exit(f"cannot read {path} at {rev}: {shown.stderr.strip()}")
            module = types.ModuleType(f"{name}@{rev}")
            module.__file__ = f"{rev}:{path}"
            sys.modules[module.__name__] = module  # dataclasses look their module up while the class is made
            stack.callback(sys.modules.pop, module.__name__, None)
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
    """The real-world development split, as training.robustness generates it (same seed; never the sealed split)."""
    from training.realworld import generate
    from training.robustness import SEED

    for i, sample in enumerate(generate(per_condition, seed=SEED, split="dev")):
        yield (
            f"realworld {sample.condition} #{i} ({sample.source}, label {sample.label})",
            _image(sample.image),
            sample.label,
        )


def mnist_cases(photos: int) -> Iterator[Case]:
    """MNIST's test digits as they are and inverted (dark on light); `photos` of them on paper at varied sizes."""
    from training.data import load_mnist  # torch: only here, never in serving/

    test = load_mnist(allow_download=False).test
    images, labels = test.images.numpy(), test.labels.numpy().tolist()
    rng = np.random.default_rng(0)
    for i, d in enumerate(images):
        yield f"mnist #{i}", _image(Image.fromarray(d)), labels[i]
        if i % 10 == 0:
            yield f"mnist #{i} inverted", _image(Image.fromarray(255 - d)), labels[i]
    for i in rng.choice(len(images), photos, replace=False).tolist():
        scale, paper = int(rng.integers(1, 12)), int(rng.integers(150, 256))
        canvas = (int(rng.integers(28 * scale, 28 * scale + 400)), int(rng.integers(28 * scale, 28 * scale + 300)))
        at = (int(rng.integers(0, canvas[0] - 28 * scale + 1)), int(rng.integers(0, canvas[1] - 28 * scale + 1)))
        yield (
            f"mnist #{i} as_photo scale {scale} paper {paper} canvas {canvas} at {at}",
            _image(digits.as_photo(images[i], scale=scale, canvas=canvas, at=at, paper=paper)),
            labels[i],
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
            yield f"fuzz {pattern} {size} {mode} {fmt} seed {seed}", _image(image), None
    for pattern in sorted(attacks.EXTREMES):
        for mode, dtype, formats in attacks.NUMBER_KINDS:
            for size in ((28, 28), (1, 1), (3, 40), (64, 48), (600, 20), (700, 700)):
                for fmt in formats:
                    buffer = io.BytesIO()
                    attacks.number_image(pattern, mode, dtype, size).save(buffer, fmt)
                    if (image := _decoded(buffer.getvalue())) is not None:
                        yield f"number image {pattern} {mode} {size} {fmt}", _image(image), None


def digit_cases() -> Iterator[Case]:
    """testkit.digits (the serving benchmarks' PNGs among them) and benchmarks/preprocess.py's cases."""
    from benchmarks.preprocess import DIGITS, cases

    for size in (20, 28, 40, 56, 100, 280):
        for d, png in enumerate(digits.digit_pngs(size)):
            yield f"digit_pngs({size}) {d}", _image(_decoded(png)), d
    for width in (1, 2, 4, 8, 16, 24, 36, 60):
        for box in ((0.3, 0.2, 0.7, 0.8), (0.05, 0.05, 0.95, 0.95), (0.6, 0.7, 0.7, 0.8)):
            for mode, ink, paper in (("L", 0, 255), ("L", 255, 0), ("RGB", 20, 230), ("RGBA", 0, 255)):
                image = digits.draw_seven(width=width, box=box, mode=mode, ink=ink, paper=paper)
                yield f"draw_seven width {width} box {box} {mode} ink {ink}", _image(image), 7
    for size in (28, 64, 200, 512, 1000):
        for width in (1, 3, 16, 60):
            yield f"draw_one {size} width {width}", _image(digits.draw_one((size, size), width=width)), 1
            yield f"draw_zero {size} width {width}", _image(digits.draw_zero((size, size), width=width)), 0
    for name, images in cases().items():
        for i, image in enumerate(images):
            yield f"benchmarks.preprocess {name} #{i}", _image(image), DIGITS[i]


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
        yield f"grey {h}x{w} {np.dtype(dtype).name} #{i}", _grey(np.clip(grey, 0, 255).astype(dtype)), None


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


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Best correlation of two frames over shifts of at most one pixel (centring rounds to whole pixels)."""
    best = -1.0
    t = b.ravel() - b.mean()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            r = np.roll(a.reshape(28, 28), (dy, dx), (0, 1)).ravel()
            r = r - r.mean()
            best = max(best, float(r @ t / max(np.sqrt((r @ r) * (t @ t)), 1e-12)))
    return best


def compare(source: str, cases: Iterator[Case], old: types.ModuleType, new: types.ModuleType, read) -> dict:
    """One source's counts: outcomes, frames identical or alike, what `read` (frames -> digits) makes of them."""
    row = {"source": source, "inputs": 0, "errors": 0, "identical": 0, "similarity": [], "max_abs_diff": 0.0}
    row.update(changed=[], old_s=0.0, new_s=0.0)
    frames, labels, names = [], [], []
    for name, call, label in cases:
        (a, t_old), (b, t_new) = outcome(call, old), outcome(call, new)
        row["inputs"] += 1
        row["old_s"] += t_old
        row["new_s"] += t_new
        if isinstance(a, tuple) or isinstance(b, tuple):
            row["errors"] += isinstance(a, tuple)
            if not (isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0]):
                row["changed"].append(f"{name}: old {_brief(a)}, new {_brief(b)}")
            continue
        row["max_abs_diff"] = max(row["max_abs_diff"], float(np.max(np.abs(a - b))))
        row["identical"] += bool(np.array_equal(a, b))
        row["similarity"].append(similarity(a, b))
        frames.append((a, b))
        labels.append(-1 if label is None else label)
        names.append(name)
    row["digits"] = _digits(frames, np.asarray(labels), names, read) if frames else None
    sims = np.asarray(row.pop("similarity") or [1.0])
    row.update(sim_median=float(np.median(sims)), sim_p1=float(np.percentile(sims, 1)), sim_min=float(sims.min()))
    row["sim_95"] = float(np.mean(sims >= 0.95))
    print(f"{source}: {row['inputs']} inputs, {len(row['changed'])} outcomes changed", flush=True)
    return row


def _digits(frames: list[tuple[np.ndarray, np.ndarray]], labels: np.ndarray, names: list[str], read) -> dict:
    """What the model reads in the old and the new frames: agreement, accuracy where labels are known."""
    old, new = (read(np.stack([f[k] for f in frames])) for k in (0, 1))
    known = labels >= 0
    return {
        "agree": float(np.mean(old == new)),
        "known": int(known.sum()),
        "old_accuracy": float(np.mean(old[known] == labels[known])) if known.any() else None,
        "new_accuracy": float(np.mean(new[known] == labels[known])) if known.any() else None,
        "differ": [f"{n}: old reads {o}, new reads {w}" for n, o, w in zip(names, old, new, strict=True) if o != w],
    }


def _brief(result: object) -> str:
    return f"{result[0]}: {result[1][:80]}" if isinstance(result, tuple) else "a frame"


def passed(row: dict, tolerance: float | None) -> bool:
    """Whether one source's results meet the pass rule (see the module's docstring)."""
    if tolerance is not None:
        return not row["changed"] and row["max_abs_diff"] <= tolerance
    same = 1 - len(row["changed"]) / max(row["inputs"], 1) >= SAME_OUTCOME
    return same and (row["digits"] is None or not row["labelled"] or row["digits"]["agree"] >= SAME_DIGIT)


def _accuracy(d: dict | None) -> str:
    if d is None or d["old_accuracy"] is None:
        return "—"
    return f"{100 * d['old_accuracy']:.2f}% -> {100 * d['new_accuracy']:.2f}% ({d['known']})"


def markdown(rows: list[dict], args: argparse.Namespace, rev: str, env: dict, changed: bool, model: str) -> str:
    ok = all(r["pass"] for r in rows)
    rule = (
        f"every input the same outcome and frames within max |difference| {args.tolerance:g}"
        if args.tolerance is not None
        else f"the same outcome (error class or a frame) for >= {SAME_OUTCOME:.0%} of each source's inputs, and the "
        f"same digit read in >= {SAME_DIGIT:.0%} of the digit sources' frames"
    )
    lines = [
        "# Preprocessing parity: this tree against an earlier revision",
        "",
        f"- command: `{env['command']}`",
        f"- this tree: git {env['git_revision']}; serving/"
        + ", ".join(f"{m.split('.')[1]}.py" for m in MODULES)
        + " "
        + ("differ from that commit (uncommitted changes)" if changed else "as committed there"),
        f"- against: {args.against} = {rev} (`git show {rev}:serving/<file>.py`, loaded as temporary modules)",
        f"- device: {env['device']['cpu']}; OMP_NUM_THREADS=1; versions: Python {env['versions']['python']}, "
        f"numpy {env['versions']['numpy']}, Pillow {env['versions']['pillow']}",
        f"- the digit read: {model}",
        f"- similarity: the best correlation of the two frames over shifts of at most one pixel; pass: {rule}",
        "",
        "| source | inputs | errors (old) | outcome changed | frames identical | similarity median / 1st pct / min "
        "| frames >= 0.95 alike | same digit read | accuracy old -> new (labelled) | old s | new s | pass |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        d = r["digits"]
        agree = "—" if d is None else f"{100 * d['agree']:.2f}%"
        lines.append(
            f"| {r['source']} | {r['inputs']} | {r['errors']} | {len(r['changed'])} | {r['identical']} "
            f"| {r['sim_median']:.4f} / {r['sim_p1']:.3f} / {r['sim_min']:.3f} | {100 * r['sim_95']:.1f}% "
            f"| {agree} "
            f"| {_accuracy(d)} | {r['old_s']:.2f} | {r['new_s']:.2f} | {'yes' if r['pass'] else 'NO'} |"
        )
    total = sum(r["inputs"] for r in rows)
    lines += [
        "",
        f"**{'PASS' if ok else 'FAIL'}**: {total} inputs. (old s / new s: total seconds of all calls, a shared "
        "machine's rough guide; benchmarks/preprocess.py is the timing.)",
        "",
    ]
    for r in rows:
        lines += [f"- {r['source']}: {m}" for m in r["changed"][:20]]
        if r["digits"] and r["labelled"]:  # in noise and fuzz images any digit is as good as another
            lines += [f"- {r['source']}: {m}" for m in r["digits"]["differ"][:30]]
    return "\n".join(lines) + "\n"


def reader(exported: Path) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """frames (N, 28, 28) -> the digits the exported default model reads, and which model that is."""
    from serving.store import ModelStore

    store = ModelStore(exported)
    served = store.get(None)
    return (
        lambda frames: served.run(frames.reshape(-1, 1, 28, 28).astype(np.float32))[0].argmax(1),
        f"the exported {served.name} (sha256 {served.entry['sha256'][:12]}) through onnxruntime",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", required=True, help="git revision whose serving/ preprocessing is the reference")
    ap.add_argument("--per-condition", type=int, default=200, help="real-world images per condition (cpu profile: 200)")
    ap.add_argument("--mnist-photos", type=int, default=1000, help="MNIST test digits also sent as photos")
    ap.add_argument("--fuzz", type=int, default=1500, help="fuzz images of every mode and format")
    ap.add_argument("--grey", type=int, default=1000, help="random grey arrays into ink.to_frame")
    ap.add_argument("--tolerance", type=float, default=None, help="pass only frames within this max |difference|")
    ap.add_argument("--exported", type=Path, default=REPO / "exported", help="the model that reads the frames")
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "preprocess")
    ap.add_argument("--name", default="parity", help="the report's file name, without .md")
    args = ap.parse_args()
    rev = resolve_revision(args.against)
    old, new = load_revision(rev)["serving.preprocess"], serving.preprocess
    changed = (
        subprocess.run(
            ["git", "diff", "--quiet", "HEAD", "--", *(m.replace(".", "/") + ".py" for m in MODULES)], cwd=REPO
        ).returncode
        != 0
    )
    env = H.environment()
    read, model = reader(args.exported)
    sources: list[tuple[str, Callable[[], Iterator[Case]], bool]] = [  # the last: a source of labelled digits
        ("real-world development split (training.realworld)", lambda: realworld_cases(args.per_condition), True),
        ("MNIST test digits (training.data)", lambda: mnist_cases(args.mnist_photos), True),
        ("fuzz images (testkit.attacks)", lambda: fuzz_cases(args.fuzz), False),
        ("drawn digits (testkit.digits, benchmarks.preprocess)", digit_cases, True),
        ("random grey arrays (ink.to_frame)", lambda: grey_cases(args.grey), False),
    ]
    from training.data import DataUnavailable

    rows = []
    for source, make, labelled in sources:
        try:
            row = compare(source, make(), old, new, read)
        except DataUnavailable as exc:  # MNIST not on this machine: say so rather than pass silently
            row = {"source": source, "inputs": 0, "errors": 0, "identical": 0, "max_abs_diff": 0.0, "digits": None}
            row.update(changed=[f"not run: {exc}"], old_s=0.0, new_s=0.0, sim_median=0.0, sim_p1=0.0, sim_min=0.0)
            row["sim_95"] = 0.0
        row["labelled"] = labelled
        row["pass"] = passed(row, args.tolerance)  # a source not run has one change and no inputs: fails
        rows.append(row)
    text = markdown(rows, args, rev, env, changed, model)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / f"{args.name}.md", text.encode())
    print(text)
    sys.exit(0 if all(r["pass"] for r in rows) else 1)


if __name__ == "__main__":
    main()
