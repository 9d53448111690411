"""The exporter: a verified ONNX file per model, the manifest, atomic replacement, checksums."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from mnistserve.contracts import read_json, sha256_file, shipped_comparison, softmax, validate_manifest
from training import export as E
from training import publish as P


@pytest.fixture(scope="module")
def exported(smoke_runs, mnist, tmp_path_factory):
    out = tmp_path_factory.mktemp("exported")
    manifest = E.export_run(smoke_runs / "latest", out, mnist, log=lambda m: None)
    return out, manifest


def test_manifest_describes_a_verified_file(exported):
    out, manifest = exported
    assert validate_manifest(read_json(out / "manifest.json")) == manifest
    entry = manifest["models"]["cnn"]
    assert manifest["default"] == "cnn" and entry["shipped"] is True and entry["max_batch"] is None
    assert (
        entry["sha256"] == sha256_file(out / entry["file"])
        and entry["size_bytes"] == (out / entry["file"]).stat().st_size
    )
    assert entry["parity"]["images"] == 1000 and entry["parity"]["predictions_equal"]
    assert entry["parity"]["max_abs_diff"] < 1e-4
    assert 0.0 < entry["onnx_accuracy"] <= 1.0 and entry["latency_ms"]["batch1"] > 0
    assert read_json(shipped_comparison(out))["run_id"] == manifest["run_id"]
    assert not list(out.parent.glob(f".{out.name}.staging-*")) + list(out.glob("*staging*"))  # staged beside, removed
    plots = {P.VERSIONED.sub("", Path(p).stem) for p in manifest["plots"]}  # plots/<name>.<sha12>.png
    assert {"accuracy_vs_time", "confusion_cnn"} <= plots
    assert all((out / p).read_bytes()[:4] == b"\x89PNG" for p in manifest["plots"])


def test_manifest_carries_calibration_real_world_and_the_default_rule(exported):
    out, manifest = exported
    entry = manifest["models"]["cnn"]
    comparison_entry = read_json(out / manifest["comparison"]["file"])["models"][0]
    cal = entry["calibration"]
    assert cal["validation"] == comparison_entry["calibration"]  # the training run's fit, kept beside the served one
    assert list(entry["realworld"]) == ["sealed", "dev"] and manifest["realworld"]["headline"] == "sealed"
    for name, real in entry["realworld"].items():
        assert set(real["per_condition"]) == set(manifest["realworld"]["conditions"])
        assert 0.0 <= real["accuracy"] <= 1.0 and real["set"]["sha256"] == manifest["realworld"][name]["sha256"]
        # Each split says what the model's own "unsure" threshold, chosen on dev, catches and costs there.
        assert real["flag"]["uncertain_below"] == entry["calibration"]["uncertain_below"]
        assert set(real["flag"]) >= {"caught", "flagged_right", "confident_wrong"}
    assert 0.0 <= entry["calibration"]["uncertain_below"] <= 1.0
    assert "development split" in entry["calibration"]["uncertain_fitted_on"]
    assert "real-world accuracy on the dev split" in manifest["default_rule"]
    props = {p.key: p.value for p in onnx.load(str(out / entry["file"])).metadata_props}
    assert '"temperature"' in props["mnistserve"]  # the file carries its own temperature


def test_the_served_temperature_is_fitted_on_dev_as_served(exported, mnist):
    """The temperature is the NLL fit on the exported file's scores of dev (not training's fit, nor one on another
    split); MNIST test's ECE in the manifest is at that temperature."""
    from training import robustness
    from training.metrics import expected_calibration_error, fit_temperature, nll

    out, manifest = exported
    entry = manifest["models"]["cnn"]
    cal = entry["calibration"]
    dev = robustness.load_splits(robustness.PER_CONDITION["smoke"], mnist.cache_dir, ("dev",))["dev"]
    session = ort.InferenceSession(str(out / entry["file"]), providers=["CPUExecutionProvider"])
    scores = session.run(["scores"], {"input": dev.images})[0].astype(np.float64)
    assert cal["dev_wrong"] == int((scores.argmax(1) != dev.labels).sum()) >= E.DEV_FIT_MIN_WRONG  # a smoke model
    assert "development split" in cal["fitted_on"] and cal["images"] == len(dev)
    t = cal["temperature"]
    assert t == pytest.approx(fit_temperature(scores, dev.labels), rel=1e-4)
    sealed = robustness.load_splits(robustness.PER_CONDITION["smoke"], mnist.cache_dir, ("sealed",))["sealed"]
    sealed_scores = session.run(["scores"], {"input": sealed.images})[0].astype(np.float64)
    assert t != pytest.approx(fit_temperature(sealed_scores, sealed.labels), rel=1e-3)  # the two splits' fits differ
    assert cal["dev_nll_before"] == pytest.approx(nll(scores, dev.labels, cal["validation"]["temperature"]))
    assert cal["dev_nll_after"] == pytest.approx(nll(scores, dev.labels, t))
    assert cal["dev_nll_after"] <= cal["dev_nll_before"]
    test = mnist.test.subset(entry["metrics"]["test_images"])
    test_scores = session.run(["scores"], {"input": test.images.numpy()[:, None].astype(np.float32) / 255})[0]
    ece = expected_calibration_error(softmax(test_scores, t), test.labels.numpy())
    assert entry["metrics"]["ece_test"] == cal["ece_test"]["after"] == pytest.approx(ece, abs=1e-6)


