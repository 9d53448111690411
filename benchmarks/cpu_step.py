"""CPU training-step costs behind the cpu profile's choices: precision and memory layout of the CNN's step,
torch.compile, and fused vs default AdamW on VGG16's 134M parameters.
Usage:  python -m benchmarks.cpu_step [--out reports/train_speed]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mnistserve.contracts import atomic_write_bytes
from training.config import cpu_has_native_bf16
from training.environment import device_description, git_revision, versions
from training.models import build_model


def step_ms(model: torch.nn.Module, *, channels_last: bool, bf16: bool, steps: int = 30, batch: int = 128) -> float:
    """Mean ms of one CNN training step (forward, backward, fused AdamW) after 5 warm-up steps."""
    x, y = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return 1000 * (time.perf_counter() - t0) / steps


def adamw_ms(fused: bool, steps: int = 5) -> float:
    """Mean ms of AdamW's step alone over VGG16's parameters (gradients preset)."""
    params = [p for p in build_model("vgg16", weights="none", image_size=32).parameters()]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    opt = torch.optim.AdamW(params, lr=1e-4, fused=fused)
    opt.step()  # creates the state
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.step()
    return 1000 * (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("reports/train_speed"))
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = []
    for name, cl, bf16 in (
        ("float32", False, False),
        ("float32, channels-last", True, False),
        ("bf16 autocast", False, True),
        ("bf16 autocast, channels-last", True, True),
    ):
        ms = step_ms(build_model("cnn", width=16), channels_last=cl, bf16=bf16)
        rows.append((f"CNN step: {name}", ms, 128 / ms * 1000))
    t0 = time.perf_counter()
    compiled = torch.compile(build_model("cnn", width=16))
    ms = step_ms(compiled, channels_last=False, bf16=False)
    rows.append(
        (
            f"CNN step: float32, torch.compile (compiling and timing took {time.perf_counter() - t0:.0f} s)",
            ms,
            128 / ms * 1000,
        )
    )
    rows += [(f"VGG16 AdamW step alone, fused={fused}", adamw_ms(fused), None) for fused in (False, True)]
    lines = [
        "# CPU training-step costs",
        "",
        "- command: `python -m benchmarks.cpu_step`",
        f"- device: {device_description('cpu')}, native bf16: {cpu_has_native_bf16()}; git {git_revision()}; "
        f"torch {versions()['torch']}",
        "- CNN: the cpu profile's width 16, batch 128, fused AdamW",
        "",
        "| what | ms | images/s |",
        "|---|---|---|",
    ]
    lines += [f"| {what} | {ms:.1f} | {'' if ips is None else f'{ips:.0f}'} |" for what, ms, ips in rows]
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / "cpu_step.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
