"""Does torch.compile pay for each model's training, compile time included? Eager and compiled, same run.

For each model at the profile's settings: seconds per optimiser step eager (after warm-up) and compiled (steady
state), the compile time (first compiled step minus a steady one), and from them the whole training run as the
profile sets it (epochs x steps per epoch): eager total against compile time + compiled total. The verdict goes
into the profile's `compile` setting by hand, with this report as its evidence.
Usage:  python -m benchmarks.compile_gain [--profile gpu] [--device cuda] [--models cnn vit ...] [--out reports/gpu]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from mnistserve.contracts import atomic_write_bytes, atomic_write_json
from training.config import make_config
from training.data import TRAIN_SIZE
from training.environment import device_description, git_revision, synchronize, versions
from training.loop import autocast, model_loss
from training.models import build_model, model_names


def step_seconds(name: str, profile: str, device: str, compiled: bool, steps: int) -> tuple[float, float]:
    """(first step's seconds, median steady step's seconds) of one model, eager or through torch.compile."""
    cfg = make_config(name, profile, device)
    torch.manual_seed(0)
    model = build_model(name, **cfg.build).to(device).train()
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, fused=True)
    loss_of = torch.compile(model_loss) if compiled else model_loss
    x = torch.rand(cfg.batch_size, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (cfg.batch_size,), device=device)
    times = []
    for _ in range(steps + 2):  # the first is compile or warm-up, the second settles allocator and autotuning
        synchronize(device)
        t0 = time.perf_counter()
        with autocast(cfg, torch.device(device)):
            loss = loss_of(model, x, y, cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    steady = sorted(times[2:])[len(times[2:]) // 2]
    return times[0], steady


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="gpu")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--out", type=Path, default=Path("reports/gpu"))
    args = ap.parse_args()
    rows = []
    for name in args.models or model_names():
        cfg = make_config(name, args.profile, args.device)
        run_steps = cfg.epochs * math.ceil((cfg.train_subset or TRAIN_SIZE) / cfg.batch_size)
        try:
            _, eager = step_seconds(name, args.profile, args.device, False, args.steps)
            first, compiled = step_seconds(name, args.profile, args.device, True, args.steps)
        except Exception as exc:  # a model dynamo cannot compile is a finding, not a crash of the whole report
            rows.append({"model": name, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"})
            print(f"{name}: {rows[-1]['error']}", flush=True)
            continue
        compile_s = max(first - compiled, 0.0)
        eager_total, compiled_total = run_steps * eager, compile_s + run_steps * compiled
        rows.append(
            {
                "model": name,
                "batch_size": cfg.batch_size,
                "run_steps": run_steps,
                "eager_step_ms": 1000 * eager,
                "compiled_step_ms": 1000 * compiled,
                "compile_seconds": compile_s,
                "eager_run_seconds": eager_total,
                "compiled_run_seconds": compiled_total,
                "pays": compiled_total < eager_total,
            }
        )
        print(
            f"{name}: eager {1000 * eager:.1f} ms, compiled {1000 * compiled:.1f} ms a step, compile {compile_s:.1f} s;"
            f" run of {run_steps} steps: {eager_total:.0f} s vs {compiled_total:.0f} s",
            flush=True,
        )
    command = (
        f"python -m benchmarks.compile_gain --profile {args.profile} --device {args.device} --steps {args.steps}"
        + (f" --models {' '.join(args.models)}" if args.models else "")
    )
    report = {
        "command": command,
        "device": device_description(args.device),
        "versions": versions(),
        "git_revision": git_revision(),
        "profile": args.profile,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "compile.json", report)
    lines = [
        f"# torch.compile: does it pay? ({report['device']}, profile {args.profile})",
        "",
        f"- command: `{command}`",
        f"- git revision: {report['git_revision']}; torch {versions()['torch']}",
        "",
        "| model | batch | eager ms/step | compiled ms/step | compile s | run steps | eager run s | compiled run s "
        "| pays |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | failed: {r['error']} |||||||| no |")
            continue
        lines.append(
            f"| {r['model']} | {r['batch_size']} | {r['eager_step_ms']:.1f} | {r['compiled_step_ms']:.1f} | "
            f"{r['compile_seconds']:.1f} | {r['run_steps']} | {r['eager_run_seconds']:.0f} | "
            f"{r['compiled_run_seconds']:.0f} | {'yes' if r['pays'] else 'no'} |"
        )
    atomic_write_bytes(args.out / "compile.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