def test_too_few_wrong_answers_on_dev_keep_the_validation_temperature():
    """A model right on nearly all of dev has no NLL minimum worth serving: the run's own fit stays, and says so."""
    from types import SimpleNamespace

    labels = np.arange(200) % 10
    scores = np.eye(10)[labels] * 8.0
    scores[: E.DEV_FIT_MIN_WRONG - 1] = np.roll(scores[: E.DEV_FIT_MIN_WRONG - 1], 1, axis=1)  # one short of the bar
    trained = {"temperature": 1.3, "fitted_on": "validation split"}
    kept = E.dev_temperature(scores, SimpleNamespace(labels=labels), trained)
    assert kept["temperature"] == 1.3 and kept["fitted_on"] == "validation split" and kept["validation"] == trained
    assert kept["dev_wrong"] == E.DEV_FIT_MIN_WRONG - 1
    scores[E.DEV_FIT_MIN_WRONG - 1] = np.roll(scores[E.DEV_FIT_MIN_WRONG - 1], 1)  # at the bar: fitted on dev
    fitted = E.dev_temperature(scores, SimpleNamespace(labels=labels), trained)
    assert fitted["temperature"] == pytest.approx(E.fit_temperature(scores, labels), rel=1e-6)
    assert "development split" in fitted["fitted_on"] and fitted["validation"] == trained
    # A run made before calibration: nothing to keep under "validation"; short of the bar it is served at 1.
    scores[E.DEV_FIT_MIN_WRONG - 1] = np.roll(scores[E.DEV_FIT_MIN_WRONG - 1], -1)
    bare = E.dev_temperature(scores, SimpleNamespace(labels=labels), None)
    assert bare["temperature"] == 1.0 and "validation" not in bare and bare["fitted_on"].startswith("none")


def _entry(name: str, test: float, real: float, shipped: bool = True) -> dict:
    return {"onnx_accuracy": test, "realworld": {"accuracy": real}, "shipped": shipped}


def test_default_weighs_real_world_accuracy_within_an_mnist_margin():
    pick = E.pick_default
    assert pick({"a": _entry("a", 0.995, 0.90), "b": _entry("b", 0.993, 0.97)}) == "b"  # real-world wins
    assert pick({"a": _entry("a", 0.995, 0.90), "b": _entry("b", 0.980, 0.99)}) == "a"  # b fails the MNIST gate
    assert pick({"a": _entry("a", 0.995, 0.90), "b": _entry("b", 0.999, 0.99, shipped=False)}) == "a"  # b not in git
    assert pick({"a": _entry("a", 0.99, 0.95), "b": _entry("b", 0.995, 0.95)}) == "b"  # a tie goes to MNIST


def test_onnx_file_takes_any_batch_and_carries_metadata(exported, mnist):
    out, manifest = exported
    cnn = out / manifest["models"]["cnn"]["file"]
    proto = onnx.load(str(cnn))
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["model"] == "cnn" and '"onnx_accuracy"' in props["mnistserve"]
    session = ort.InferenceSession(str(cnn), providers=["CPUExecutionProvider"])
    for n in (1, 3, 64):
        x = mnist.test.images[:n].numpy()[:, None].astype(np.float32) / 255
        assert session.run(["scores"], {"input": x})[0].shape == (n, 10)


