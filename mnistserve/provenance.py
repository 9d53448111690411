"""Where a number came from: the git revision of the checkout that ran and the versions of what shaped it.

Torch-free, so benchmarks of the service can stamp their reports with it too.
"""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "torch",
    "torchvision",
    "onnx",
    "onnxruntime-gpu",
    "onnxruntime",
    "bentoml",
    "scikit-learn",
    "numpy",
    "pillow",
)


def git_revision(cwd: Path | None = None) -> str:
    """The checkout's commit (with '-dirty' when tracked files differ from it), or 'unknown' outside a checkout.

    Read from the checkout itself, never from a variable: a copy without .git says 'unknown' rather than
    borrowing another tree's revision."""
    cwd = cwd or Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True
        ).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Python's version and those of the installed `packages`."""
    out = {"python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out
