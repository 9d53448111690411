"""benchmarks.temperature: each model's pools read at the manifest's, dev's and the pools' temperature."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from benchmarks import temperature as T
from mnistserve.contracts import read_json, softmax
from training.metrics import nll


@pytest.fixture()
def made(mnist) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Small pools of MNIST test digits, some of them noised so that models are wrong on a few."""
    rng = np.random.default_rng(0)
    x = mnist.test.images[:300].numpy().astype(np.float32)[:, None] / 255
    y = mnist.test.labels[:300].numpy()
    noisy = np.clip(x + rng.normal(0, 0.6, x.shape).astype(np.float32), 0, 1)
    return {"dev": (noisy[:150], y[:150]), "faint": (x[150:], y[150:]), "lowres": (noisy[150:], y[150:])}


def test_each_temperature_keeps_the_answers_and_dev_fit_lowers_devs_nll(exported_dir, made, monkeypatch, tmp_path):
    """A temperature moves no top digit; the one fitted on dev gives dev the lowest NLL of them all, each row's flag
    is the export's rule refitted at that temperature, and a manifest fitted on dev shows training's fit beside it."""
    from serving.store import ModelStore

    served = tmp_path / "exported"
    shutil.copytree(exported_dir, served)
    manifest = read_json(served / "manifest.json")
    manifest["models"]["mlp"]["calibration"] = {"temperature": 1.7, "validation": {"temperature": 0.8}}
    (served / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(T, "pools", lambda: made)
    monkeypatch.setattr(sys, "argv", ["temperature", "--exported", str(served), "--out", str(tmp_path)])
    T.main()
    results = json.loads((tmp_path / "temperature.json").read_text())["results"]
    assert results["images"] == {pool: len(y) for pool, (_, y) in made.items()}
    store = ModelStore(served).models
    assert results["models"] and set(results["models"]) <= set(store)
    for name, m in results["models"].items():
        scores = T.H.run_chunked(store[name], made["dev"][0]).astype(np.float64)
        rows = m["temperatures"]
        assert rows["manifest (served)"]["temperature"] == store[name].temperature
        calibration = store[name].entry.get("calibration", {})
        trained = calibration.get("validation", calibration).get("temperature", store[name].temperature)
        assert rows["MNIST validation"]["temperature"] == trained
        losses = {label: nll(scores, made["dev"][1], r["temperature"]) for label, r in rows.items()}
        assert losses["dev"] <= min(losses.values()) + 1e-9, losses
        for r in rows.values():
            p = softmax(scores, r["temperature"])
            wrong = p.argmax(1) != made["dev"][1]
            assert r["pools"]["dev"]["wrong"] == pytest.approx(wrong.mean())
            assert r["pools"]["dev"]["confident_wrong"] == pytest.approx((wrong & (p.max(1) >= 0.9)).mean())
    mlp = results["models"]["mlp"]["temperatures"]
    assert (mlp["manifest (served)"]["temperature"], mlp["MNIST validation"]["temperature"]) == (1.7, 0.8)
    assert all(f"## {name}" in (tmp_path / "temperature.md").read_text() for name in results["models"])