def test_robustness_command_measures_the_export_as_served(exported, tmp_path):
    from typer.testing import CliRunner

    from mnistserve.cli import app
    from training.realworld import CONDITIONS

    out, manifest = exported
    result = CliRunner().invoke(
        app, ["robustness", "--exported", str(out), "--per-condition", "2", "--out", str(tmp_path / "rob")]
    )
    assert result.exit_code == 0, result.output
    assert result.output.index("sealed test split") < result.output.index("development split")
    report = read_json(tmp_path / "rob" / "robustness.json")
    cnn = report["models"]["cnn"]
    assert cnn["sha256"] == manifest["models"]["cnn"]["sha256"] and list(cnn["splits"]) == ["sealed", "dev"]
    for split in cnn["splits"].values():
        assert split["images"] == 2 * len(CONDITIONS) and list(split["per_condition"]) == list(CONDITIONS)
    assert report["git_revision"] and report["device"]
    assert cnn["temperature"] == manifest["models"]["cnn"]["calibration"]["temperature"]
    for name in ("robustness.md", "robustness.png", "gallery-dev.png", "gallery-sealed.png"):
        assert (tmp_path / "rob" / name).is_file(), name
    dev_only = CliRunner().invoke(app, ["robustness", "--exported", str(out), "--per-condition", "2", "--split", "dev"])
    assert dev_only.exit_code == 0 and "development split" in dev_only.output and "sealed" not in dev_only.output
    bad = CliRunner().invoke(app, ["robustness", "--exported", str(tmp_path / "missing")])
    assert bad.exit_code == 2 and "manifest.json not found" in bad.output and "Traceback" not in bad.output
    wrong = CliRunner().invoke(app, ["robustness", "--exported", str(out), "--split", "test"])
    assert wrong.exit_code == 2 and "known: sealed, dev" in wrong.output and "Traceback" not in wrong.output


def test_a_tampered_file_is_refused_by_the_store(exported, tmp_path):
    from serving.store import ModelStore

    out, manifest = exported
    copy = tmp_path / "exported"
    shutil.copytree(out, copy)
    cnn = copy / manifest["models"]["cnn"]["file"]
    data = bytearray(cnn.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cnn.write_bytes(bytes(data))
    assert "cnn" in ModelStore(out).models  # the untouched export is served
    store = ModelStore(copy)
    assert "cnn" not in store.models and "checksum mismatch" in store.skipped["cnn"]


def test_failed_export_leaves_previous_exported_intact(exported, smoke_runs, mnist, monkeypatch):
    out, _ = exported
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    monkeypatch.setattr(E, "check_parity", lambda *a, **k: {"ok": False, "max_abs_diff": 1.0})
    with pytest.raises(E.ExportError, match="disagrees"):
        E.export_run(smoke_runs / "latest", out, mnist, log=lambda m: None)
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before and not list(out.parent.glob(f".{out.name}.staging-*")) + list(out.glob("*staging*"))


def test_choose_filters_and_ranks():
    comparison = {
        "models": [
            {"model": "a", "status": "ok", "metrics": {"accuracy": 0.97}},
            {"model": "b", "status": "ok", "metrics": {"accuracy": 0.99}},
            {"model": "c", "status": "failed", "error": "OOM"},
        ]
    }
    assert [e["model"] for e in E.choose(comparison, None, None)] == ["b", "a"]
    assert [e["model"] for e in E.choose(comparison, None, 1)] == ["b"]
    with pytest.raises(ValueError, match="not trained successfully in this run: c"):
        E.choose(comparison, ["c"], None)


def test_parity_check_limits():
    a = np.zeros((4, 10), np.float32)
    a[:, 3] = 5.0
    assert E.check_parity(a, a + 5e-5, relative=False)["ok"]
    assert not E.check_parity(a, a + 5e-4, relative=False)["ok"]
    assert E.check_parity(a, a + 0.5, relative=True)["ok"]  # a shift leaves the probabilities as they were
    lifted = a.copy()
    lifted[:, 0] = 1.0  # class 0's probability rises from ~0.7% to ~1.8%
    assert not E.check_parity(a, lifted, relative=True)["ok"]
    flipped = a.copy()
    flipped[0, 7] = 6.0
    assert not E.check_parity(a, flipped, relative=True)["predictions_equal"]


def test_the_unsure_threshold_keeps_to_its_budget_of_right_answers():
    """Right answers' top probabilities 3e-6 apart and confidently wrong ones: the threshold is the budget's line
    (UNSURE_BUDGET of the right answers) and flags no more of them than that; rounded up to 4 decimals it flagged
    11.2%, and drawn exactly at the 81st right answer it flagged that one too (float noise)."""
    right = 0.990066 + 3e-6 * np.arange(1000)
    wrong = np.full(50, 0.9999)
    top = np.concatenate([right, wrong])
    labels = np.concatenate([np.zeros(1000, int), np.ones(50, int)])  # the wrong ones' true digit is 1, answered 0
    probabilities = np.full((top.size, 10), 0.0)
    probabilities[:, 0] = top
    probabilities[:, 1:] = ((1 - top) / 9)[:, None]
    dev = type("Dev", (), {"labels": labels})()
    threshold = E.unsure_threshold(np.log(probabilities), dev, temperature=1.0)["uncertain_below"]
    flagged_right = float((right < threshold).mean())
    assert E.UNSURE_BUDGET - 0.005 <= flagged_right <= E.UNSURE_BUDGET, (threshold, flagged_right)
