"""The real-world set as the models see it: generated images through the service's own preprocessing.

`training.realworld` draws the images (handwriting, drawings, photos; never MNIST); here each one goes
through `serving.preprocess.from_image`, exactly as a client's upload would, and the (N, 1, 28, 28) result
is cached so that every model of a run, and the exporter, score the same inputs. Evaluation only: no
model is ever trained on it.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnistserve.contracts import atomic_write_bytes, atomic_write_json, softmax
from serving.preprocess import ServingError, from_image
from training.metrics import expected_calibration_error

SEED = 20261201  # fixed: the set is the same for every run and every model
# Images per condition by profile: enough for a +-1.5 pt figure per condition on the cpu profile.
PER_CONDITION = {"smoke": 10, "cpu": 200, "gpu": 300}
_SOURCES = ("training/realworld", "serving/preprocess.py", "serving/ink.py", "serving/regions.py")  # what makes the set


@dataclass(frozen=True)
class RealWorldSet:
    """Preprocessed images (N, 1, 28, 28) float32, labels (N,), condition names (N,), and how it was made."""

    images: np.ndarray
    labels: np.ndarray
    conditions: np.ndarray
    info: dict

    def __len__(self) -> int:
        return len(self.labels)


def _code_digest() -> str:
    """SHA-256 over the generator's and the preprocessing's source: a change to either rebuilds the cache."""
    from serving.preprocess import SOURCES  # every module of the preprocessing, as serving lists them

    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for rel in dict.fromkeys((*_SOURCES, *SOURCES)):
        path = root / rel
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.is_file() else []
        for f in files:
            digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def build(per_condition: int, seed: int = SEED) -> RealWorldSet:
    """Generate the set and preprocess every image as the service does (an unreadable one is an error)."""
    from training.realworld import generate

    images, labels, conditions = [], [], []
    for sample in generate(per_condition, seed=seed):
        try:
            images.append(from_image(sample.image))
        except ServingError as exc:  # the service would answer 4xx: count it as a miss, not a crash
            images.append(np.zeros((1, 28, 28), np.float32))
            print(f"realworld: {sample.condition}/{sample.source} label {sample.label}: {exc}")
        labels.append(sample.label)
        conditions.append(sample.condition)
    x = np.stack(images).astype(np.float32)
    info = {
        "seed": seed,
        "per_condition": per_condition,
        "images": len(labels),
        "code": _code_digest(),
        "sha256": hashlib.sha256(x.tobytes() + np.asarray(labels, np.int64).tobytes()).hexdigest(),
    }
    return RealWorldSet(x, np.asarray(labels, np.int64), np.asarray(conditions), info)


def load(per_condition: int, cache_dir: Path, seed: int = SEED) -> RealWorldSet:
    """The set from `cache_dir` when the code that made it is unchanged, else built and cached."""
    path = cache_dir / f"realworld-{seed}-{per_condition}-{_code_digest()}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            info = {k[5:]: z[k].item() for k in z.files if k.startswith("info_")}
            return RealWorldSet(z["images"], z["labels"], z["conditions"], info)
    made = build(per_condition, seed)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        images=made.images,
        labels=made.labels,
        conditions=made.conditions,
        **{f"info_{k}": np.asarray(v) for k, v in made.info.items()},
    )
    atomic_write_bytes(path, buffer.getvalue())
    return made


def describe() -> dict[str, str]:
    """Each condition of the set and what it stands for."""
    from training.realworld import describe as conditions

    return conditions()


def score(scores: np.ndarray, rw: RealWorldSet, temperature: float = 1.0) -> dict:
    """Accuracy overall and per condition, and ECE (15 bins) at the given temperature."""
    predictions = scores.argmax(1)
    correct = predictions == rw.labels
    per_condition = {str(c): float(correct[rw.conditions == c].mean()) for c in dict.fromkeys(rw.conditions.tolist())}
    return {
        "accuracy": float(correct.mean()),
        "per_condition": per_condition,
        "worst_condition": min(per_condition, key=per_condition.get),
        "ece": expected_calibration_error(softmax(scores, temperature), rw.labels),
        "images": len(rw),
        "set": rw.info,
    }


def evaluate_exported(directory: Path, rw: RealWorldSet) -> dict[str, dict]:
    """Each served model of an export on the set, through onnxruntime and calibrated probabilities as served."""
    from serving.store import ModelStore

    store = ModelStore(directory)
    results = {}
    for name, served in store.models.items():
        scores, _ = served.run(rw.images)
        result = score(scores, rw, served.temperature)
        result.update(
            version=served.version,
            sha256=served.entry["sha256"],
            temperature=served.temperature,
            run_id=served.entry.get("run_id"),
            ece_uncalibrated=expected_calibration_error(softmax(scores), rw.labels),
        )
        results[name] = result
    return results


def write_report(results: dict[str, dict], rw: RealWorldSet, out: Path, *, command: str, gallery: bool) -> Path:
    """robustness.json and robustness.md (device, versions, git revision, model checksums), a bar plot, a gallery."""
    from training.environment import device_description, git_revision, versions
    from training.report import plot_realworld

    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "command": command,
        "git_revision": git_revision(),
        "device": device_description("cpu"),
        "versions": versions(),
        "set": rw.info,
        "conditions": describe(),
        "models": results,
    }
    atomic_write_json(out / "robustness.json", payload)
    rows = {
        "models": [
            {"model": n, "status": "ok", "metrics": {"accuracy": float("nan")}, "realworld": r}
            for n, r in results.items()
        ],
        "profile": "exported",
    }
    plot_realworld(rows, out / "robustness.png", with_test=False)
    conditions = list(describe())
    lines = [
        f"# Real-world set: exported models as served ({len(rw)} images)",
        "",
        f"- command: `{command}`",
        f"- git revision: {payload['git_revision']}",
        f"- device: {payload['device']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in payload["versions"].items()),
        f"- set: seed {rw.info['seed']}, {rw.info['per_condition']} per condition, sha256 {rw.info['sha256'][:16]}",
        "",
        "| model | sha256 | temperature | all | " + " | ".join(conditions) + " | ECE |",
        "|" + "---|" * (len(conditions) + 5),
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['sha256'][:12]} | {r['temperature']:.3f} | {100 * r['accuracy']:.2f}% | "
            + " | ".join(f"{100 * r['per_condition'][c]:.1f}" for c in conditions)
            + f" | {100 * r['ece_uncalibrated']:.2f}% -> {100 * r['ece']:.2f}% |"
        )
    lines += ["", "Conditions:", ""] + [f"- `{c}`: {text}" for c, text in describe().items()]
    lines += ["", "![accuracy by condition](robustness.png)"]
    if gallery:
        from training.realworld import generate, save_gallery

        save_gallery(list(generate(4, seed=rw.info["seed"])), out / "gallery.png")
        lines += ["", "Four raw images per condition, as a client would send them:", "", "![gallery](gallery.png)"]
    path = out / "robustness.md"
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    return path
