"""Fixtures for the serving tests: small real ONNX models, an exported/ directory, a live `bentoml serve`.

Tests import torch to build models; the service itself never does.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from torch import nn

from mnistserve.contracts import (
    COMPARISON_SCHEMA,
    MANIFEST_SCHEMA,
    read_json,
    sha256_file,
    validate_manifest,
)

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Digits:
    """MNIST test digits (uint8, white on black) and labels; None when MNIST is not on this machine."""

    images: np.ndarray | None
    labels: np.ndarray | None


def _load_digits() -> tuple[Digits, Digits]:
    try:
        from training.data import load_mnist

        data = load_mnist(allow_download=False)
    except Exception:  # no MNIST here: the tests that need real digits skip
        return Digits(None, None), Digits(None, None)
    train = Digits(data.train.images.numpy(), data.train.labels.numpy())
    test = Digits(data.test.images.numpy(), data.test.labels.numpy())
    return train, test


def train_mlp(train: Digits) -> nn.Module:
    """A 784-64-10 MLP: two epochs (seconds on a CPU) reach ~95% on MNIST, and it is not shift-invariant,
    so a badly centred input shows up as a wrong digit. Untrained when MNIST is absent."""
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
        for _ in range(2):
            for idx in torch.randperm(len(x)).split(256):
                opt.zero_grad()
                nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    return net.eval()


def export_onnx(net: nn.Module, path: Path, *, fixed_batch: int | None = None) -> Path:
    """Export with the service contract: input (N, 1, 28, 28) -> scores (N, 10)."""
    dynamic = None if fixed_batch else {"input": {0: "N"}, "scores": {0: "N"}}
    torch.onnx.export(
        net, torch.zeros(fixed_batch or 1, 1, 28, 28), str(path), input_names=["input"], output_names=["scores"],
        dynamic_axes=dynamic, opset_version=18, dynamo=False,
    )
    return path


def _entry(file: str, sha: str, *, max_batch: int | None, shipped: bool = True, accuracy: float = 0.97) -> dict:
    return {
        "file": file, "sha256": sha, "size_bytes": 1000, "shipped": shipped, "opset": 18, "max_batch": max_batch,
        "metrics": {"accuracy": accuracy, "macro_f1": accuracy - 0.001, "test_loss": 0.1, "loss_kind": "cross-entropy",
                    "train_seconds": 8.0, "images_per_second": 9000.0, "parameters": 101770},
        "pretrained": False, "weights": "none", "profile": "smoke",
        "parity": {"images": 100, "max_abs_diff": 1e-6, "predictions_equal": True},
        "onnx_accuracy": accuracy, "latency_ms": {"batch1": 0.05, "batch64_per_image": 0.01},
    }


def write_exported(directory: Path, net: nn.Module) -> dict:
    """exported/ with two good models (dynamic batch; fixed batch of one), a tampered file, a file that is
    not ONNX but matches its checksum, an unshipped absent model, and a comparison."""
    directory.mkdir(parents=True, exist_ok=True)
    mlp = export_onnx(net, directory / "mlp.onnx")
    export_onnx(net, directory / "mlp_b1.onnx", fixed_batch=1)
    good = mlp.read_bytes()
    tampered = bytearray(good)
    tampered[len(tampered) // 2] ^= 0xFF
    (directory / "tampered.onnx").write_bytes(bytes(tampered))
    (directory / "garbage.onnx").write_bytes(b"this is not an onnx graph")
    models = {
        "mlp": _entry("mlp.onnx", sha256_file(mlp), max_batch=None),
        "mlp_b1": _entry("mlp_b1.onnx", sha256_file(directory / "mlp_b1.onnx"), max_batch=1),
        "tampered": _entry("tampered.onnx", sha256_file(mlp), max_batch=None),
        "garbage": _entry("garbage.onnx", sha256_file(directory / "garbage.onnx"), max_batch=None),
        "faster_rcnn": _entry("faster_rcnn.onnx", "0" * 64, max_batch=1, shipped=False),
    }
    manifest = {
        "schema": MANIFEST_SCHEMA, "created": "2025-01-01T00:00:00Z", "run_id": "test-run", "git_revision": "test",
        "default": "mlp", "input": {"name": "input", "shape": ["N", 1, 28, 28], "dtype": "float32", "range": [0, 1]},
        "output": {"name": "scores", "shape": ["N", 10]}, "models": models,
    }
    validate_manifest(manifest)
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    comparison = {"schema": COMPARISON_SCHEMA, "profile": "smoke", "run_id": "test-run", "models": [
        {"model": "mlp", "status": "ok", "pretrained": False, "metrics": models["mlp"]["metrics"]},
        {"model": "faster_rcnn", "status": "failed", "error": "out of memory", "pretrained": True, "metrics": {}},
    ]}
    (directory / "comparison.json").write_text(json.dumps(comparison))
    return manifest


PLOTS = ("accuracy_vs_time.png", "confusion_mlp.png")  # listed in the manifest's "plots"
UNLISTED_PLOT = "unlisted.png"  # in exported/plots but not in the manifest: never served


def add_plots(directory: Path) -> list[str]:
    """exported/plots with small PNG charts, as the exporter copies them; returns the manifest's "plots"."""
    folder = directory / "plots"
    folder.mkdir(exist_ok=True)
    for i, name in enumerate((*PLOTS, UNLISTED_PLOT)):
        image = Image.new("RGB", (240, 160), "white")
        draw = ImageDraw.Draw(image)
        draw.rectangle([30, 10, 230, 130], outline="black")
        draw.line([(30, 120 - 10 * i), (90, 60), (150, 40), (230, 30 + 5 * i)], fill=(47, 111, 223), width=3)
        draw.text((34, 138), name, fill="black")
        image.save(folder / name, "PNG", optimize=True)
    return [f"plots/{name}" for name in PLOTS]


