"""The real-world splits as every report shows them: sealed (the headline) beside dev, and files from before the
split still read (as dev). Models scored here are the suite's tiny MLPs, never a trained product model."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from mnistserve.contracts import COMPARISON_COLUMNS, atomic_write_json, comparison_cells, comparison_markdown, read_json
from mnistserve.realworld import REALWORLD_SPLITS, realworld_splits, split_accuracy
from serving.latency import LatencyBook
from serving.routes import Served, models_info
from serving.store import ModelStore
from training import export as E
from training import robustness
from training.realworld import CONDITIONS
from training.report import plot_realworld


def _result(accuracy: float, worst: str = "canvas") -> dict:
    per = {c: accuracy for c in CONDITIONS} | {worst: accuracy / 2}
    return {"accuracy": accuracy, "per_condition": per, "worst_condition": worst, "ece": 0.02, "ece_uncalibrated": 0.05}


OLD = {"accuracy": 0.93, "per_condition": {"fine_pen": 0.99, "photo": 0.81}, "worst_condition": "photo", "ece": 0.01}
NEW = {"sealed": _result(0.88), "dev": _result(0.95)}


def _comparison(realworld: dict, calibration: dict | None = None) -> dict:
    metrics = {
        "accuracy": 0.99,
        "macro_f1": 0.99,
        "test_loss": 0.03,
        "train_seconds": 10.0,
        "images_per_second": 1000.0,
        "parameters": 1000,
        "ece_test": 0.004,
    }
    entry = {"model": "cnn", "status": "ok", "metrics": metrics, "realworld": realworld, "pretrained": False}
    entry["calibration"] = calibration or {"temperature": 1.2}
    return {"run_id": "r", "profile": "cpu", "device": "cpu", "models": [entry]}


def test_a_pre_split_result_reads_as_dev_and_a_new_one_as_both():
    assert realworld_splits(OLD) == {"dev": OLD}
    assert list(realworld_splits(NEW)) == list(REALWORLD_SPLITS) == ["sealed", "dev"]
    assert realworld_splits(None) == {} and realworld_splits({"dev": None}) == {}
    assert split_accuracy(NEW, "sealed") == 0.88 and split_accuracy(OLD, "sealed") is None


def test_the_comparison_table_shows_sealed_then_dev():
    header = list(COMPARISON_COLUMNS)
    assert header.index("real-world sealed") + 1 == header.index("real-world dev")
    (cells,) = comparison_cells(_comparison(NEW))
    assert cells[header.index("real-world sealed")] == "88.00%" and cells[header.index("real-world dev")] == "95.00%"
    md = comparison_markdown(_comparison(NEW))
    assert md.index("sealed test split") < md.index("development split")
    assert "| cnn | 88.00% |" in md and "| cnn | 95.00% |" in md and "5.00% -> 2.00%" in md


def test_a_comparison_from_before_the_split_still_prints_as_dev():
    old = _comparison(OLD, {"temperature": 1.1, "ece_realworld": {"before": 0.03, "after": 0.01}})
    (cells,) = comparison_cells(old)
    header = list(COMPARISON_COLUMNS)
    assert cells[header.index("real-world sealed")] == "-" and cells[header.index("real-world dev")] == "93.00%"
    md = comparison_markdown(old)
    assert "sealed test split" not in md and "development split" in md and "3.00% -> 1.00%" in md


@pytest.mark.parametrize("realworld", [NEW, OLD], ids=["split", "pre-split"])
def test_the_realworld_plot_draws_either(tmp_path, realworld):
    path = tmp_path / "realworld.png"
    assert plot_realworld(_comparison(realworld), path)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_the_default_model_rule_reads_dev_never_sealed():
    def entry(dev: float, sealed: float) -> dict:
        return {
            "onnx_accuracy": 0.99,
            "shipped": True,
            "realworld": {"sealed": {"accuracy": sealed}, "dev": {"accuracy": dev}},
        }

    assert E.pick_default({"a": entry(0.90, 0.99), "b": entry(0.95, 0.50)}) == "b"
    assert "dev split" in E.DEFAULT_RULE and "never the sealed" in E.DEFAULT_RULE


@pytest.fixture(scope="module")
def tiny_sets() -> dict[str, robustness.RealWorldSet]:
    return {name: robustness.build(1, name) for name in REALWORLD_SPLITS}


def test_each_split_is_built_preprocessed_and_cached_apart(tiny_sets, tmp_path):
    for name, rw in tiny_sets.items():
        assert rw.info["split"] == name and rw.images.shape == (len(CONDITIONS), 1, 28, 28)
        assert list(rw.conditions) == list(CONDITIONS) and rw.info["seed"] == robustness.get_split(name).seed
    assert tiny_sets["dev"].info["sha256"] != tiny_sets["sealed"].info["sha256"]
    assert tiny_sets["dev"].info["code"] == tiny_sets["sealed"].info["code"]  # one generator, one preprocessing
    loaded = robustness.load_splits(1, tmp_path)
    assert sorted(p.name.split("-")[1] for p in tmp_path.glob("realworld-*.npz")) == ["dev", "sealed"]
    again = robustness.load_splits(1, tmp_path)  # from the cache: the same arrays
    for name in REALWORLD_SPLITS:
        assert np.array_equal(loaded[name].images, again[name].images) and again[name].info == loaded[name].info
        assert np.array_equal(loaded[name].images, tiny_sets[name].images)


def test_exported_models_are_scored_per_split_and_reported(exported_dir, tiny_sets, tmp_path):
    results = robustness.evaluate_exported(exported_dir, tiny_sets)
    assert results and all(list(r["splits"]) == list(REALWORLD_SPLITS) for r in results.values())
    for r in results.values():
        for name, s in r["splits"].items():
            assert s["images"] == len(CONDITIONS) and s["set"]["split"] == name and 0 <= s["accuracy"] <= 1
    report = robustness.write_report(results, tiny_sets, tmp_path, command="test", gallery=False)
    text = report.read_text()
    assert text.index("Sealed test split") < text.index("Development split")
    flagged = [(n, split, r["splits"][split]["flag"]) for n, r in results.items() for split in REALWORLD_SPLITS]
    for name, split, flag in flagged:  # what the unsure flag catches, per model and split, as the JSON has it
        assert f"| {name} | {split} | {flag['uncertain_below']:.4f} | {100 * flag['wrong']:.2f}% |" in text
    payload = read_json(tmp_path / "robustness.json")
    assert payload["sets"]["headline"] == "sealed" and set(payload["sets"]) >= {"sealed", "dev", "conditions"}
    assert (tmp_path / "robustness.png").read_bytes()[:4] == b"\x89PNG"


def test_models_route_shows_both_splits_and_reads_an_older_export(exported_dir, tmp_path):
    directory = tmp_path / "exported"
    shutil.copytree(exported_dir, directory)
    manifest = read_json(directory / "manifest.json")
    first, second = list(manifest["models"])[:2]
    manifest["models"][first]["realworld"] = NEW
    manifest["models"][second]["realworld"] = OLD  # exported before the split
    atomic_write_json(directory / "manifest.json", manifest)
    body = models_info(Served(ModelStore(directory), LatencyBook()))
    shown = {m["name"]: m["realworld"] for m in body["models"]}
    assert list(shown[first]) == ["sealed", "dev"] and shown[first]["sealed"]["accuracy"] == 0.88
    assert shown[second] == {"dev": OLD}
