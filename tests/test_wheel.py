"""The wheel holds the product only: built offline from a copy of the checkout, it carries `mnistserve/`,
`training/` and `serving/` (with the web page's static files) and nothing of the tests, benchmarks, test kit,
reports or deployment files that sit beside them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import PurePosixPath

import pytest

from testkit.servers import REPO

PRODUCT = {"mnistserve", "training", "serving"}
# Beside the product in the checkout, never in the wheel: copied with it, so that leaking one shows.
NOT_SHIPPED = ["tests", "benchmarks", "testkit", "reports", "deploy"]
# Large or machine-local folders the build does not need.
SKIPPED = shutil.ignore_patterns(".git", ".venv", "exported", "runs", "data", "build", "dist", "*.egg-info", ".*cache")


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory) -> list[str]:
    """The file names inside a wheel built from a copy of the checkout (the checkout itself is left untouched)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source, out = tmp / "source", tmp / "out"
    shutil.copytree(REPO, source, ignore=SKIPPED)
    assert all((source / name).is_dir() for name in NOT_SHIPPED)
    # The installed setuptools, no index: the build needs no network.
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    done = subprocess.run([*command, "-w", str(out), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    (wheel,) = out.glob("mnistserve-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_wheel_holds_the_product_only(wheel_names):
    tops = {PurePosixPath(name).parts[0] for name in wheel_names if ".dist-info/" not in name}
    assert tops == PRODUCT, f"unexpected top-level entries: {sorted(tops - PRODUCT)}"


def test_wheel_carries_every_product_module_and_the_static_page(wheel_names):
    names = set(wheel_names)
    sources = [p for top in PRODUCT for p in (REPO / top).rglob("*.py") if "__pycache__" not in p.parts]
    missing = [str(p.relative_to(REPO)) for p in sources if p.relative_to(REPO).as_posix() not in names]
    assert not missing, f"product modules missing from the wheel: {missing}"
    static = {p.relative_to(REPO).as_posix() for p in (REPO / "serving" / "static").iterdir() if p.is_file()}
    assert static and static <= names, f"static files missing: {sorted(static - names)}"
