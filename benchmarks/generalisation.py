"""Which training choices generalise: one model at a profile's settings, trained once per variant (overrides of its
registered Hparams), scored on MNIST's validation split and on the real-world development split per condition, with
the "unsure" flag's figures. Choices are made here, on dev; the sealed split is never read.

`--photos` also scores each variant on photos of MNIST validation digits read through the service's preprocessing:
`benchmarks.shadowed_digits`' faint thin-pen photos and bubble outlines (PHOTO_SEEDS), validation sets like dev
(dev's CNN is near its ceiling, so these say more about the CNN), and the same validation digits reduced to UCI's 8x8
grid and enlarged in every rendering of `benchmarks.real_digits` (`lowres`, as `benchmarks.flag_rule` reads them).
Their digits are MNIST validation digits, which no variant trains on.

Usage:  python -m benchmarks.generalisation --model cnn --variant base: --variant more:captures=0.3;epochs=6
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mnistserve.contracts import atomic_write_bytes, atomic_write_json, softmax
from training import robustness
from training.calibrate import calibrate
from training.config import make_config
from training.data import load_mnist
from training.environment import device_description, git_revision, versions
from training.loop import evaluate, fit, predict_scores
from training.metrics import fit_temperature, flag_stats, flag_threshold
from training.models import build_model
from training.run import builder_kwargs, with_captures

FLAG_BELOW = 0.7  # serving.store.UNCERTAIN_BELOW when this ran
PHOTO_SEEDS = {"faint": (7, 11), "hollow": (7, 11)}  # the seeds the preprocessing's choices read, not the fresh ones
PHOTO_COUNT = 300  # digits a seed, as benchmarks.shadowed_digits' default


def photo_sets() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Each style's photos, and the 8x8 digits, as the service makes their frames: (frames, labels, refused)."""
    from benchmarks import real_digits as R
    from benchmarks import shadowed_digits as S
    from serving.preprocess import from_bytes

    sets = {}
    for style, seeds in PHOTO_SEEDS.items():
        made = [S.build(PHOTO_COUNT, seed, style) for seed in seeds]
        images, refused = S.frames([b for m in made for b in m[0]], from_bytes)
        sets[style] = (images, np.concatenate([m[1] for m in made]), refused)
    digits, labels, _ = R.load_mnist_val()
    rendered = [R.frames(digits, rendering) for rendering in R.RENDERINGS]
    frames = np.concatenate([f for f, _ in rendered])
    # A refused image comes back as a zero frame (R.frames): counted wrong, as the photos' refusals are.
    refused = ~frames.reshape(len(frames), -1).any(1)
    sets["lowres"] = (frames, np.tile(labels, len(rendered)), refused)
    return sets


def photo_accuracy(model, cfg, sets: dict, temperature: float = 1.0) -> dict[str, dict[str, float]]:
    """Accuracy on each photo set (a photo the preprocessing refused counts as wrong), and the share of its photos
    answered wrongly with calibrated probability >= 0.9."""
    out = {}
    for style, (images, labels, refused) in sets.items():
        scores = predict_scores(model, torch.from_numpy(images).to(cfg.device), cfg)
        right = (scores.argmax(1) == labels) & ~refused
        sure = softmax(scores, temperature).max(1) >= 0.9
        out[style] = {"accuracy": float(right.mean()), "confident_wrong": float((~right & sure & ~refused).mean())}
    return out


def parse_variant(text: str) -> tuple[str, dict]:
    """'name:key=value;key=value' -> (name, overrides); values are JSON where they parse, else strings."""
    name, _, rest = text.partition(":")
    overrides = {}
    for item in filter(None, rest.split(";")):
        key, _, raw = item.partition("=")
        try:
            overrides[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key.strip()] = raw
    return name, overrides


def run_variant(model_name: str, overrides: dict, profile: str, device: str, data, rw, photos=None) -> dict:
    """Train one variant from the profile's seed; its validation, test and dev-split figures, calibrated."""
    build = overrides.pop("build", None)
    cfg = make_config(model_name, profile, device, **overrides)
    if build:
        cfg = type(cfg)(**{**cfg.to_dict(), "build": {**cfg.build, **build}})
    torch.manual_seed(cfg.seed)
    model = build_model(model_name, **builder_kwargs(cfg)).to(device)
    train = with_captures(data.train.subset(cfg.train_subset), cfg, data.cache_dir).to(device)
    val, test = data.val.to(device), data.test.to(device)
    t0 = time.perf_counter()
    result = fit(model, train, val, cfg)
    seconds = time.perf_counter() - t0
    model.load_state_dict(result.best_state)
    temperature = calibrate(model, val, cfg)["temperature"]
    scores = predict_scores(model, torch.from_numpy(rw.images).to(device), cfg)
    real = robustness.score(scores, rw, temperature)
    return {
        "settings": {k: v for k, v in cfg.to_dict().items() if k not in ("model", "profile", "device")},
        "overrides": overrides | ({"build": build} if build else {}),
        "train_images": len(train),
        "train_seconds": seconds,
        "val_accuracy": max(r.val_accuracy for r in result.history),
        "test_accuracy": evaluate(model, test, cfg).accuracy,
        "temperature": temperature,
        "dev": {k: real[k] for k in ("accuracy", "per_condition", "ece")},
        "flag": flag_stats(softmax(scores, temperature), rw.labels, FLAG_BELOW),
        "flag_for_80": flag_for_80(softmax(scores, temperature), rw.labels),
        "dev_fitted": dev_fitted(scores, rw.labels),
        **({"photos": photo_accuracy(model, cfg, photos, temperature)} if photos else {}),
    }


