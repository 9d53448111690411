"""One training run: train the chosen models, evaluate each on the test split, store the comparison."""

from __future__ import annotations

import math
import os
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import torch

from mnistserve.contracts import COMPARISON_SCHEMA, atomic_write_json, read_json
from training import captures, robustness
from training.calibrate import calibrate, ece_before_after
from training.config import TrainConfig, make_config
from training.data import MnistData, Split
from training.environment import device_description, git_revision, versions
from training.loop import EpochRecord, evaluate, fit, predict_scores
from training.metrics import classification_metrics
from training.models import build_model, get_spec


class Reporter(Protocol):
    """What a run tells its caller (the CLI draws rich progress bars from it)."""

    def model_started(self, cfg: TrainConfig, total_batches: int) -> None: ...
    def batch(self, n: int) -> None: ...
    def epoch(self, record: EpochRecord) -> None: ...
    def model_finished(self, entry: dict) -> None: ...


class SilentReporter:
    """A reporter that reports nothing."""

    def model_started(self, cfg: TrainConfig, total_batches: int) -> None: ...
    def batch(self, n: int) -> None: ...
    def epoch(self, record: EpochRecord) -> None: ...
    def model_finished(self, entry: dict) -> None: ...


@dataclass(frozen=True)
class RunRequest:
    """Which models to train and how: the CLI's options, resolved."""

    models: tuple[str, ...]
    profile: str
    device: str
    seed: int = 0
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weights: str | None = None
    freeze_epochs: int | None = None
    compile: bool | None = None


def new_run_dir(runs_dir: Path, profile: str) -> Path:
    """A fresh, uniquely named directory for one run."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = runs_dir / f"{stamp}-{profile}-{os.getpid()}"
    run_dir.mkdir(parents=True)
    return run_dir


def builder_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """Keyword arguments for the model's builder under `cfg`."""
    kwargs = dict(cfg.build)
    if get_spec(cfg.model).transfer:
        kwargs["weights"] = cfg.weights
    return kwargs


def with_captures(train: Split, cfg: TrainConfig, cache_dir: Path) -> Split:
    """The training split plus `cfg.captures` x its size of captured, preprocessed digits drawn from it."""
    if cfg.captures <= 0:
        return train
    n = int(cfg.captures * len(train))
    images, labels = captures.load(
        train.images.numpy(), train.labels.numpy(), n, captures.parse(cfg.capture_kinds), cfg.seed, cache_dir
    )
    images, labels = (
        torch.cat([train.images, torch.from_numpy(images)]),
        torch.cat([train.labels, torch.from_numpy(labels)]),
    )
    return Split(images, labels)


def train_model(
    cfg: TrainConfig,
    data: MnistData,
    out_dir: Path,
    reporter: Reporter,
    resume: dict | None = None,
    realworld: dict[str, robustness.RealWorldSet] | None = None,
) -> dict:
    """Train one model, keep its best-validation checkpoint, calibrate it, report on test and the real-world splits."""
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest convolutions once
        torch.set_float32_matmul_precision("high")  # TF32 for what autocast leaves in float32
    spec = get_spec(cfg.model)
    model = build_model(cfg.model, **builder_kwargs(cfg)).to(device)  # fit() sets its memory format
    train = with_captures(data.train.subset(cfg.train_subset), cfg, data.cache_dir).to(device)  # sliced per batch
    val, test = data.val.subset(cfg.eval_subset).to(device), data.test.subset(cfg.eval_subset).to(device)
    reporter.model_started(cfg, cfg.epochs * math.ceil(len(train) / cfg.batch_size))
    out_dir.mkdir(parents=True, exist_ok=True)
    result = fit(
        model, train, val, cfg, on_batch=reporter.batch, on_epoch=reporter.epoch, checkpoint_dir=out_dir, resume=resume
    )
    model.load_state_dict(result.best_state)
    ev = evaluate(model, test, cfg)
    metrics = classification_metrics(ev.labels, ev.predictions)
    calibration = calibrate(model, val, cfg)
    temperature = calibration["temperature"]
    calibration["ece_test"] = ece_before_after(ev.scores, ev.labels, temperature)
    real = None
    if realworld:  # each split's ECE before -> after rides in its own result
        real = robustness.score_splits(
            lambda x: predict_scores(model, torch.from_numpy(x).to(device), cfg), realworld, temperature
        )
    build = {**builder_kwargs(cfg), **({"weights": "none"} if spec.transfer else {})}  # reload never re-downloads
    torch.save(
        {
            "model": result.best_state,
            "name": cfg.model,
            "build": build,
            "epoch": result.best_epoch,
            "args": cfg.to_dict(),
        },
        out_dir / "best.pt",
    )
    (out_dir / "last.pt").unlink(missing_ok=True)  # finished: the resume state is no longer needed
    return {
        "model": cfg.model,
        "status": "ok",
        "summary": spec.summary,
        "pretrained": bool(getattr(model, "pretrained", False)),
        "weights": getattr(model, "weights_source", "none"),
        "hyperparameters": cfg.to_dict(),
        "metrics": {
            "accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro_f1"],
            "test_loss": ev.loss,
            "loss_kind": spec.loss_kind,
            "train_seconds": result.train_seconds,
            "images_per_second": result.images_seen / max(result.step_seconds, 1e-9),
            "parameters": sum(p.numel() for p in model.parameters()),
            "best_epoch": result.best_epoch,
            "test_images": len(test),
            "realworld_accuracy": real["sealed"]["accuracy"] if real and "sealed" in real else None,
            "realworld_dev_accuracy": real["dev"]["accuracy"] if real and "dev" in real else None,
            "ece_test": calibration["ece_test"]["after"],
        },
        "realworld": real,
        "calibration": calibration,
        "history": [vars(r) for r in result.history],
        "confusion_matrix": metrics["confusion_matrix"],
        "checkpoint": f"{cfg.model}/best.pt",
    }


