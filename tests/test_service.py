"""The service's parts: settings, latency book and model store; readiness without a model; `bentoml build`.

Its HTTP API: tests/test_api.py (in-process); what only a running server shows: tests/test_live_server.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml

from mnistserve.contracts import read_json, sha256_file
from mnistserve.settings import Settings
from serving.errors import Unavailable, UnknownModel
from serving.latency import LatencyBook
from serving.store import ManifestError, ModelStore, softmax
from testkit.digits import draw_seven, encode
from testkit.exported import rename_input
from testkit.servers import REPO, in_process

SEVEN = encode(draw_seven())


# -- units: settings, latency, store --------------------------------------------------------------


def test_settings_come_from_the_environment():
    assert Settings.from_env({}) == Settings()
    s = Settings.from_env({"MNISTSERVE_MAX_BODY_BYTES": "1000", "MNISTSERVE_ENABLE_BENCHMARK": "1"})
    assert s.max_body_bytes == 1000 and s.enable_benchmark
    assert Settings.from_env({"MNISTSERVE_ADAPTIVE_BATCHING": "1"}).adaptive_batching
    assert not Settings.from_env({"MNISTSERVE_ADAPTIVE_BATCHING": "off", "MNISTSERVE_ACCESS_LOG": "0"}).access_log
    for bad in (
        {"MNISTSERVE_MAX_PIXELS": "lots"},
        {"MNISTSERVE_MAX_PIXELS": "-1"},
        {"MNISTSERVE_MAX_BATCH_SIZE": "1"},
        {"MNISTSERVE_ADAPTIVE_BATCHING": "sometimes"},
    ):
        with pytest.raises(ValueError, match="MNISTSERVE_(MAX|ADAPTIVE)"):
            Settings.from_env(bad)


def test_latency_book_keeps_a_rolling_window():
    book = LatencyBook(window=100)
    for v in range(1, 201):
        book.request("m", inference_ms=v, request_ms=2 * v)
    summary = book.summary("m")
    assert summary["inference_ms"]["count"] == 200 and summary["inference_ms"]["window"] == 100
    assert summary["inference_ms"]["p50"] == pytest.approx(150.5) and summary["request_ms"]["max"] == 400
    assert summary["inference_ms"]["p50"] <= summary["inference_ms"]["p90"] <= summary["inference_ms"]["p99"]
    assert book.summary("other")["batch_size"] == {
        "count": 0,
        "window": 0,
        "mean": None,
        "p50": None,
        "p90": None,
        "p99": None,
        "max": None,
    }


def test_store_serves_good_models_and_skips_the_others_with_a_reason(exported_dir):
    store = ModelStore(exported_dir)
    assert list(store.models) == ["mlp", "mlp_b1"] and store.default == "mlp"
    assert "checksum mismatch" in store.skipped["tampered"]
    assert "onnxruntime cannot load" in store.skipped["garbage"]
    assert "missing (not shipped" in store.skipped["faster_rcnn"]
    assert store.models["mlp"].provider == "CPUExecutionProvider" and store.models["mlp"].max_batch is None
    assert store.models["mlp_b1"].max_batch == 1
    x = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    dynamic, _ = store.get("mlp").run(x)
    one_by_one, _ = store.get("mlp_b1").run(x)  # a fixed batch of one still answers five images
    np.testing.assert_allclose(dynamic, one_by_one, atol=1e-5)
    with pytest.raises(UnknownModel, match="served models: mlp, mlp_b1") as info:
        store.get("../../etc/passwd")
    assert info.value.status == 404
    with pytest.raises(UnknownModel, match="checksum mismatch"):
        store.get("tampered")


def _copy(exported_dir, tmp_path, edit):
    target = tmp_path / "exported"
    shutil.copytree(exported_dir, target)
    manifest = read_json(target / "manifest.json")
    edit(manifest, target)
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def test_default_falls_back_and_no_model_means_unavailable(exported_dir, tmp_path):
    def skip_default(manifest, target):
        (target / "mlp.onnx").unlink()

    store = ModelStore(_copy(exported_dir, tmp_path / "a", skip_default))
    assert store.default == "mlp_b1" and "mlp" in store.skipped

    def break_all(manifest, target):
        for entry in manifest["models"].values():
            entry["sha256"] = "0" * 64

    empty = ModelStore(_copy(exported_dir, tmp_path / "b", break_all))
    assert not empty.models and empty.default is None
    with pytest.raises(Unavailable) as info:
        empty.get(None)
    assert info.value.status == 503


def test_a_file_that_resolves_outside_exported_is_refused(exported_dir, tmp_path):
    outside = tmp_path / "outside.onnx"
    shutil.copy(exported_dir / "mlp.onnx", outside)

    def link_out(manifest, target):
        (target / "link.onnx").symlink_to(outside)
        manifest["models"]["link"] = {**manifest["models"]["mlp"], "file": "link.onnx"}

    store = ModelStore(_copy(exported_dir, tmp_path, link_out))
    assert "resolves outside" in store.skipped["link"]


def test_a_graph_that_breaks_the_contract_is_skipped(exported_dir, tmp_path, mlp):
    def wrong_input(manifest, target):
        from training.export import to_onnx

        to_onnx(mlp, target / "x.onnx", None)
        rename_input(target / "x.onnx", "x")  # the exporter's graph, with the input the service does not expect
        manifest["models"]["x"] = {
            **manifest["models"]["mlp"],
            "file": "x.onnx",
            "sha256": sha256_file(target / "x.onnx"),
        }

    store = ModelStore(_copy(exported_dir, tmp_path, wrong_input))
    assert "expected one 'input'" in store.skipped["x"]


@pytest.mark.parametrize(
    "content,message",
    [
        (None, "not found"),
        ("{not json", "not valid JSON"),
        ('{"schema": "other/1"}', "schema"),
        (
            '{"schema": "mnistserve.manifest/1", "default": "a", "models": {"a": {"file": "../a.onnx", "sha256": "0",'
            ' "shipped": true, "max_batch": null, "metrics": {}}}}',
            "outside exported",
        ),
        ('["a list"]', "JSON object"),
    ],
)
def test_a_bad_manifest_is_one_clear_start_up_error(tmp_path, content, message):
    if content is not None:
        (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(ManifestError, match=message):
        ModelStore(tmp_path)
    lenient = ModelStore(tmp_path, strict=False)  # the service's: up and unready, saying why on every request
    assert not lenient.models and re.search(message, lenient.problem)
    with pytest.raises(Unavailable, match="no model can be served: .*" + message):
        lenient.get(None)


def test_softmax_is_stable():
    p = softmax(np.array([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0]])


def test_service_module_imports_neither_torch_nor_training():
    code = "import serving.service, sys; assert 'torch' not in sys.modules and 'training' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": str(REPO), "BENTOML_DO_NOT_TRACK": "true"}
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True, timeout=120)


def test_each_service_reads_its_own_settings_without_reloading_the_module(exported_dir):
    """Settings are read when BentoML constructs the service: two services in a row, each with its own limits."""
    import serving.service

    module = id(serving.service.MNISTService)
    body = dict(content=SEVEN + b"\0" * 2000, headers={"Content-Type": "image/png"})
    with in_process(exported_dir, {"MNISTSERVE_MAX_BODY_BYTES": "1000"}) as small:
        r = small.post("/predict", **body)
        assert r.status_code == 413 and "limit is 1000" in r.json()["error"]
    with in_process(exported_dir) as default:
        assert default.post("/predict", **body).status_code == 200
    assert id(serving.service.MNISTService) == module  # the same class: nothing was re-imported


def test_no_servable_model_fails_readyz_only(exported_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in exported_dir.iterdir():
        shutil.copy(f, broken / f.name)
    manifest = read_json(broken / "manifest.json")
    for entry in manifest["models"].values():
        entry["sha256"] = "f" * 64
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with in_process(broken) as client:  # BentoML's /readyz asks the service's __is_ready__, in-process too
        assert client.get("/readyz").status_code == 503
        assert client.get("/livez").status_code == 200
        assert len(client.get("/models").json()["skipped"]) == 5
        r = client.post("/predict", files={"image": SEVEN})
        assert r.status_code == 503 and "checksum mismatch" in r.json()["error"]
        off = client.post("/latency/benchmark", json={})
        assert off.status_code == 403 and "MNISTSERVE_ENABLE_BENCHMARK" in off.json()["error"]


def test_bentoml_build_packs_the_models_without_torch(exported_dir, tmp_path):
    context = tmp_path / "context"
    context.mkdir()
    shutil.copy(REPO / "bentofile.yaml", context)
    shutil.copytree(REPO / "serving", context / "serving", ignore=shutil.ignore_patterns("__pycache__"))
    (context / "mnistserve").mkdir()
    includes = yaml.safe_load((REPO / "bentofile.yaml").read_text())["include"]
    for name in (p.lstrip("/") for p in includes if p.lstrip("/").startswith("mnistserve/")):  # what the Bento takes
        shutil.copy(REPO / name, context / "mnistserve")
    (context / "reports" / "serving").mkdir(parents=True)  # a folder of the same name elsewhere stays out
    (context / "reports" / "serving" / "serving.md").write_text("a report")
    shutil.copytree(REPO / "deploy" / "docker", context / "deploy" / "docker")  # the Dockerfile template
    shutil.copytree(exported_dir, context / "exported")
    (context / "exported" / "big.onnx").write_bytes(b"not shipped")  # as `mnistserve export` marks a large file
    (context / "exported" / ".bentoignore").write_text("/big.onnx\n")
    env = {
        **os.environ,
        "BENTOML_HOME": str(tmp_path / "home"),
        "BENTOML_DO_NOT_TRACK": "true",
        "PYTHONPATH": str(context),
    }
    done = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", str(context), "--output", "tag"],
        cwd=context,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    bentos = list((tmp_path / "home" / "bentos" / "mnistserve").glob("*/"))
    assert len(bentos) == 1
    bento = bentos[0]
    requirements = (bento / "env" / "python" / "requirements.txt").read_text().lower()
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    assert "onnxruntime" in requirements and "torch" not in requirements and "torch" not in dockerfile.lower()
    assert (bento / "src" / "exported" / "mlp.onnx").read_bytes() == (exported_dir / "mlp.onnx").read_bytes()
    assert (bento / "src" / "exported" / "manifest.json").is_file()
    assert not (bento / "src" / "exported" / "big.onnx").exists()  # what git does not ship, the image does not carry
    assert (bento / "src" / "serving" / "service.py").is_file() and not (bento / "src" / "training").exists()
    assert not (bento / "src" / "reports").exists()
    assert "BENTOML_DO_NOT_TRACK" in dockerfile or "BENTOML_DO_NOT_TRACK" in (bento / "bento.yaml").read_text()
    # The container runs the service as BentoML's unprivileged user, never root.
    users = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), users
