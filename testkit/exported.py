"""Small real exported/ directories for the service: a tiny MLP trained in seconds, written by the exporter.

torch is imported inside the functions, so that `import testkit.exported` stays torch-free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from mnistserve.contracts import COMPARISON_SCHEMA, MANIFEST_SCHEMA, read_json, sha256_file, validate_manifest

if TYPE_CHECKING:
    from torch import nn

PLOTS = ("accuracy_vs_time.png", "confusion_mlp.png")  # listed in the manifest's "plots"
UNLISTED_PLOT = "unlisted.png"  # in exported/plots but not in the manifest: never served
BAD_PLOTS = ("plots/missing.png", "plots/../manifest.json", "../mlp.onnx")  # listed, but never served either


@dataclass
class Digits:
    """MNIST digits (uint8, white on black) and labels; None when MNIST is not on this machine."""

    images: np.ndarray | None
    labels: np.ndarray | None


def load_digits() -> tuple[Digits, Digits]:
    """MNIST's train and test digits from the local cache; empty `Digits` only when MNIST is not available."""
    from training.data import DataUnavailable, load_mnist

    try:
        data = load_mnist(allow_download=False)
    except DataUnavailable:  # no MNIST here: the tests that need real digits skip; any other error fails loudly
        return Digits(None, None), Digits(None, None)
    return (
        Digits(data.train.images.numpy(), data.train.labels.numpy()),
        Digits(data.test.images.numpy(), data.test.labels.numpy()),
    )


def train_mlp(train: Digits, epochs: int = 2) -> nn.Module:
    """A 784-64-10 MLP: two epochs (seconds on a CPU) reach ~95% on MNIST, and it is not shift-invariant,
    so a badly centred input shows up as a wrong digit. Untrained when MNIST is absent."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    if train.images is None:
        return net.eval()
    x = torch.from_numpy(train.images).float().div(255).unsqueeze(1)  # (N, 1, 28, 28)
    y = torch.from_numpy(train.labels).long()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a net this small runs fastest on one thread, and a busy machine stalls more
    try:
        for _ in range(epochs):
            for idx in torch.randperm(len(x)).split(256):
                opt.zero_grad()
                nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    return net.eval()


def untrained() -> nn.Module:
    """A linear 784-10 net with random weights: for tests that need a model, not a good one."""
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()


def rename_input(path: Path, name: str) -> Path:
    """Rename the ONNX graph's input in place: a graph that breaks the service's contract."""
    import onnx

    model = onnx.load(str(path))
    old = model.graph.input[0].name
    model.graph.input[0].name = name
    for node in model.graph.node:
        node.input[:] = [name if i == old else i for i in node.input]
    onnx.save(model, str(path))
    return path


def _entry(file: str, sha: str, *, max_batch: int | None, shipped: bool = True, accuracy: float = 0.97) -> dict:
    return {
        "file": file,
        "sha256": sha,
        "size_bytes": 1000,
        "shipped": shipped,
        "opset": 18,
        "max_batch": max_batch,
        "metrics": {
            "accuracy": accuracy,
            "macro_f1": accuracy - 0.001,
            "test_loss": 0.1,
            "loss_kind": "cross-entropy",
            "train_seconds": 8.0,
            "images_per_second": 9000.0,
            "parameters": 101770,
        },
        "pretrained": False,
        "weights": "none",
        "profile": "smoke",
        "parity": {"images": 100, "max_abs_diff": 1e-6, "predictions_equal": True},
        "onnx_accuracy": accuracy,
        "latency_ms": {"batch1": 0.05, "batch64_per_image": 0.01},
    }


def write_exported(directory: Path, net: nn.Module) -> dict:
    """exported/ with two good models (dynamic batch; fixed batch of one), a tampered file, a file that is
    not ONNX but matches its checksum, an unshipped absent model, and a comparison; returns the manifest."""
    from training.export import to_onnx

    directory.mkdir(parents=True, exist_ok=True)
    to_onnx(net, directory / "mlp.onnx", None)
    to_onnx(net, directory / "mlp_b1.onnx", 1)
    tampered = bytearray((directory / "mlp.onnx").read_bytes())
    tampered[len(tampered) // 2] ^= 0xFF
    (directory / "tampered.onnx").write_bytes(bytes(tampered))
    (directory / "garbage.onnx").write_bytes(b"this is not an onnx graph")
    models = {
        "mlp": _entry("mlp.onnx", sha256_file(directory / "mlp.onnx"), max_batch=None),
        "mlp_b1": _entry("mlp_b1.onnx", sha256_file(directory / "mlp_b1.onnx"), max_batch=1),
        "tampered": _entry("tampered.onnx", sha256_file(directory / "mlp.onnx"), max_batch=None),
        "garbage": _entry("garbage.onnx", sha256_file(directory / "garbage.onnx"), max_batch=None),
        "faster_rcnn": _entry("faster_rcnn.onnx", "0" * 64, max_batch=1, shipped=False),
    }
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "created": "2025-01-01T00:00:00Z",
        "run_id": "test-run",
        "git_revision": "test",
        "default": "mlp",
        "input": {"name": "input", "shape": ["N", 1, 28, 28], "dtype": "float32", "range": [0, 1]},
        "output": {"name": "scores", "shape": ["N", 10]},
        "models": models,
    }
    validate_manifest(manifest)
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    comparison = {
        "schema": COMPARISON_SCHEMA,
        "profile": "smoke",
        "run_id": "test-run",
        "models": [
            {"model": "mlp", "status": "ok", "pretrained": False, "metrics": models["mlp"]["metrics"]},
            {"model": "faster_rcnn", "status": "failed", "error": "out of memory", "pretrained": True, "metrics": {}},
        ],
    }
    (directory / "comparison.json").write_text(json.dumps(comparison))
    return manifest


def add_plots(directory: Path) -> list[str]:
    """exported/plots with small PNG charts, listed in the manifest (with BAD_PLOTS) as the exporter does."""
    folder = directory / "plots"
    folder.mkdir(exist_ok=True)
    for i, name in enumerate((*PLOTS, UNLISTED_PLOT)):
        image = Image.new("RGB", (240, 160), "white")
        draw = ImageDraw.Draw(image)
        draw.rectangle([30, 10, 230, 130], outline="black")
        draw.line([(30, 120 - 10 * i), (90, 60), (150, 40), (230, 30 + 5 * i)], fill=(47, 111, 223), width=3)
        draw.text((34, 138), name, fill="black")
        image.save(folder / name, "PNG", optimize=True)
    manifest = read_json(directory / "manifest.json")
    manifest["plots"] = [f"plots/{name}" for name in PLOTS] + list(BAD_PLOTS)
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest["plots"]
