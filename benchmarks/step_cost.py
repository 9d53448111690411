"""What a training step costs on this machine, per model variant: the cost model behind each profile's epochs and
subset sizes (a profile must keep `make train` within its time budget).

Usage:  python -m benchmarks.step_cost --variant vgg16:image_size=32 --variant vgg16:image_size=32;head=small
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from benchmarks.generalisation import parse_variant
from mnistserve.contracts import atomic_write_bytes, atomic_write_json
from training.config import make_config
from training.environment import device_description, git_revision, versions
from training.loop import autocast, model_loss
from training.models import build_model
from training.run import builder_kwargs


def step_ms(name: str, build: dict, profile: str, device: str, steps: int) -> dict:
    """Mean ms of one training step (forward, loss, backward, fused AdamW) at the profile's batch, after warm-up."""
    cfg = make_config(name, profile, device)
    kwargs = {**builder_kwargs(cfg), **build}
    model = build_model(name, **kwargs).to(device).train()
    x = torch.rand(cfg.batch_size, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (cfg.batch_size,), device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)

    def step() -> None:
        with autocast(cfg, torch.device(device)):
            loss = model_loss(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    ms = 1000 * (time.perf_counter() - t0) / steps
    return {
        "model": name,
        "build": kwargs,
        "batch_size": cfg.batch_size,
        "ms_per_step": ms,
        "images_per_second": cfg.batch_size / ms * 1000,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", required=True, help="MODEL:KEY=VALUE;KEY=VALUE (build kwargs)")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("reports/train_speed"))
    args = parser.parse_args()
    rows = []
    for text in args.variant:
        name, build = parse_variant(text)
        rows.append(step_ms(name, build, args.profile, args.device, args.steps))
        print(
            f"{text}: {rows[-1]['ms_per_step']:.0f} ms/step, {rows[-1]['images_per_second']:.0f} images/s", flush=True
        )
    payload = {
        "command": "python -m benchmarks.step_cost " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "git_revision": git_revision(),
        "device": device_description(args.device),
        "versions": versions(),
        "rows": rows,
    }
    lines = [
        f"# Training-step cost, {args.profile} profile's batch sizes",
        "",
        f"- command: `{payload['command']}`",
        f"- git revision: {payload['git_revision']}",
        f"- device: {payload['device']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in payload["versions"].items()),
        "",
        "| model | build | batch | ms/step | images/s | parameters |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | `{json.dumps(r['build'])}` | {r['batch_size']} | {r['ms_per_step']:.0f} | "
        f"{r['images_per_second']:.0f} | {r['parameters']:,} |"
        for r in rows
    ]
    atomic_write_json(args.out / "step_cost.json", payload)
    atomic_write_bytes(args.out / "step_cost.md", ("\n".join(lines) + "\n").encode())


if __name__ == "__main__":
    main()
