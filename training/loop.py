"""The training loop as plain functions: `train_one_epoch`, `evaluate`, `fit`."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.augment import augment, parse
from training.config import TrainConfig
from training.data import Split

OnBatch = Callable[[int], None]


@dataclass
class EpochRecord:
    """What one epoch produced."""

    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    seconds: float  # the whole epoch, validation included
    lr: float
    train_seconds: float = 0.0  # the training steps alone


@dataclass
class EvalResult:
    """Loss, accuracy, predictions and softmax-free scores over one split."""

    loss: float
    accuracy: float
    predictions: np.ndarray
    labels: np.ndarray
    scores: np.ndarray | None = None  # (N, 10) float32, for calibration


@dataclass
class FitResult:
    """History, the best epoch (by validation accuracy), its weights and timing."""

    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    best_state: dict | None = None
    train_seconds: float = 0.0
    images_seen: int = 0
    step_seconds: float = 0.0

    def to_state(self) -> dict:
        """Plain tensors and numbers only, so checkpoints load with `weights_only=True`."""
        return {
            "history": [vars(r) for r in self.history],
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "train_seconds": self.train_seconds,
            "images_seen": self.images_seen,
            "step_seconds": self.step_seconds,
        }

    @classmethod
    def from_state(cls, state: dict) -> FitResult:
        """Inverse of `to_state`."""
        return cls(**{**state, "history": [EpochRecord(**r) for r in state["history"]]})


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> the model contract's float32 (N, 1, 28, 28) in [0, 1]."""
    return images.unsqueeze(1).float().div_(255.0)


def model_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0, scores: torch.Tensor | None = None
) -> torch.Tensor:
    """A model's own loss when it defines one (Faster R-CNN's detection losses), else cross-entropy of
    `scores` (computed here when not given)."""
    if hasattr(model, "loss"):
        return model.loss(x, y)
    scores = model(x) if scores is None else scores
    return F.cross_entropy(scores.float(), y, label_smoothing=label_smoothing)


@functools.cache
def compiled_loss() -> Callable[..., torch.Tensor]:
    """`model_loss` through torch.compile, made once: its cache of compiled graphs then lives across epochs."""
    return torch.compile(model_loss)


def autocast(cfg: TrainConfig, device: torch.device):
    """bf16 autocast (no loss scaler needed) when the config asks for it, else plain float32."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if cfg.amp else nullcontext()


def train_one_epoch(
    model: nn.Module,
    split: Split,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    cfg: TrainConfig,
    generator: torch.Generator,
    on_batch: OnBatch | None = None,
) -> tuple[float, int]:
    """One pass over `split` (already on the device) in shuffled batches; returns (mean loss, images)."""
    model.train()
    device = split.images.device
    order = torch.randperm(len(split), device=device, generator=generator)
    total, seen = torch.zeros((), device=device), 0
    parts = parse(cfg.augment)
    loss_of = compiled_loss() if cfg.compile else model_loss
    for start in range(0, len(order), cfg.batch_size):
        idx = order[start : start + cfg.batch_size]
        x, y = to_input(split.images[idx]), split.labels[idx]
        if parts:
            x = augment(x, parts, generator, y)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(cfg, device):
            loss = loss_of(model, x, y, cfg.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += loss.detach() * len(idx)  # stays on the device: no sync per batch
        seen += len(idx)
        if on_batch:
            on_batch(len(idx))
    return float(total) / max(seen, 1), seen


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, cfg: TrainConfig, batch_size: int | None = None) -> EvalResult:
    """Loss (the model's own when it has one), accuracy and predictions over `split`."""
    model.eval()
    device = split.images.device
    preds, all_scores, loss_sum = [], [], torch.zeros((), device=device)
    bs = batch_size or max(cfg.batch_size, 256)
    for start in range(0, len(split), bs):
        x, y = to_input(split.images[start : start + bs]), split.labels[start : start + bs]
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(cfg, device):
            scores = model(x).float()
            loss = model_loss(model, x, y, scores=scores)
        loss_sum += loss.float() * len(y)
        preds.append(scores.argmax(1))
        all_scores.append(scores)
    predictions = torch.cat(preds).cpu().numpy()
    labels = split.labels.cpu().numpy()
    return EvalResult(
        float(loss_sum) / len(split),
        float((predictions == labels).mean()),
        predictions,
        labels,
        torch.cat(all_scores).cpu().numpy(),
    )


@torch.no_grad()
def predict_scores(model: nn.Module, x: torch.Tensor, cfg: TrainConfig, batch_size: int = 256) -> np.ndarray:
    """(N, 10) float32 scores of float inputs (N, 1, 28, 28) already on the model's device."""
    model.eval()
    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        if cfg.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast(cfg, x.device):
            out.append(model(xb).float())
    return torch.cat(out).cpu().numpy()


def set_frozen(model: nn.Module, frozen: bool) -> None:
    """Freeze or thaw a transfer model's pretrained feature extractor (no-op for other models)."""
    for p in getattr(model, "feature_parameters", lambda: [])():
        p.requires_grad_(not frozen)


def save_checkpoint(path: Path, payload: dict) -> None:
    """Save a checkpoint dict atomically (tmp file + rename)."""
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def fit(
    model: nn.Module,
    train: Split,
    val: Split,
    cfg: TrainConfig,
    *,
    on_batch: OnBatch | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    checkpoint_dir: Path | None = None,
    resume: dict | None = None,
) -> FitResult:
    """Train for cfg.epochs with AdamW and a one-cycle schedule, keeping the best-validation weights."""
    device = train.images.device
    if cfg.channels_last:  # weights in the inputs' layout, or every convolution converts back and forth
        model.to(memory_format=torch.channels_last)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    # fused: one kernel for the whole update; VGG16's step on 2 CPU cores: 680 -> 78 ms (reports/train_speed/).
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    steps = cfg.epochs * math.ceil(len(train) / cfg.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=steps, pct_start=0.2)
    result, first_epoch, best_acc = FitResult(), 1, -1.0
    if resume:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["lr_scheduler"])
        generator.set_state(resume["generator"].cpu())  # generator states are CPU byte tensors
        result = FitResult.from_state(resume["fit"])
        first_epoch = resume["epoch"] + 1
        best_acc = max((r.val_accuracy for r in result.history), default=-1.0)
    start = time.perf_counter() - result.train_seconds
    for epoch in range(first_epoch, cfg.epochs + 1):
        set_frozen(model, epoch <= cfg.freeze_epochs)
        t0 = time.perf_counter()
        train_loss, seen = train_one_epoch(model, train, optimizer, scheduler, cfg, generator, on_batch)
        step_time = time.perf_counter() - t0
        result.step_seconds += step_time
        result.images_seen += seen
        ev = evaluate(model, val, cfg)
        record = EpochRecord(
            epoch, train_loss, ev.loss, ev.accuracy, time.perf_counter() - t0, scheduler.get_last_lr()[0], step_time
        )
        result.history.append(record)
        if ev.accuracy > best_acc:
            best_acc, result.best_epoch = ev.accuracy, epoch
            result.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        result.train_seconds = time.perf_counter() - start
        if checkpoint_dir is not None:
            # The epoch's full state, so that `train --resume` continues from here.
            save_checkpoint(
                checkpoint_dir / "last.pt",
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "lr_scheduler": scheduler.state_dict(),
                    "generator": generator.get_state(),
                    "epoch": epoch,
                    "fit": result.to_state(),
                    "args": cfg.to_dict(),
                },
            )
        if on_epoch:
            on_epoch(record)
    set_frozen(model, False)
    return result