def _configs(req: RunRequest) -> list[TrainConfig]:
    overrides = {
        "seed": req.seed,
        "epochs": req.epochs,
        "batch_size": req.batch_size,
        "lr": req.lr,
        "weights": req.weights,
        "freeze_epochs": req.freeze_epochs,
        "compile": req.compile,
    }
    return [make_config(name, req.profile, req.device, **overrides) for name in req.models]


def run_training(
    req: RunRequest, data: MnistData, runs_dir: Path, reporter: Reporter | None = None, resume_dir: Path | None = None
) -> Path:
    """Train every requested model into a run directory (or finish an interrupted one) and store the comparison."""
    reporter = reporter or SilentReporter()
    if resume_dir is not None:
        run_dir, header = resume_dir, read_json(resume_dir / "run.json")
        configs = [TrainConfig(**settings) for settings in header["settings"].values()]
    else:
        configs = _configs(req)  # bad options fail here, before any work
        run_dir = new_run_dir(runs_dir, req.profile)
        header = {
            "schema": COMPARISON_SCHEMA,
            "run_id": run_dir.name,
            "complete": False,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "profile": req.profile,
            "device": device_description(req.device),
            "versions": versions(),
            "git_revision": git_revision(),
            "seed": req.seed,
            "data": data.info(),
            "settings": {c.model: c.to_dict() for c in configs},
        }
        atomic_write_json(run_dir / "run.json", header)
    realworld = robustness.load_splits(robustness.PER_CONDITION[configs[0].profile], data.cache_dir) if configs else {}
    entries = []
    for cfg in configs:
        result_file = run_dir / cfg.model / "result.json"
        if result_file.exists():  # finished before an interruption: keep it (train --resume)
            entries.append(read_json(result_file))
            continue
        last = run_dir / cfg.model / "last.pt"
        resume = torch.load(last, map_location=cfg.device, weights_only=True) if last.exists() else None
        t0 = time.perf_counter()
        try:
            entry = train_model(cfg, data, run_dir / cfg.model, reporter, resume, realworld)
        except (RuntimeError, ValueError, OSError, torch.cuda.OutOfMemoryError) as exc:
            # One model's failure (out of memory, say) is recorded; the others still run.
            entry = {
                "model": cfg.model,
                "status": "failed",
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=5),
                "seconds": time.perf_counter() - t0,
                "hyperparameters": cfg.to_dict(),
            }
        atomic_write_json(result_file, entry)
        entries.append(entry)
        reporter.model_finished(entry)
    comparison = {
        **header,
        "complete": True,
        "models": entries,
        "realworld": robustness.sets_info(realworld),
    }
    atomic_write_json(run_dir / "comparison.json", comparison)
    return run_dir


def publish_latest(runs_dir: Path, run_dir: Path) -> None:
    """Atomically point runs/latest at a complete run (a symlink swapped by rename)."""
    tmp = runs_dir / f".latest-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_dir.name, target_is_directory=True)
    os.replace(tmp, runs_dir / "latest")


def resolve_run(runs_dir: Path, run: Path | None = None) -> Path:
    """The run directory to read: `run` if given, else runs/latest; errors say what is missing."""
    run_dir = Path(run) if run else runs_dir / "latest"
    if not (run_dir / "comparison.json").is_file():
        hint = "train first: mnistserve train --all" if run is None else "is it a complete run directory?"
        raise FileNotFoundError(f"no comparison at {run_dir / 'comparison.json'} ({hint})")
    return run_dir.resolve()


def latest_incomplete_run(runs_dir: Path) -> Path | None:
    """The newest run directory without a comparison.json (an interrupted run), if any."""
    candidates = [
        p
        for p in runs_dir.glob("*")
        if p.is_dir() and not p.is_symlink() and (p / "run.json").exists() and not (p / "comparison.json").exists()
    ]
    return max(candidates, key=lambda p: p.stat().st_mtime, default=None)