# -- drawn test images --------------------------------------------------------------------------------


def draw_seven(size: tuple[int, int] = (280, 280), *, width: int = 24, ink: int = 0, paper: int = 255,
               box: tuple[float, float, float, float] = (0.3, 0.2, 0.7, 0.8), mode: str = "L") -> Image.Image:
    """A '7' with PIL.ImageDraw inside the fractional `box` (left, top, right, bottom) of the canvas."""
    w, h = size
    left, top, right, bottom = box[0] * w, box[1] * h, box[2] * w, box[3] * h
    image = Image.new(mode, size, paper if mode == "L" else (paper,) * len(mode))
    fill = ink if mode == "L" else (ink,) * len(mode)
    ImageDraw.Draw(image).line([(left, top), (right, top), ((left + right) / 2, bottom)], fill=fill, width=width)
    return image


def draw_one(size: tuple[int, int] = (200, 200), *, width: int = 16) -> Image.Image:
    image = Image.new("L", size, 255)
    w, h = size
    ImageDraw.Draw(image).line([(w / 2, 0.15 * h), (w / 2, 0.85 * h)], fill=0, width=width)
    return image


def draw_zero(size: tuple[int, int] = (200, 200), *, width: int = 16) -> Image.Image:
    image = Image.new("L", size, 255)
    w, h = size
    ImageDraw.Draw(image).ellipse([0.3 * w, 0.15 * h, 0.7 * w, 0.85 * h], outline=0, width=width)
    return image


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def as_photo(digit: np.ndarray, *, scale: int = 5, canvas: tuple[int, int] = (400, 300),
             at: tuple[int, int] = (30, 120), paper: int = 225) -> Image.Image:
    """An MNIST digit as a user would send it: dark ink on light paper, larger, off-centre."""
    big = Image.fromarray(255 - digit).resize((28 * scale, 28 * scale), Image.Resampling.BILINEAR)
    big = Image.fromarray(np.minimum(np.asarray(big), paper).astype(np.uint8))
    page = Image.new("L", canvas, paper)
    page.paste(big, at)
    return page


# -- a live server ------------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0, **kwargs)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # the arbiter and its worker share the group
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(exported: Path, home: Path, *, env: dict[str, str] | None = None, ready: str = "/readyz",
                 timeout: float = 90.0) -> Server:
    """`bentoml serve serving.service:MNISTService` on loopback; returns once `ready` answers 200."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "MNISTSERVE_EXPORTED": str(exported), "BENTOML_HOME": str(home),
                "BENTOML_DO_NOT_TRACK": "true", "PYTHONPATH": str(REPO), **(env or {})}
    log = home / "server.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", "serving.service:MNISTService", "--port", str(port),
         "--host", "127.0.0.1"],
        cwd=REPO, env=full_env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bentoml serve exited with {process.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(server.url + ready, timeout=2.0).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    server.stop()
    raise RuntimeError(f"bentoml serve did not become ready in {timeout}s:\n{server.log_tail()}")


# -- pytest fixtures (import them into a test module to use them) -------------------------------------


@pytest.fixture(scope="session")
def digits() -> tuple[Digits, Digits]:
    return _load_digits()


@pytest.fixture(scope="session")
def mlp(digits) -> nn.Module:
    return train_mlp(digits[0])


@pytest.fixture(scope="session")
def exported_dir(tmp_path_factory, mlp) -> Path:
    directory = tmp_path_factory.mktemp("exported")
    write_exported(directory, mlp)
    return directory


@pytest.fixture(scope="session")
def server(exported_dir, tmp_path_factory):
    env = {"MNISTSERVE_ENABLE_BENCHMARK": "1", "MNISTSERVE_MAX_PIXELS": "1000000", "MNISTSERVE_MAX_BATCH_IMAGES": "8",
           "MNISTSERVE_ADAPTIVE_BATCHING": "1",
           "MNISTSERVE_MAX_BATCH_SIZE": "16", "MNISTSERVE_MAX_LATENCY_MS": "20000"}
    running = start_server(exported_dir, tmp_path_factory.mktemp("bentoml-home"), env=env)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def exported_with_plots(exported_dir, tmp_path_factory) -> Path:
    """A copy of exported_dir whose manifest lists plots in exported/plots (the web page shows them)."""
    directory = tmp_path_factory.mktemp("exported-plots")
    shutil.copytree(exported_dir, directory, dirs_exist_ok=True)
    manifest = read_json(directory / "manifest.json")
    manifest["plots"] = add_plots(directory) + ["plots/missing.png", "plots/../manifest.json", "../mlp.onnx"]
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return directory


@pytest.fixture(scope="session")
def ui_server(exported_with_plots, tmp_path_factory):
    """A second server, with default settings (adaptive batching off: /predict runs the models directly)."""
    running = start_server(exported_with_plots, tmp_path_factory.mktemp("bentoml-home-ui"))
    yield running
    running.stop()
