"""Where a number came from: device, library versions and git revision, stored beside every result."""

from __future__ import annotations

import platform

import torch

from mnistserve import provenance


def device_description(device: str) -> str:
    """Human-readable device name, e.g. 'cuda: NVIDIA H100 80GB HBM3' or 'cpu: x86_64, 2 threads'."""
    if device.startswith("cuda"):
        return f"cuda: {torch.cuda.get_device_name(torch.device(device))}"
    return f"cpu: {platform.machine()}, {torch.get_num_threads()} threads"


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape the numbers, and the CUDA torch was built with."""
    return {**provenance.versions(), "cuda": torch.version.cuda or "none"}


def synchronize(device: str) -> None:
    """Wait for queued CUDA work, so that wall-clock time covers it (a no-op on the CPU)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def git_revision() -> str:
    """The revision of the checkout that ran (see `mnistserve.provenance.git_revision`)."""
    return provenance.git_revision()