def dev_fitted(scores, labels) -> dict:
    """The same figures with the temperature fitted on the development split itself (an optimistic bound: fitted and
    measured on one set), to see whether a temperature alone could meet the flag's goals."""
    temperature = fit_temperature(scores, labels)
    p = softmax(scores, temperature)
    return {
        "temperature": temperature,
        "flag": flag_stats(p, labels, FLAG_BELOW),
        "flag_for_80": flag_for_80(p, labels),
    }


def flag_for_80(probabilities, labels) -> dict:
    """The threshold that catches 80% of the wrong answers (within a 10% budget of right ones) and what it does."""
    threshold = flag_threshold(probabilities, labels, catch=0.8, budget=0.1)  # as its column says, not the export's
    return {"threshold": threshold, **flag_stats(probabilities, labels, threshold)}


def _photo(row: dict, style: str, figure: str, digits: int) -> str:
    """One photo-set cell in %; "-" where the variant was not scored on it (or, before the figure existed, lacks it)."""
    value = row.get("photos", {}).get(style)
    if isinstance(value, float):  # reports before confident-wrong kept the accuracy alone
        value = {"accuracy": value}
    return "-" if value is None or figure not in value else f"{100 * value[figure]:.{digits}f}"


def markdown(payload: dict) -> str:
    """One row per variant: validation, test, dev overall and per condition, flag figures."""
    rows = payload["variants"]
    conditions = list(next(iter(rows.values()))["dev"]["per_condition"])
    styles = list(dict.fromkeys(s for r in rows.values() for s in r.get("photos", {})))
    lines = [
        f"# Generalisation: {payload['model']} at the {payload['profile']} profile's settings, variants on dev",
        "",
        f"- command: `{payload['command']}`",
        f"- git revision: {payload['git_revision']}",
        f"- device: {payload['device']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in payload["versions"].items()),
        f"- real-world development split: {payload['set']['images']} images, sha256 {payload['set']['sha256'][:16]}",
        f"- flag: top calibrated probability below {FLAG_BELOW}; 'confident wrong': wrong with probability >= 0.9",
        "",
        "| variant | overrides | train s | val | test | dev | "
        + " | ".join(conditions)
        + " | ECE | caught | flagged right | confident wrong | threshold for 80% | its flagged right |"
        + "".join(f" {s} photos |" for s in styles)
        + "".join(f" {s} photos wrong at >= 0.9 |" for s in styles),
        "|" + "---|" * (len(conditions) + 12 + 2 * len(styles)),
    ]
    for name, r in rows.items():
        f = r["flag"]
        lines.append(
            f"| {name} | `{json.dumps(r['overrides'])}` | {r['train_seconds']:.0f} | {100 * r['val_accuracy']:.2f} | "
            f"{100 * r['test_accuracy']:.2f} | {100 * r['dev']['accuracy']:.2f} | "
            + " | ".join(f"{100 * r['dev']['per_condition'][c]:.1f}" for c in conditions)
            + f" | {100 * r['dev']['ece']:.2f} | {100 * f['caught']:.0f}% | {100 * f['flagged_right']:.1f}% | "
            f"{100 * f['confident_wrong']:.2f}% | {r['flag_for_80']['threshold']:.3f} | "
            f"{100 * r['flag_for_80']['flagged_right']:.1f}% |"
            + "".join(f" {_photo(r, s, 'accuracy', 1)} |" for s in styles)
            + "".join(f" {_photo(r, s, 'confident_wrong', 2)} |" for s in styles)
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--variant", action="append", required=True, help="NAME:KEY=VALUE;KEY=VALUE (repeatable)")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--name", default=None, help="report name (default: the model's)")
    parser.add_argument("--out", type=Path, default=Path("reports/generalisation"))
    parser.add_argument("--photos", action="store_true", help="also score the faint and hollow photo sets")
    args = parser.parse_args()
    variants = dict(parse_variant(v) for v in args.variant)
    data = load_mnist()
    rw = robustness.load(robustness.PER_CONDITION[args.profile], data.cache_dir, split="dev")  # a choice: dev only
    stem = args.name or args.model
    photos = photo_sets() if args.photos else None
    payload = {
        "command": "python -m benchmarks.generalisation " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "model": args.model,
        "profile": args.profile,
        "git_revision": git_revision(),
        "device": device_description(args.device),
        "versions": versions(),
        "set": rw.info,
        "variants": {},
    }
    earlier = args.out / f"{stem}.json"
    if earlier.is_file():  # variants an earlier call measured on the same split are kept, not re-run
        old = json.loads(earlier.read_text())
        if old["set"]["sha256"] == rw.info["sha256"]:
            payload["variants"], payload["command"] = old["variants"], old["command"] + " ; " + payload["command"]
    for name, overrides in variants.items():
        if name in payload["variants"]:
            continue
        r = payload["variants"][name] = run_variant(
            args.model, dict(overrides), args.profile, args.device, data, rw, photos
        )
        print(
            f"{name}: val {100 * r['val_accuracy']:.2f}% dev {100 * r['dev']['accuracy']:.2f}% "
            f"{json.dumps({k: round(100 * v, 1) for k, v in r['dev']['per_condition'].items()})} flag {r['flag']} "
            f"photos {r.get('photos')}",
            flush=True,
        )
        # Written after every variant: a long comparison that is stopped keeps what it measured.
        atomic_write_json(args.out / f"{stem}.json", payload)
        atomic_write_bytes(args.out / f"{stem}.md", markdown(payload).encode())


if __name__ == "__main__":
    main()
