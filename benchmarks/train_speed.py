"""Training speed, side by side: mnistserve's loop against the naive lab loop, same model, same machine.

naive  = the usual lab code: a per-sample Dataset (PIL image -> ToTensor), DataLoader(batch 64, shuffle),
         float32 throughout, no augmentation; same model, optimizer (AdamW) and one-cycle schedule.
ours   = training.loop.fit: one uint8 tensor per split, batches are slices, batched augmentation on the device
         (plus bf16 autocast and channels-last on CUDA).
Both report images/second and the training time (evaluation excluded) until the test accuracy first reaches
the target. Usage:  python -m benchmarks.train_speed --epochs 3 --out reports/train_speed
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import functional as TF

from mnistserve.contracts import atomic_write_bytes, atomic_write_json
from training.config import make_config
from training.data import load_mnist
from training.environment import device_description, git_revision, versions
from training.loop import EpochRecord, evaluate, fit
from training.models import build_model


class PilMnist(Dataset):
    """The lab's per-sample dataset: one PIL image converted per item."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images.numpy(), labels.numpy()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return TF.to_tensor(Image.fromarray(self.images[i], mode="L")), int(self.labels[i])


def naive(model, data, cfg, target: float) -> dict:
    """The naive loop; returns per-epoch (seconds, test accuracy)."""
    loader = DataLoader(PilMnist(data.train.images, data.train.labels), batch_size=64, shuffle=True, num_workers=0)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * len(loader), pct_start=0.2)
    elapsed, seen, epochs = 0.0, 0, []
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        for x, y in loader:
            x, y = x.to(cfg.device), y.to(cfg.device)  # per batch, from host memory: the naive way
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            seen += len(y)
        elapsed += time.perf_counter() - t0
        test = evaluate(model, data.test.to(cfg.device), cfg).accuracy
        epochs.append({"epoch": epoch, "train_seconds": elapsed, "test_accuracy": test})
    return summarise(epochs, seen, elapsed, target)


def ours(model, data, cfg, target: float) -> dict:
    """mnistserve's loop, with test accuracy after every epoch."""
    epochs, test = [], data.test.to(cfg.device)

    def on_epoch(rec: EpochRecord) -> None:
        done = epochs[-1]["train_seconds"] if epochs else 0.0
        epochs.append(
            {
                "epoch": rec.epoch,
                "train_seconds": done + rec.train_seconds,
                "test_accuracy": evaluate(model, test, cfg).accuracy,
            }
        )

    result = fit(model, data.train.to(cfg.device), data.val.to(cfg.device), cfg, on_epoch=on_epoch)
    return summarise(epochs, result.images_seen, result.step_seconds, target)


def summarise(epochs: list[dict], seen: int, seconds: float, target: float) -> dict:
    hit = next((e for e in epochs if e["test_accuracy"] >= target), None)
    return {
        "images_per_second": seen / seconds,
        "train_seconds": seconds,
        "epochs": epochs,
        "final_test_accuracy": epochs[-1]["test_accuracy"],
        "seconds_to_target": hit["train_seconds"] if hit else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--target", type=float, default=0.99)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=Path("reports/train_speed"))
    args = ap.parse_args()
    data = load_mnist()
    cfg = make_config(args.model, "gpu" if args.device.startswith("cuda") else "cpu", args.device, epochs=args.epochs)
    results = {}
    for name, fn in (("naive", naive), ("ours", ours)):
        torch.manual_seed(0)
        model = build_model(args.model, **cfg.build).to(args.device)
        print(f"{name}: training {args.model} for {args.epochs} epochs ...", flush=True)
        run_cfg = (
            cfg
            if name == "ours"
            else make_config(args.model, cfg.profile, args.device, epochs=args.epochs, augment=False)
        )
        results[name] = fn(model, data, run_cfg, args.target)
        print(
            f"  {results[name]['images_per_second']:.0f} images/s, to {args.target:.1%}: "
            f"{results[name]['seconds_to_target']}",
            flush=True,
        )
    n, o = results["naive"], results["ours"]
    speedup = o["images_per_second"] / n["images_per_second"]
    tta = (
        (n["seconds_to_target"] / o["seconds_to_target"]) if n["seconds_to_target"] and o["seconds_to_target"] else None
    )
    report = {
        "model": args.model,
        "epochs": args.epochs,
        "target": args.target,
        "device": device_description(args.device),
        "versions": versions(),
        "git_revision": git_revision(),
        "command": f"python -m benchmarks.train_speed "
        f"--model {args.model} --epochs {args.epochs} --device {args.device}",
        "settings": cfg.to_dict(),
        "results": results,
        "throughput_ratio": speedup,
        "time_to_target_ratio": tta,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / f"{args.model}.json", report)
    lines = [
        f"# Training speed: {args.model} ({report['device']})",
        "",
        f"- command: `{report['command']}`",
        f"- git revision: {report['git_revision']}; torch {report['versions']['torch']}",
        "",
        f"| loop | images/s | train s | final test acc | s to {args.target:.1%} |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        tt = f"{r['seconds_to_target']:.1f}" if r["seconds_to_target"] else "not reached"
        lines.append(
            f"| {name} | {r['images_per_second']:.0f} | {r['train_seconds']:.1f} | "
            f"{r['final_test_accuracy']:.4f} | {tt} |"
        )
    lines += [
        "",
        f"Throughput ratio (ours / naive): **{speedup:.2f}x**; time-to-target ratio: **{tta:.2f}x**"
        if tta
        else f"Throughput ratio: **{speedup:.2f}x**; target not reached by both.",
    ]
    atomic_write_bytes(args.out / f"{args.model}.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
