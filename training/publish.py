"""Publish a verified export into `exported/` so that it appears in one step, or not at all.

An export is committed by one rename: manifest.json. Every other file has a content-addressed name
(`cnn.<sha12>.onnx`, `comparison.<sha12>.json`, `plots/<name>.<sha12>.png`) that is never rewritten, so the files
a manifest names stay as they are until a newer manifest is in place; only then are the others deleted. A reader
of the manifest therefore finds either the old export whole or the new one whole, and a killed export leaves at
most unnamed files, which the next export deletes and the service never opens. Torch-free.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mnistserve.contracts import atomic_write_json, read_json, sha256_file, validate_manifest

try:
    import fcntl
except ImportError:  # Windows: no advisory lock; one export at a time is then up to the user
    fcntl = None


class ExportError(RuntimeError):
    """An export that failed a check (or found another running); the served export was not changed."""


STEPS = ("staged", "ignores", "move", "committed", "trimmed", "swept")  # where `_step` is called, in order
VERSIONED = re.compile(r"\.[0-9a-f]{12}$")  # the stem's tail of a content-addressed name


def _step(name: str) -> None:
    """A no-op after each commit step (STEPS); tests replace it to kill the exporter there."""


def versioned(name: str, sha256: str) -> str:
    """The content-addressed form of a file name: `cnn.onnx` -> `cnn.<first 12 hex of its SHA-256>.onnx`."""
    path = Path(name)
    stem = VERSIONED.sub("", path.stem)
    return f"{stem}.{sha256[:12]}{path.suffix}"


def named_files(manifest: dict) -> set[str]:
    """Every path, relative to exported/, that a manifest names (models, comparison, plots)."""
    comparison = (manifest.get("comparison") or {}).get("file", "comparison.json")
    plots = {p for p in manifest.get("plots", []) if isinstance(p, str) and p.startswith("plots/")}
    return {e["file"] for e in manifest["models"].values()} | {comparison} | plots


def _unshipped(manifest: dict | None) -> set[str]:
    return {e["file"] for e in (manifest or {"models": {}})["models"].values() if not e["shipped"]}


def _current(out_dir: Path) -> dict | None:
    """The manifest in place, or None (none yet, or unreadable: nothing is served, so nothing to keep)."""
    try:
        return validate_manifest(read_json(out_dir / "manifest.json"))
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return None


def _durable_move(src: Path, dst: Path) -> None:
    """rename(2) a file flushed to disk, then flush the directory entry: safe against power loss as well."""
    with open(src, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(src, dst)
    _fsync_dir(dst.parent)


def _fsync_dir(directory: Path) -> None:
    if os.name == "posix":  # directories cannot be opened for fsync on Windows
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_ignores(staging: Path, out_dir: Path, files: set[str]) -> None:
    """Keep unshipped files out of git and out of `bentoml build` (which reads nested .bentoignore files)."""
    for name in (".gitignore", ".bentoignore"):
        (staging / name).write_text("".join(f"/{f}\n" for f in sorted(files)))
        _durable_move(staging / name, out_dir / name)


def sweep(out_dir: Path, manifest: dict | None) -> list[str]:
    """Delete what `manifest` does not name: debris of a killed export, files of replaced exports; return it."""
    if manifest is None:
        return []
    keep, gone = named_files(manifest), []
    candidates = [
        *out_dir.glob("*.onnx"),
        *out_dir.glob("comparison*.json"),
        *out_dir.glob("plots/*.png"),
        *out_dir.glob(".*.tmp"),
    ]  # .tmp: an atomic write cut short by an older exporter
    for path in candidates:
        rel = path.relative_to(out_dir).as_posix()
        if rel not in keep and path.is_file():
            path.unlink(missing_ok=True)
            gone.append(rel)
    for stale in out_dir.glob(".staging-*"):  # where older exporters staged
        shutil.rmtree(stale, ignore_errors=True)
        gone.append(stale.name)
    return gone


def commit(staging: Path, out_dir: Path, manifest: dict) -> None:
    """Publish a verified staging folder: files under new names, then the manifest's rename, then the cleanup."""
    _step("staged")
    old = _current(out_dir)
    _write_ignores(staging, out_dir, _unshipped(old) | _unshipped(manifest))  # both exports' large files
    _step("ignores")
    (out_dir / "plots").mkdir(exist_ok=True)
    for rel in sorted(named_files(manifest)):
        if (staging / rel).is_file():  # a migration may name an unshipped file this checkout lacks
            _durable_move(staging / rel, out_dir / rel)
            _step("move")
    atomic_write_json(staging / "manifest.json", manifest)
    _durable_move(staging / "manifest.json", out_dir / "manifest.json")  # the commit point
    _step("committed")
    _write_ignores(staging, out_dir, _unshipped(manifest))
    _step("trimmed")
    sweep(out_dir, manifest)
    _step("swept")


