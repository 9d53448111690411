"""`train --all --profile smoke` end to end, then the export of every architecture (parity included)."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from mnistserve.cli import app
from mnistserve.contracts import read_json, sha256_file, validate_manifest
from training.export import SHIP_LIMIT_BYTES
from training.models import get_spec, model_names

# Trains and exports all five architectures (~2-3 min on 2 cores): run by `make test-slow` and CI, not `make test`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def all_smoke(tmp_path_factory):
    """One smoke run of every registered architecture, exported."""
    root = tmp_path_factory.mktemp("all")
    runner = CliRunner()
    trained = runner.invoke(
        app,
        [
            "train",
            "--all",
            "--profile",
            "smoke",
            "--device",
            "cpu",
            "--weights",
            "none",
            "--runs-dir",
            str(root / "runs"),
        ],
    )
    assert trained.exit_code == 0, trained.output
    exported = runner.invoke(app, ["export", "--runs-dir", str(root / "runs"), "--out", str(root / "exported")])
    assert exported.exit_code == 0, exported.output
    return root, trained.output


def test_every_architecture_trains_and_is_compared(all_smoke):
    root, output = all_smoke
    comparison = read_json(root / "runs" / "latest" / "comparison.json")
    assert [e["model"] for e in comparison["models"]] == model_names()
    for entry in comparison["models"]:
        assert entry["status"] == "ok", entry.get("error")
        assert entry["pretrained"] is False and entry["weights"] == "none"  # --weights none: never claimed
        assert 0.0 <= entry["metrics"]["accuracy"] <= 1.0 and entry["metrics"]["parameters"] > 0
        assert entry["metrics"]["loss_kind"] == get_spec(entry["model"]).loss_kind
    assert "detection" in get_spec("faster_rcnn").loss_kind
    for name in model_names():
        assert name in output and (root / "runs" / "latest" / f"confusion_{name}.png").is_file()


def test_every_architecture_exports_with_parity(all_smoke):
    root, _ = all_smoke
    out = root / "exported"
    manifest = validate_manifest(read_json(out / "manifest.json"))
    assert sorted(manifest["models"]) == sorted(model_names())
    for name, entry in manifest["models"].items():
        assert entry["parity"]["ok"] and entry["parity"]["predictions_equal"], name
        assert entry["sha256"] == sha256_file(out / entry["file"])
        assert entry["max_batch"] == get_spec(name).export_batch
        if entry["parity"]["relative"]:
            assert entry["parity"]["max_prob_diff"] <= 1e-3, name
        else:
            assert entry["parity"]["max_abs_diff"] <= 1e-4, name
    assert manifest["models"]["faster_rcnn"]["max_batch"] is None  # the batched detector takes any batch
    # Shipping follows the size limit alone; VGG16 is over it even at smoke size (AlexNet's small head is not).
    for name, entry in manifest["models"].items():
        assert entry["size_bytes"] == (out / entry["file"]).stat().st_size
        assert entry["shipped"] == (entry["size_bytes"] <= SHIP_LIMIT_BYTES), name
    unshipped = sorted(f"/{e['file']}" for e in manifest["models"].values() if not e["shipped"])
    assert "/vgg16" in [re.sub(r"\.[0-9a-f]{12}\.onnx$", "", u) for u in unshipped]  # content-addressed names
    for name in (".gitignore", ".bentoignore"):
        assert sorted((out / name).read_text().split()) == unshipped, name
    assert manifest["winner"] in manifest["models"] and manifest["models"][manifest["default"]]["shipped"]
