"""The real-world set as the models see it: generated images through the service's own preprocessing.

`training.realworld` draws the images (handwriting, drawings, photos; never MNIST) in two splits; here each
one goes through `serving.preprocess.from_image`, exactly as a client's upload would, and the (N, 1, 28, 28)
result is cached per split so that every model of a run, and the exporter, score the same inputs. Evaluation
only: no model is ever trained on it. Every choice reads the dev split (`training.realworld.CHOICES`); the
sealed split is the headline figure and decides nothing.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnistserve.contracts import atomic_write_bytes, atomic_write_json, softmax
from mnistserve.realworld import HEADLINE, REALWORLD_SPLITS, SPLIT_TITLES
from serving.preprocess import ServingError, from_image
from training.metrics import expected_calibration_error, flag_stats
from training.realworld.splits import get_split

SEED = get_split("dev").seed  # fixed per split (splits.py): the set is the same for every run and every model
# Images per condition by profile: enough for a +-1.5 pt figure per condition on the cpu profile.
PER_CONDITION = {"smoke": 10, "cpu": 200, "gpu": 300}
_SOURCES = ("training/realworld", "serving/preprocess.py", "serving/ink.py", "serving/regions.py")  # what makes the set


@dataclass(frozen=True)
class RealWorldSet:
    """One split, preprocessed: images (N, 1, 28, 28) float32, labels (N,), condition names (N,), how it was made."""

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


def build(per_condition: int, split: str = "dev", seed: int | None = None) -> RealWorldSet:
    """Generate a split and preprocess every image as the service does (an unreadable one is an error)."""
    from training.realworld import generate

    seed = get_split(split).seed if seed is None else seed
    images, labels, conditions, unread = [], [], [], 0
    for sample in generate(per_condition, seed=seed, split=split):
        try:
            images.append(from_image(sample.image))
        except ServingError as exc:  # the service would answer 4xx: count it as a miss, not a crash
            images.append(np.zeros((1, 28, 28), np.float32))
            unread += 1
            if split == "dev":  # which sealed images fail is withheld: a fix must not be tuned on them
                print(f"realworld {split}: {sample.condition}/{sample.source} label {sample.label}: {exc}")
        labels.append(sample.label)
        conditions.append(sample.condition)
    if unread and split != "dev":
        print(f"realworld {split}: {unread} images the preprocessing could not read (counted as misses)")
    x = np.stack(images).astype(np.float32)
    info = {
        "split": split,
        "seed": seed,
        "per_condition": per_condition,
        "images": len(labels),
        "code": _code_digest(),
        "sha256": hashlib.sha256(x.tobytes() + np.asarray(labels, np.int64).tobytes()).hexdigest(),
    }
    return RealWorldSet(x, np.asarray(labels, np.int64), np.asarray(conditions), info)


def load(per_condition: int, cache_dir: Path, split: str = "dev", seed: int | None = None) -> RealWorldSet:
    """A split from `cache_dir` when the code that made it is unchanged, else built and cached."""
    seed = get_split(split).seed if seed is None else seed
    path = cache_dir / f"realworld-{split}-{seed}-{per_condition}-{_code_digest()}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            info = {k[5:]: z[k].item() for k in z.files if k.startswith("info_")}
            return RealWorldSet(z["images"], z["labels"], z["conditions"], info)
    made = build(per_condition, split, seed)
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


def load_splits(
    per_condition: int, cache_dir: Path, splits: tuple[str, ...] = REALWORLD_SPLITS
) -> dict[str, RealWorldSet]:
    """Each requested split (the headline, sealed, first), loaded or built."""
    return {name: load(per_condition, cache_dir, name) for name in splits}


def sets_info(sets: dict[str, RealWorldSet]) -> dict:
    """What a comparison or manifest says of the splits it was measured on: each split's make, the conditions."""
    return {"headline": HEADLINE, **{name: rw.info for name, rw in sets.items()}, "conditions": describe()}


def describe() -> dict[str, str]:
    """Each condition of the set and what it stands for."""
    from training.realworld import describe as conditions

    return conditions()


def score(scores: np.ndarray, rw: RealWorldSet, temperature: float = 1.0, uncertain_below: float | None = None) -> dict:
    """Accuracy overall and per condition, ECE (15 bins) before and after the temperature, and what the "unsure"
    flag at `uncertain_below` catches and costs (when given)."""
    predictions = scores.argmax(1)
    correct = predictions == rw.labels
    per_condition = {str(c): float(correct[rw.conditions == c].mean()) for c in dict.fromkeys(rw.conditions.tolist())}
    flag = (
        {}
        if uncertain_below is None
        else {
            "flag": {
                "uncertain_below": uncertain_below,
                **flag_stats(softmax(scores, temperature), rw.labels, uncertain_below),
            }
        }
    )
    return {
        **flag,
        "accuracy": float(correct.mean()),
        "per_condition": per_condition,
        "worst_condition": min(per_condition, key=per_condition.get),
        "ece": expected_calibration_error(softmax(scores, temperature), rw.labels),
        "ece_uncalibrated": expected_calibration_error(softmax(scores), rw.labels),
        "images": len(rw),
        "set": rw.info,
    }


