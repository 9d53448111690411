"""Inference latency: each exported ONNX model with onnxruntime against the same PyTorch model in eager mode.

Times batch 1, 8, 64 and 256 (batch 1 only for models exported with a fixed batch of one) on the same
machine in the same run and reports the ratio. The onnxruntime session is tuned: full graph optimisation,
intra-op threads = the machine's cores, sequential execution; on CUDA, IO binding keeps the input on the GPU.
Usage:  python -m benchmarks.inference [--exported exported] [--run runs/latest] [--out reports/inference]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from mnistserve.contracts import INPUT_NAME, OUTPUT_NAME, atomic_write_bytes, atomic_write_json, read_json
from training.environment import git_revision, versions
from training.export import load_checkpoint

BATCHES = (1, 8, 64, 256)


def tuned_session(path: Path, device: str) -> ort.InferenceSession:
    """An onnxruntime session with the settings this benchmark recommends."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = os.cpu_count() or 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    return ort.InferenceSession(str(path), opts, providers=providers)


def time_ms(fn, repeats: int, warmup: int = 3, budget_s: float = 5.0) -> dict:
    """Median and p90 ms of `fn()` over `repeats` calls after a warm-up (fewer, at least 3, past `budget_s`)."""
    for _ in range(warmup):
        t0 = time.perf_counter()
        fn()
        if time.perf_counter() - t0 > budget_s / 10:  # a slow case (VGG16 at 224 px on a CPU): one warm-up is enough
            break
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t0))
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)), "calls": len(times)}


def onnx_runner(session: ort.InferenceSession, x: np.ndarray, device: str):
    """A no-argument callable running `x` through the session (IO binding on CUDA)."""
    if device != "cuda":
        return lambda: session.run([OUTPUT_NAME], {INPUT_NAME: x})
    binding = session.io_binding()
    binding.bind_ortvalue_input(INPUT_NAME, ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
    binding.bind_output(OUTPUT_NAME, "cuda")
    return lambda: session.run_with_iobinding(binding)


def torch_runner(model: torch.nn.Module, x: np.ndarray, device: str):
    """A no-argument callable running `x` through the eager PyTorch model."""
    xt = torch.from_numpy(x).to(device)

    @torch.inference_mode()
    def run():
        out = model(xt)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    return run


def bench_model(name: str, entry: dict, exported: Path, run_dir: Path, device: str, repeats: int) -> dict:
    """Both runtimes at every batch size the model accepts."""
    session = tuned_session(exported / entry["file"], device)
    # onnxruntime without its CUDA provider (the CPU-only wheel) falls back to the CPU: say so, and bind nothing.
    ort_device = "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
    ckpt_entry = next(e for e in read_json(run_dir / "comparison.json")["models"] if e["model"] == name)
    model = load_checkpoint(run_dir, ckpt_entry).to(device)
    rows = []
    for batch in BATCHES if entry["max_batch"] is None else (1,):
        x = np.random.default_rng(0).random((batch, 1, 28, 28), dtype=np.float32)
        o = time_ms(onnx_runner(session, x, ort_device), repeats)
        t = time_ms(torch_runner(model, x, device), repeats)
        rows.append(
            {
                "batch": batch,
                "onnxruntime": o,
                "torch_eager": t,
                "speedup": t["median_ms"] / o["median_ms"],
                "onnx_images_per_second": 1000 * batch / o["median_ms"],
            }
        )
        print(
            f"{name:>12} batch {batch:>3}: onnxruntime {o['median_ms']:8.3f} ms, torch {t['median_ms']:8.3f} ms, "
            f"x{rows[-1]['speedup']:.2f}",
            flush=True,
        )
    return {"provider": session.get_providers()[0], "onnx_device": ort_device, "torch_device": device, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exported", type=Path, default=Path("exported"))
    ap.add_argument("--run", type=Path, default=Path("runs/latest"), help="run holding the matching checkpoints")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--out", type=Path, default=Path("reports/inference"))
    args = ap.parse_args()
    manifest = read_json(args.exported / "manifest.json")
    results = {}
    for name, entry in manifest["models"].items():
        if not (args.exported / entry["file"]).exists():
            print(f"{name}: {entry['file']} not present (not shipped); train and export it to benchmark it")
            continue
        results[name] = bench_model(name, entry, args.exported, args.run.resolve(), args.device, args.repeats)
    report = {
        "device": args.device,
        "threads": os.cpu_count(),
        "versions": versions(),
        "git_revision": git_revision(),
        "command": f"python -m benchmarks.inference --device {args.device} --repeats {args.repeats}",
        "manifest_run": manifest["run_id"],
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / f"inference-{args.device}.json", report)
    lines = [
        f"# Inference: onnxruntime vs PyTorch eager ({args.device}, {os.cpu_count()} cores)",
        "",
        f"- command: `{report['command']}`",
        f"- git revision: {report['git_revision']}, models from run {manifest['run_id']}",
        f"- onnxruntime {ort.__version__} (providers available: "
        f"{', '.join(ort.get_available_providers())}), torch {torch.__version__}",
        "",
        "| model | batch | onnxruntime ms | torch ms | speedup | ORT images/s | ORT on | torch on |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        for row in r["rows"]:
            lines.append(
                f"| {name} | {row['batch']} | {row['onnxruntime']['median_ms']:.3f} | "
                f"{row['torch_eager']['median_ms']:.3f} | {row['speedup']:.2f}x | "
                f"{row['onnx_images_per_second']:.0f} | {r['onnx_device']} | {r['torch_device']} |"
            )
    atomic_write_bytes(args.out / f"inference-{args.device}.md", ("\n".join(lines) + "\n").encode())


if __name__ == "__main__":
    main()
