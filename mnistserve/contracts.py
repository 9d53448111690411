"""File contracts shared by training and serving: paths, schemas, checksums, atomic writes.

This module must stay free of torch: the service imports it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnistserve.realworld import realworld_markdown, split_accuracy

if TYPE_CHECKING:
    import numpy as np

COMPARISON_SCHEMA = "mnistserve.comparison/1"
MANIFEST_SCHEMA = "mnistserve.manifest/1"

# The built-in architectures in comparison order (training.models registers one module per name) and the
# training profiles. Torch-free, so the CLI can offer them without importing torch.
ARCHITECTURES = ("cnn", "faster_rcnn", "vgg16", "alexnet", "vit")
PROFILES = ("smoke", "cpu", "gpu")

# The one model contract: every trained and exported model takes this and returns (N, 10) scores.
INPUT_NAME = "input"
OUTPUT_NAME = "scores"
INPUT_SHAPE = ("N", 1, 28, 28)
NUM_CLASSES = 10
INPUT_SPEC: dict[str, Any] = {
    "name": INPUT_NAME,
    "shape": list(INPUT_SHAPE),
    "dtype": "float32",
    "range": [0.0, 1.0],
    "layout": "NCHW, white digit on black, MNIST-centred",
}
OUTPUT_SPEC: dict[str, Any] = {"name": OUTPUT_NAME, "shape": ["N", NUM_CLASSES], "dtype": "float32"}

# Metric keys every comparison row carries (the table, /models and the manifest read these).
METRIC_KEYS = (
    "accuracy",
    "macro_f1",
    "test_loss",
    "train_seconds",
    "images_per_second",
    "parameters",
    "realworld_accuracy",  # the real-world set's sealed split (training.realworld), the headline
    "realworld_dev_accuracy",  # its dev split, which choices were tuned on
    "ece_test",  # test split ECE at a temperature: training's fit in a comparison, the one served in a manifest
)


def softmax(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Probabilities as served: row-wise softmax of scores / temperature, in float64 (stable for large scores)."""
    import numpy as np  # here, not at the top: the CLI imports this module and its --help must stay fast

    z = np.asarray(scores, dtype=np.float64) / temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so that readers see either the old or the new content, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; the service may run as another user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    """Atomically write `obj` as indented JSON."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def read_json(path: Path) -> Any:
    """Read a JSON file, raising ValueError that names the file when it does not parse."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc


def validate_manifest(manifest: Any) -> dict[str, Any]:
    """Check the manifest's shape; raise ValueError naming the first problem."""
    if not isinstance(manifest, dict):
        raise ValueError("manifest must be a JSON object")
    if manifest.get("schema") != MANIFEST_SCHEMA:
        raise ValueError(f"manifest schema is {manifest.get('schema')!r}, expected {MANIFEST_SCHEMA!r}")
    models = manifest.get("models")
    if not isinstance(models, dict) or not models:
        raise ValueError("manifest has no models")
    for name, entry in models.items():
        for key in ("file", "sha256", "shipped", "max_batch", "metrics"):
            if key not in entry:
                raise ValueError(f"manifest entry {name!r} lacks {key!r}")
        if Path(entry["file"]).name != entry["file"]:
            raise ValueError(f"manifest entry {name!r} names a file outside exported/: {entry['file']!r}")
    comparison = manifest.get("comparison")  # optional: manifests from before atomic exports lack it
    if comparison is not None and (
        not isinstance(comparison, dict)
        or not isinstance(comparison.get("file"), str)
        or Path(comparison["file"]).name != comparison["file"]
        or not isinstance(comparison.get("sha256"), str)
    ):
        raise ValueError(
            f"manifest comparison must be {{'file': <name in exported/>, 'sha256': ...}}, not {comparison!r}"
        )
    if manifest.get("default") not in models:
        raise ValueError(f"manifest default {manifest.get('default')!r} is not among its models")
    return manifest


def comparison_entry(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's `comparison` ({file, sha256}), its file name kept inside the directory; older manifests
    name none and mean `comparison.json`, unchecked."""
    named = manifest.get("comparison") or {"file": "comparison.json"}
    return {**named, "file": Path(named["file"]).name}


def shipped_comparison(directory: Path) -> Path:
    """The comparison file that `directory`'s manifest names; `comparison.json` for older or missing manifests."""
    try:
        return Path(directory) / comparison_entry(read_json(Path(directory) / "manifest.json"))["file"]
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return Path(directory) / "comparison.json"


def comparison_rows(comparison: dict[str, Any]) -> list[dict[str, Any]]:
    """Flat table rows (one per model) of a stored comparison."""
    rows = []
    for entry in comparison.get("models", []):
        row = {"model": entry["model"], "status": entry.get("status", "ok")}
        row.update({k: entry.get("metrics", {}).get(k) for k in METRIC_KEYS})
        if entry.get("realworld"):  # per split; a file from before the split has one set, read as dev
            row["realworld_accuracy"] = split_accuracy(entry["realworld"], "sealed")
            row["realworld_dev_accuracy"] = split_accuracy(entry["realworld"], "dev")
        row["pretrained"] = entry.get("pretrained", False)
        row["profile"] = comparison.get("profile")
        if entry.get("status") == "failed":
            row["error"] = entry.get("error")
        rows.append(row)
    return rows


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


COMPARISON_COLUMNS = (
    "model",
    "test accuracy",
    "real-world sealed",
    "real-world dev",
    "macro-F1",
    "test loss",
    "ECE test",
    "train s",
    "images/s",
    "parameters",
    "pretrained",
    "profile",
)


def comparison_cells(comparison: dict[str, Any]) -> list[list[str]]:
    """The comparison table's cells, one row per model under COMPARISON_COLUMNS (Markdown and the CLI draw it)."""
    rows = []
    for r in comparison_rows(comparison):
        if r["status"] != "ok":
            rows.append([r["model"], f"failed: {r.get('error', '')}", *[""] * 9, str(r["profile"])])
            continue
        rows.append(
            [
                r["model"],
                _pct(r["accuracy"]),
                _pct(r["realworld_accuracy"]),
                _pct(r["realworld_dev_accuracy"]),
                f"{r['macro_f1']:.4f}",
                f"{r['test_loss']:.4f}",
                _pct(r["ece_test"]),
                f"{r['train_seconds']:.1f}",
                f"{r['images_per_second']:.0f}",
                f"{r['parameters']:,}",
                "yes" if r["pretrained"] else "no",
                str(r["profile"]),
            ]
        )
    return rows


def comparison_markdown(comparison: dict[str, Any]) -> str:
    """The comparison as a Markdown table, then the real-world accuracy per split and condition."""
    lines = ["| " + " | ".join(COMPARISON_COLUMNS) + " |", "|" + "---|" * len(COMPARISON_COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in comparison_cells(comparison)]
    return "\n".join(lines) + "\n" + realworld_markdown(comparison)