@contextmanager
def publishing(out_dir: Path) -> Iterator[Path]:
    """Lock `out_dir` against a second exporter, clear a killed export's debris, and yield a fresh staging folder.

    Staging is a sibling of `out_dir` (same filesystem, so every move is a rename), never inside it; one left by a
    SIGKILL is removed here by the next export. The lock (flock, which the kernel drops when its holder dies)
    makes every staging folder found here stale.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with _locked(out_dir):
        for stale in out_dir.parent.glob(f".{out_dir.name}.staging-*"):
            shutil.rmtree(stale, ignore_errors=True)
        sweep(out_dir, _current(out_dir))
        same_fs = os.stat(out_dir.parent).st_dev == os.stat(out_dir).st_dev  # else exported/ is a mount point
        staging = Path(
            tempfile.mkdtemp(
                prefix=f".{out_dir.name}.staging-" if same_fs else ".staging-",
                dir=out_dir.parent if same_fs else out_dir,
            )
        )
        try:
            yield staging
        finally:
            shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def _locked(out_dir: Path) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    fd = os.open(out_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ExportError(f"another export into {out_dir} is running") from None
        yield
    finally:
        os.close(fd)


def migrate(out_dir: Path) -> dict:
    """Rename an export made before content-addressed names to them, checksums unchanged; idempotent."""
    with publishing(out_dir) as staging:
        manifest = validate_manifest(read_json(out_dir / "manifest.json"))
        models = {}
        for name, entry in manifest["models"].items():
            models[name] = {**entry, "file": versioned(entry["file"], entry["sha256"])}
            _link(_source(out_dir, entry), staging / models[name]["file"])
        comparison = manifest.get("comparison")
        if comparison is None and (out_dir / "comparison.json").is_file():
            comparison = {"file": "comparison.json", "sha256": sha256_file(out_dir / "comparison.json")}
        if comparison is not None:
            renamed = {**comparison, "file": versioned(comparison["file"], comparison["sha256"])}
            _link(out_dir / comparison["file"], staging / renamed["file"])
            comparison = renamed
        (staging / "plots").mkdir()
        plots = []
        for rel in manifest.get("plots", []):
            if str(rel).startswith("plots/") and str(rel).count("/") == 1 and (out_dir / rel).is_file():
                plots.append(f"plots/{versioned(Path(rel).name, sha256_file(out_dir / rel))}")
                _link(out_dir / rel, staging / plots[-1])
        manifest = {**manifest, "models": models, **({"comparison": comparison} if comparison else {}), "plots": plots}
        commit(staging, out_dir, manifest)
        return manifest


def _source(out_dir: Path, entry: dict) -> Path:
    """The entry's file; for a large file kept out of git, also its pre-migration name if its checksum matches."""
    named = out_dir / entry["file"]
    legacy = out_dir / f"{VERSIONED.sub('', Path(entry['file']).stem)}.onnx"
    if not named.is_file() and legacy.is_file() and sha256_file(legacy) == entry["sha256"]:
        return legacy
    return named


def _link(src: Path, dst: Path) -> None:
    """Stage `src` under a new name without copying (a hard link; a copy where links are not allowed)."""
    if not src.is_file():
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


if __name__ == "__main__":  # python -m training.publish [exported]: the one-off migration to content-addressed names
    import sys

    moved = migrate(Path(sys.argv[1] if len(sys.argv) > 1 else "exported"))
    print("\n".join(f"{n}: {e['file']}" for n, e in moved["models"].items()))
