"""Faster R-CNN's batched path against torchvision's per-image path: same weights, same machine, same run.

training   images/s of one optimiser step (loss, backward, AdamW) at the profile's batch size and build, on MNIST
           training batches without augmentation, the two paths alternating round by round (median of rounds);
           bf16 autocast on CUDA, as the training loop uses it
pytorch    images/s of classification at batch 64, both paths
onnx       onnxruntime: today's export (torchvision's path traced at a fixed batch of one, run image by image)
           against the batched path's export (dynamic batch axis) at batch 1 and 64
agreement  max |score difference| and equal predictions between the two paths on the first 1,000 test images
Usage:  python -m benchmarks.detector_speed [--profile cpu] [--device cpu] [--run runs/latest] [--out reports/detector]
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from benchmarks.inference import time_ms, tuned_session
from mnistserve.contracts import INPUT_NAME, OUTPUT_NAME, atomic_write_bytes, atomic_write_json, read_json
from training.config import make_config
from training.data import load_mnist
from training.environment import device_description, git_revision, synchronize, versions
from training.export import load_checkpoint, to_onnx
from training.models import build_model

PATHS = {"torchvision (per image)": False, "batched": True}


def training_speed(
    model, images: torch.Tensor, labels: torch.Tensor, batch: int, steps: int, rounds: int, device: str
) -> dict[str, dict]:
    """Images/s of full optimiser steps for each path, the paths alternating round by round."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else nullcontext()
    rates: dict[str, list[float]] = {name: [] for name in PATHS}
    cursor = 0
    model.train()
    for r in range(rounds + 1):  # round 0 warms both paths up (allocator, cuDNN autotune) and is not counted
        for name, batched in PATHS.items():
            model.batched = batched
            synchronize(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                x = images[cursor : cursor + batch].to(device, non_blocking=True).unsqueeze(1).float() / 255
                y = labels[cursor : cursor + batch].to(device, non_blocking=True)
                cursor = (cursor + batch) % (len(labels) - batch)
                with amp:
                    loss = model.loss(x, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            synchronize(device)
            if r:
                rates[name].append(steps * batch / (time.perf_counter() - t0))
    return {
        name: {"images_per_second": float(np.median(v)), "rounds": [round(x, 1) for x in v]}
        for name, v in rates.items()
    }


def step_profile(model, images: torch.Tensor, labels: torch.Tensor, batch: int, device: str, top: int = 6) -> dict:
    """Where one training step's time goes, per path: torch.profiler's top operators by self time, and their share."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = images[:batch].to(device).unsqueeze(1).float() / 255
    y = labels[:batch].to(device)
    out = {}
    model.train()
    for name, batched in PATHS.items():
        model.batched = batched
        with torch.profiler.profile() as prof:
            for _ in range(2):
                loss = model.loss(x, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in ops)
        out[name] = {
            "operator_calls": sum(e.count for e in ops) // 2,
            "top": [{"op": e.key, "share": e.self_cpu_time_total / total} for e in ops[:top]],
        }
    return out


@torch.no_grad()
def classify_speed(model, x: torch.Tensor, device: str, repeats: int) -> dict[str, dict]:
    """Images/s of classifying a batch of 64 with each path."""
    model.eval()
    x = x[:64].to(device)
    out = {}
    for name, batched in PATHS.items():
        model.batched = batched

        def run() -> None:
            model(x)
            synchronize(device)

        t = time_ms(run, repeats)
        out[name] = {"images_per_second": 64 / (t["median_ms"] / 1000), **t}
    return out


@torch.no_grad()
def agreement(model, x: torch.Tensor, device: str) -> dict:
    """How far the two paths' scores lie apart on the same images."""
    model.eval()
    scores = {}
    for name, batched in PATHS.items():
        model.batched = batched
        scores[name] = torch.cat([model(x[i : i + 100].to(device)).float().cpu() for i in range(0, len(x), 100)])
    a, b = scores.values()
    return {
        "images": len(x),
        "max_abs_score_diff": float((a - b).abs().max()),
        "predictions_equal": bool((a.argmax(1) == b.argmax(1)).all()),
    }


def onnx_speed(model, x: torch.Tensor, work: Path, repeats: int) -> dict[str, dict]:
    """onnxruntime: the old export (per-image path, batch 1, image by image) and the batched export."""
    model = model.cpu().eval()
    model.batched = False
    old = work / "per_image_b1.onnx"
    to_onnx(model, old, 1)
    model.batched = True
    new = work / "batched_dynamic.onnx"
    to_onnx(model, new, None)
    images = x[:64].numpy()
    old_session, new_session = tuned_session(old, "cpu"), tuned_session(new, "cpu")

    def one_by_one() -> None:
        for i in range(len(images)):
            old_session.run([OUTPUT_NAME], {INPUT_NAME: images[i : i + 1]})

    cases = {
        "per-image export, 64 images one by one": (one_by_one, 64),
        "batched export, batch 1": (lambda: new_session.run([OUTPUT_NAME], {INPUT_NAME: images[:1]}), 1),
        "batched export, batch 64": (lambda: new_session.run([OUTPUT_NAME], {INPUT_NAME: images}), 64),
    }
    out = {}
    for name, (fn, n) in cases.items():
        t = time_ms(fn, repeats)
        out[name] = {"ms_per_image": t["median_ms"] / n, **t}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--run", type=Path, help="a run folder: measure its trained Faster R-CNN (else seed-0 weights)")
    ap.add_argument("--steps", type=int, default=10, help="optimiser steps per path and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path("reports/detector"))
    args = ap.parse_args()
    cfg = make_config("faster_rcnn", args.profile, args.device)
    torch.manual_seed(0)
    if args.run:
        entry = next(e for e in read_json(args.run / "comparison.json")["models"] if e["model"] == "faster_rcnn")
        model, weights = load_checkpoint(args.run, entry), entry["checkpoint"]
        checksum = hashlib.sha256((args.run / entry["checkpoint"]).read_bytes()).hexdigest()
    else:
        model, weights, checksum = build_model("faster_rcnn", **cfg.build), "untrained (seed 0)", None
    model = model.to(args.device)
    data = load_mnist()
    test = data.test.images[:1000].unsqueeze(1).float() / 255
    print(f"training steps, batch {cfg.batch_size}, {cfg.build} ...", flush=True)
    train = training_speed(
        model, data.train.images, data.train.labels, cfg.batch_size, args.steps, args.rounds, args.device
    )
    profile = step_profile(model, data.train.images, data.train.labels, cfg.batch_size, args.device)
    print("classification ...", flush=True)
    classify = classify_speed(model, test, args.device, args.repeats)
    agree = agreement(model, test, args.device)
    with tempfile.TemporaryDirectory() as tmp:
        onnx = onnx_speed(model, test, Path(tmp), args.repeats)
    (old, new) = (train[name]["images_per_second"] for name in PATHS)
    old_onnx = onnx["per-image export, 64 images one by one"]["ms_per_image"]
    new_onnx = onnx["batched export, batch 64"]["ms_per_image"]
    command = (
        f"python -m benchmarks.detector_speed --profile {args.profile} --device {args.device}"
        + (f" --run {args.run}" if args.run else "")
        + f" --steps {args.steps} --rounds {args.rounds}"
    )
    report = {
        "command": command,
        "device": device_description(args.device),
        "versions": versions(),
        "git_revision": git_revision(),
        "profile": args.profile,
        "settings": cfg.to_dict(),
        "weights": weights,
        "checkpoint_sha256": checksum,
        "training": train,
        "step_profile": profile,
        "classification": classify,
        "agreement": agree,
        "onnx": onnx,
        "training_speedup": new / old,
        "onnx_batch64_speedup": old_onnx / new_onnx,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"speed-{args.profile}-{args.device.split(':')[0]}"
    atomic_write_json(args.out / f"{stem}.json", report)
    lines = [
        f"# Faster R-CNN: batched path vs torchvision's per-image path ({report['device']})",
        "",
        f"- command: `{command}`",
        f"- git revision: {report['git_revision']}; torch {versions()['torch']}, "
        f"torchvision {versions().get('torchvision', '?')}, "
        f"onnxruntime {versions().get('onnxruntime-gpu') or versions().get('onnxruntime', '?')}",
        f"- profile {args.profile}: batch {cfg.batch_size}, build {cfg.build}; weights: {weights}"
        + (f" (sha256 {checksum[:12]})" if checksum else ""),
        "",
        "| what | torchvision (per image) | batched | ratio |",
        "|---|---|---|---|",
        f"| training, images/s (median of {args.rounds} rounds of {args.steps} steps) | {old:.0f} | {new:.0f} | "
        f"**{new / old:.2f}x** |",
    ]
    c_old, c_new = (classify[name]["images_per_second"] for name in PATHS)
    lines.append(f"| PyTorch classification at batch 64, images/s | {c_old:.0f} | {c_new:.0f} | {c_new / c_old:.2f}x |")
    lines.append(
        f"| onnxruntime ms per image: today's export image by image vs batched export at batch 64 | "
        f"{old_onnx:.3f} | {new_onnx:.3f} | **{old_onnx / new_onnx:.2f}x** |"
    )
    lines += [
        "",
        f"Batched export at batch 1: {onnx['batched export, batch 1']['ms_per_image']:.3f} ms. "
        f"Agreement on {agree['images']} test images: max |score difference| {agree['max_abs_score_diff']:.2e}, "
        f"predictions {'identical' if agree['predictions_equal'] else 'NOT identical'}.",
    ]
    lines += [
        "",
        "Where a training step's CPU time goes (torch.profiler, self time of the top operators; 2 steps):",
        "",
        "| path | operator calls a step | top operators (share of self time) |",
        "|---|---|---|",
    ]
    for name, p in profile.items():
        tops = ", ".join(f"{t['op']} {t['share']:.0%}" for t in p["top"])
        lines.append(f"| {name} | {p['operator_calls']:,} | {tops} |")
    atomic_write_bytes(args.out / f"{stem}.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