def score_splits(
    predict, sets: dict[str, RealWorldSet], temperature: float = 1.0, uncertain_below: float | None = None
) -> dict[str, dict]:
    """`score` on each split, `predict` mapping its images (N, 1, 28, 28) to scores (N, 10)."""
    return {name: score(predict(rw.images), rw, temperature, uncertain_below) for name, rw in sets.items()}


def evaluate_exported(directory: Path, sets: dict[str, RealWorldSet]) -> dict[str, dict]:
    """Each served model of an export on each split, through onnxruntime and calibrated probabilities as served."""
    from serving.store import ModelStore

    store = ModelStore(directory)
    results = {}
    for name, served in store.models.items():
        results[name] = {
            "version": served.version,
            "sha256": served.entry["sha256"],
            "temperature": served.temperature,
            "run_id": served.entry.get("run_id"),
            "splits": score_splits(lambda x, s=served: s.run(x)[0], sets, served.temperature, served.uncertain_below),
        }
    return results


def _split_table(results: dict[str, dict], split: str, conditions: list[str]) -> list[str]:
    """One split's Markdown table: each model's accuracy overall and per condition, ECE before -> after."""
    lines = [
        f"### {SPLIT_TITLES[split].capitalize()}",
        "",
        "| model | sha256 | temperature | all | " + " | ".join(conditions) + " | ECE |",
        "|" + "---|" * (len(conditions) + 5),
    ]
    for name, r in results.items():
        s = r["splits"][split]
        lines.append(
            f"| {name} | {r['sha256'][:12]} | {r['temperature']:.3f} | {100 * s['accuracy']:.2f}% | "
            + " | ".join(f"{100 * s['per_condition'][c]:.1f}" for c in conditions)
            + f" | {100 * s['ece_uncalibrated']:.2f}% -> {100 * s['ece']:.2f}% |"
        )
    return [*lines, ""]


def _flag_table(results: dict[str, dict], splits: list[str]) -> list[str]:
    """What the "unsure" flag catches and costs on each split, and how many answers are wrong with confidence."""
    lines = [
        "### Knowing when it is wrong",
        "",
        "The manifest's `uncertain_below` (chosen on the dev split) applied to each split's calibrated probabilities: "
        "wrong answers it flags (caught), right answers it flags, and wrong answers with probability >= 0.9, "
        "as a share of all images.",
        "",
        "| model | split | uncertain below | wrong | caught | right ones flagged | wrong at >= 0.9 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        for split in splits:
            f = r["splits"][split].get("flag")
            if f:
                lines.append(
                    f"| {name} | {split} | {f['uncertain_below']:.4f} | {100 * f['wrong']:.2f}% | "
                    f"{100 * f['caught']:.1f}% | {100 * f['flagged_right']:.1f}% | {100 * f['confident_wrong']:.2f}% |"
                )
    return [*lines, ""]


def write_report(
    results: dict[str, dict], sets: dict[str, RealWorldSet], out: Path, *, command: str, gallery: bool
) -> Path:
    """robustness.json and robustness.md (device, versions, git revision, model checksums), plots, galleries."""
    from training.environment import device_description, git_revision, versions
    from training.report import plot_realworld

    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "command": command,
        "git_revision": git_revision(),
        "device": device_description("cpu"),
        "versions": versions(),
        "sets": sets_info(sets),
        "models": results,
    }
    atomic_write_json(out / "robustness.json", payload)
    rows = {
        "models": [
            {"model": n, "status": "ok", "metrics": {"accuracy": float("nan")}, "realworld": r["splits"]}
            for n, r in results.items()
        ],
        "profile": "exported",
    }
    plot_realworld(rows, out / "robustness.png", with_test=False)
    conditions = list(describe())
    lines = [
        f"# Real-world set: exported models as served ({', '.join(f'{n} {len(rw)} images' for n, rw in sets.items())})",
        "",
        f"- command: `{command}`",
        f"- git revision: {payload['git_revision']}",
        f"- device: {payload['device']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in payload["versions"].items()),
        *(
            f"- {n} split: seed {rw.info['seed']}, {rw.info['per_condition']} per condition, "
            f"sha256 {rw.info['sha256'][:16]}"
            for n, rw in sets.items()
        ),
        "",
    ]
    for split in (s for s in REALWORLD_SPLITS if s in sets):
        lines += _split_table(results, split, conditions)
    lines += _flag_table(results, [s for s in REALWORLD_SPLITS if s in sets])
    lines += ["Conditions:", ""] + [f"- `{c}`: {text}" for c, text in describe().items()]
    lines += ["", "![accuracy by condition](robustness.png)"]
    if gallery:
        from training.realworld import write_galleries

        for path in write_galleries(out, 4, tuple(sets)):
            lines += ["", f"Four raw images per condition of {path.stem[8:]}, as a client would send them:", ""]
            lines += [f"![{path.stem}]({path.name})"]
    path = out / "robustness.md"
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    return path
