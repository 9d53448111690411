"""Faster R-CNN: PyTorch vs onnxruntime with and without the RPN's NMS when classifying (`TEST_RPN_NMS`).

Exports the run's Faster R-CNN checkpoint twice (RPN NMS threshold 0.7, torchvision's default, and 1.0, i.e. none)
and compares the two runtimes on the first 1,000 official test images: max |probability difference|, how many
images differ by more than 1e-4 and 1e-3, and the accuracy on those images.
Usage:  python -m benchmarks.detector_parity [--run runs/latest] [--out reports/export]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mnistserve.contracts import atomic_write_bytes, atomic_write_json, read_json
from training.data import load_mnist
from training.environment import git_revision, versions
from training.export import load_checkpoint, run_onnx, run_torch, softmax, to_onnx
from training.models import faster_rcnn as detector_module


def compare(run: Path, entry: dict, threshold: float, x, labels: np.ndarray, work: Path) -> dict:
    """Both runtimes with the RPN NMS threshold at `threshold` while classifying."""
    detector_module.TEST_RPN_NMS = threshold  # read by DigitDetector.forward at each call, the export's trace too
    model = load_checkpoint(run, entry)
    path = work / f"faster_rcnn-{threshold}.onnx"
    to_onnx(model, path, None)  # the batched detector exports a dynamic batch axis
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    torch_scores, onnx_scores = run_torch(model, x, None), run_onnx(session, x.numpy(), None)
    diff = np.abs(softmax(torch_scores) - softmax(onnx_scores)).max(1)
    return {
        "rpn_nms_threshold": threshold,
        "max_prob_diff": float(diff.max()),
        "images_over_1e-4": int((diff > 1e-4).sum()),
        "images_over_1e-3": int((diff > 1e-3).sum()),
        "predictions_equal": bool((torch_scores.argmax(1) == onnx_scores.argmax(1)).all()),
        "accuracy": float((torch_scores.argmax(1) == labels).mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("runs/latest"))
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=Path("reports/export"))
    args = ap.parse_args()
    run = args.run.resolve()
    entry = next(e for e in read_json(run / "comparison.json")["models"] if e["model"] == "faster_rcnn")
    test = load_mnist().test
    x, labels = test.images[: args.images].unsqueeze(1).float() / 255, test.labels[: args.images].numpy()
    shipped = detector_module.TEST_RPN_NMS
    with tempfile.TemporaryDirectory() as work:
        rows = [compare(run, entry, t, x, labels, Path(work)) for t in (0.7, 1.0)]
    detector_module.TEST_RPN_NMS = shipped
    report = {
        "run": run.name,
        "images": args.images,
        "git_revision": git_revision(),
        "versions": versions(),
        "command": f"python -m benchmarks.detector_parity --images {args.images}",
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "detector_parity.json", report)
    lines = [
        "# Faster R-CNN: ONNX parity with and without RPN NMS when classifying",
        "",
        f"- command: `{report['command']}` (run {run.name}, git {report['git_revision']})",
        f"- torch {report['versions']['torch']}, torchvision {report['versions']['torchvision']}, "
        f"onnxruntime CPU; first {args.images} official test images",
        "",
        "| RPN NMS threshold | max prob diff | images > 1e-4 | images > 1e-3 | predictions equal | accuracy |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['rpn_nms_threshold']} | {r['max_prob_diff']:.2e} | {r['images_over_1e-4']} | "
        f"{r['images_over_1e-3']} | {r['predictions_equal']} | {r['accuracy']:.4f} |"
        for r in rows
    ]
    atomic_write_bytes(args.out / "detector_parity.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
