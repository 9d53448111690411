"""Served probabilities are calibrated by the manifest's temperature, and a doubtful answer says so."""

from __future__ import annotations

import json
import shutil

import numpy as np

from mnistserve.contracts import read_json, softmax
from serving.store import UNCERTAIN_BELOW, ModelStore, digit


def test_the_manifest_temperature_softens_served_probabilities(exported_dir, tmp_path):
    plain = ModelStore(exported_dir)
    directory = tmp_path / "exported"
    shutil.copytree(exported_dir, directory)
    manifest = read_json(directory / "manifest.json")
    manifest["models"]["mlp"]["calibration"] = {"temperature": 2.5, "fitted_on": "test"}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    calibrated = ModelStore(directory)
    x = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    logits, _ = calibrated.models["mlp"].run(x)
    p = calibrated.models["mlp"].probabilities(logits)
    assert np.allclose(p, softmax(logits / 2.5)) and np.allclose(p.sum(1), 1.0)
    assert np.allclose(plain.models["mlp"].probabilities(logits), softmax(logits))  # no calibration: T = 1
    assert (p.max(1) < plain.models["mlp"].probabilities(logits).max(1)).all()


def test_answers_below_the_threshold_are_flagged_uncertain():
    sure = digit(np.r_[0.95, 0.05, np.zeros(8)])
    unsure = digit(np.r_[UNCERTAIN_BELOW - 0.01, 1 - UNCERTAIN_BELOW + 0.01, np.zeros(8)])
    assert sure["digit"] == 0 and sure["uncertain"] is False
    assert unsure["digit"] == 0 and unsure["uncertain"] is True and unsure["top3"][1]["digit"] == 1


def test_each_model_flags_by_its_own_threshold(exported_dir, tmp_path):
    directory = tmp_path / "exported"
    shutil.copytree(exported_dir, directory)
    manifest = read_json(directory / "manifest.json")
    manifest["models"]["mlp"]["calibration"] = {"temperature": 1.0, "uncertain_below": 0.95}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    store = ModelStore(directory)
    ninety = np.r_[0.9, 0.1, np.zeros(8)]
    assert store.models["mlp"].answer(ninety)["uncertain"] is True  # 0.9 < its 0.95
    assert store.models["mlp_b1"].answer(ninety)["uncertain"] is False  # no threshold of its own: UNCERTAIN_BELOW
    manifest["models"]["mlp"]["calibration"]["uncertain_below"] = 1.5
    (directory / "manifest.json").write_text(json.dumps(manifest))
    assert "uncertain_below 1.5" in ModelStore(directory).skipped["mlp"]


def test_a_bad_temperature_skips_the_model_with_a_reason(exported_dir, tmp_path):
    directory = tmp_path / "exported"
    shutil.copytree(exported_dir, directory)
    manifest = read_json(directory / "manifest.json")
    manifest["models"]["mlp"]["calibration"] = {"temperature": 0}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    store = ModelStore(directory)
    assert "mlp" not in store.models and "temperature 0" in store.skipped["mlp"]
