"""Where a number came from: device, library versions and git revision, stored beside every result."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata

import torch


def device_description(device: str) -> str:
    """Human-readable device name, e.g. 'cuda: NVIDIA H100 80GB HBM3' or 'cpu: x86_64, 2 threads'."""
    if device.startswith("cuda"):
        return f"cuda: {torch.cuda.get_device_name(torch.device(device))}"
    return f"cpu: {platform.machine()}, {torch.get_num_threads()} threads"


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape the numbers."""
    out = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "onnx", "onnxruntime-gpu", "onnxruntime", "scikit-learn", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    out["cuda"] = torch.version.cuda or "none"
    return out


def git_revision() -> str:
    """Current commit (with '-dirty' when the tree has changes), or 'unknown' outside a checkout."""
    if os.environ.get("MNISTSERVE_GIT_REVISION"):  # a copy of the tree without .git (a remote GPU machine)
        return os.environ["MNISTSERVE_GIT_REVISION"]
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
