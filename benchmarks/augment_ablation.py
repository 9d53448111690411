"""What each augmentation part buys on the real-world set: the CNN at the cpu profile's settings, trained with
no augmentation, with all parts, with each part left out, and with extras; plus the two ways to fit its temperature.
Usage:  python -m benchmarks.augment_ablation [--out reports/augment] [--model cnn] [--variants none,all,...]
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

import torch

from mnistserve.contracts import atomic_write_bytes, atomic_write_json
from training import robustness
from training.augment import DEFAULT, parse
from training.calibrate import ece_before_after, validation_scores
from training.config import make_config
from training.data import load_mnist
from training.environment import device_description, git_revision, versions
from training.loop import evaluate, fit, predict_scores
from training.metrics import fit_temperature, nll
from training.models import build_model


def variants() -> dict[str, str]:
    """Variant name -> augmentation spec: none, all, all but one part, all plus outline."""
    parts = parse(DEFAULT)
    out = {"none": "none", "all": DEFAULT}
    out.update({f"all-{p}": ",".join(q for q in parts if q != p) for p in parts})
    out["all+outline"] = DEFAULT + ",outline"
    return out


def run_variant(model_name: str, spec: str, data, rw: robustness.RealWorldSet, epochs: int | None = None) -> dict:
    """Train one variant from the same seed; score it on test and the real-world set, both temperatures."""
    cfg = make_config(model_name, "cpu", "cpu", augment=spec, epochs=epochs)
    torch.manual_seed(cfg.seed)
    model = build_model(model_name, **cfg.build)
    train, val, test = data.train.subset(cfg.train_subset), data.val, data.test
    t0 = time.perf_counter()
    result = fit(model, train, val, cfg)
    seconds = time.perf_counter() - t0
    model.load_state_dict(result.best_state)
    ev = evaluate(model, test, cfg)
    rw_scores = predict_scores(model, torch.from_numpy(rw.images), cfg)
    both, both_labels = validation_scores(model, val, cfg)
    half = len(both) // 2  # the first half is the clean validation split
    temps = {
        "val+augmented": fit_temperature(both, both_labels),
        "val": fit_temperature(both[:half], both_labels[:half]),
    }
    real = robustness.score(rw_scores, rw)
    return {
        "augment": spec,
        "epochs": cfg.epochs,
        "train_seconds": seconds,
        "test_accuracy": ev.accuracy,
        "realworld_accuracy": real["accuracy"],
        "per_condition": real["per_condition"],
        "calibration": {
            k: {
                "temperature": t,
                "val_nll": nll(both, both_labels, t),
                "ece_test": ece_before_after(ev.scores, ev.labels, t),
                "ece_realworld": ece_before_after(rw_scores, rw.labels, t),
            }
            for k, t in temps.items()
        },
    }


def markdown(payload: dict) -> str:
    """The report: one row per variant, per-condition columns, then the calibration comparison."""
    rows = payload["variants"]
    conditions = list(next(iter(rows.values()))["per_condition"])
    lines = [
        f"# Augmentation ablation: {payload['model']} at the cpu profile's settings",
        "",
        f"- command: `{payload['command']}`",
        f"- git revision: {payload['git_revision']}",
        f"- device: {payload['device']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in payload["versions"].items()),
        f"- real-world set: {payload['set']['images']} images, seed {payload['set']['seed']}, "
        f"sha256 {payload['set']['sha256'][:16]}",
        "",
        "| variant | parts | epochs | train s | MNIST test | real-world | " + " | ".join(conditions) + " |",
        "|" + "---|" * (len(conditions) + 6),
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['augment']} | {r.get('epochs', '')} | {r['train_seconds']:.0f} | "
            f"{100 * r['test_accuracy']:.2f} | "
            f"{100 * r['realworld_accuracy']:.2f} | "
            + " | ".join(f"{100 * r['per_condition'][c]:.1f}" for c in conditions)
            + " |"
        )
    lines += [
        "",
        "Temperature fitted on the clean validation split vs clean + augmented (ECE, 15 bins):",
        "",
        "| variant | fitted on | T | ECE test before -> after | ECE real-world before -> after |",
        "|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        for how, c in r["calibration"].items():
            lines.append(
                f"| {name} | {how} | {c['temperature']:.3f} | {100 * c['ece_test']['before']:.2f}% -> "
                f"{100 * c['ece_test']['after']:.2f}% | {100 * c['ece_realworld']['before']:.2f}% -> "
                f"{100 * c['ece_realworld']['after']:.2f}% |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("reports/augment"))
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--variants", default=None, help="comma list of variant names (default: all of them)")
    parser.add_argument(
        "--extra",
        action="append",
        default=None,
        metavar="NAME=PARTS",
        help="one more variant, e.g. 'no-noise=stroke,affine,elastic,blur' (repeatable)",
    )
    parser.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    args = parser.parse_args()
    chosen = variants()
    if args.variants:
        chosen = {k: v for k, v in chosen.items() if k in args.variants.split(",")}
    for item in args.extra or []:
        name, _, spec = item.partition("=")
        chosen[name] = ",".join(parse(spec))  # an unknown part fails here, before any training
    data = load_mnist()
    rw = robustness.load(robustness.PER_CONDITION["cpu"], data.cache_dir, split="dev")  # a choice: dev only
    flags = [(k, item) for k, v in vars(args).items() if v is not None for item in (v if isinstance(v, list) else [v])]
    payload = {
        "command": "python -m benchmarks.augment_ablation "
        + " ".join(f"--{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in flags),
        "model": args.model,
        "git_revision": git_revision(),
        "device": device_description("cpu"),
        "versions": versions(),
        "set": rw.info,
        "variants": {},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    earlier = args.out / f"ablation-{args.model}.json"
    if earlier.is_file():  # variants measured by an earlier call on the same set are kept, not re-run
        old = json.loads(earlier.read_text())
        if old["set"]["sha256"] == rw.info["sha256"]:
            payload["variants"] = old["variants"]
            payload["command"] = old["command"] + " ; " + payload["command"]
    for name, spec in chosen.items():
        if args.epochs:
            name = f"{name}@{args.epochs}ep"
        if name in payload["variants"]:
            continue
        payload["variants"][name] = run_variant(args.model, spec, data, rw, args.epochs)
        r = payload["variants"][name]
        print(
            f"{name}: test {100 * r['test_accuracy']:.2f}%, real-world {100 * r['realworld_accuracy']:.2f}% "
            f"{json.dumps({k: round(100 * v, 1) for k, v in r['per_condition'].items()})}",
            flush=True,
        )
        # Written after every variant: a long ablation that is stopped keeps what it measured.
        atomic_write_json(args.out / f"ablation-{args.model}.json", payload)
        atomic_write_bytes(args.out / f"ablation-{args.model}.md", markdown(payload).encode())


if __name__ == "__main__":
    main()
