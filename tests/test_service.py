"""The service: store and latency units, then every endpoint of a live `bentoml serve` on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from mnistserve.contracts import read_json, sha256_file
from serving import Settings
from serving.latency import LatencyBook
from serving.preprocess import Unavailable, UnknownModel, from_bytes
from serving.store import ManifestError, ModelStore, softmax
from serving_fixtures import REPO, as_photo, draw_seven, encode, start_server
from serving_fixtures import digits, exported_dir, exported_with_plots, mlp, server, ui_server  # noqa: F401  (fixtures)

SEVEN = encode(draw_seven())


# -- units: settings, latency, store --------------------------------------------------------------


def test_settings_come_from_the_environment():
    assert Settings.from_env({}) == Settings()
    s = Settings.from_env({"MNISTSERVE_MAX_BODY_BYTES": "1000", "MNISTSERVE_ENABLE_BENCHMARK": "1"})
    assert s.max_body_bytes == 1000 and s.enable_benchmark
    assert Settings.from_env({"MNISTSERVE_ADAPTIVE_BATCHING": "1"}).adaptive_batching
    assert not Settings.from_env({"MNISTSERVE_ADAPTIVE_BATCHING": "off", "MNISTSERVE_ACCESS_LOG": "0"}).access_log
    for bad in ({"MNISTSERVE_MAX_PIXELS": "lots"}, {"MNISTSERVE_MAX_PIXELS": "-1"}, {"MNISTSERVE_MAX_BATCH_SIZE": "1"},
                {"MNISTSERVE_ADAPTIVE_BATCHING": "sometimes"}):
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
    assert book.summary("other")["batch_size"] == {"count": 0, "window": 0, "mean": None, "p50": None,
                                                   "p90": None, "p99": None, "max": None}


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
        torch.onnx.export(mlp, torch.zeros(1, 1, 28, 28), str(target / "x.onnx"), input_names=["x"],
                          output_names=["scores"], opset_version=18, dynamo=False)
        manifest["models"]["x"] = {**manifest["models"]["mlp"], "file": "x.onnx",
                                   "sha256": sha256_file(target / "x.onnx")}

    store = ModelStore(_copy(exported_dir, tmp_path, wrong_input))
    assert "expected one 'input'" in store.skipped["x"]


@pytest.mark.parametrize("content,message", [
    (None, "not found"), ("{not json", "not valid JSON"), ('{"schema": "other/1"}', "schema"),
    ('{"schema": "mnistserve.manifest/1", "default": "a", "models": {"a": {"file": "../a.onnx", "sha256": "0",'
     ' "shipped": true, "max_batch": null, "metrics": {}}}}', "outside exported"),
    ('["a list"]', "JSON object"),
])
def test_a_bad_manifest_is_one_clear_start_up_error(tmp_path, content, message):
    if content is not None:
        (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(ManifestError, match=message):
        ModelStore(tmp_path)


def test_softmax_is_stable():
    p = softmax(np.array([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0]])


def test_service_module_imports_neither_torch_nor_training():
    code = "import serving.service, sys; assert 'torch' not in sys.modules and 'training' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": str(REPO), "BENTOML_DO_NOT_TRACK": "true"}
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True, timeout=120)


# -- the live service -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def http(server):
    with server.client() as client:
        yield client


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_health_metrics_index_and_docs(http):
    assert http.get("/livez").status_code == 200 and http.get("/readyz").status_code == 200
    assert "bentoml_service_request" in http.get("/metrics").text
    assert "swagger" in http.get("/").text.lower()
    docs = http.get("/docs.json").json()
    for path in ("/predict", "/predict_all", "/predict_batch", "/classify", "/latency/benchmark"):
        post = docs["paths"][path]["post"]
        assert post["description"] and post["requestBody"]["content"]["application/json"]["example"]
        assert post["responses"]["200"]["content"]["application/json"]["example"]
        assert {"400", "404", "413", "422"} <= set(post["responses"])
    forms = set(docs["paths"]["/predict"]["post"]["requestBody"]["content"])
    assert {"multipart/form-data", "image/png", "image/jpeg"} <= forms
    for path in ("/models", "/comparison", "/latency"):
        assert docs["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["example"]
    assert "(./ui)" in docs["info"]["description"] and {"/ui", "/plots", "/plots/{name}"} <= set(docs["paths"])
    example = docs["paths"]["/predict_all"]["post"]["responses"]["200"]["content"]["application/json"]["example"]
    assert len(example["input_28x28"]) == 28


def test_predict_answers_with_digit_probabilities_top3_and_version(http, exported_dir):
    r = http.post("/predict", files={"image": ("seven.png", SEVEN, "image/png")}, data={"model": "mlp"})
    assert r.status_code == 200, r.text
    body = r.json()
    sha256 = read_json(exported_dir / "manifest.json")["models"]["mlp"]["sha256"]
    assert body["model"] == "mlp" and body["version"] == sha256[:12]
    assert len(body["probabilities"]) == 10 and sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    assert body["digit"] == body["top3"][0]["digit"] == int(np.argmax(body["probabilities"]))
    assert [t["probability"] for t in body["top3"]] == sorted([t["probability"] for t in body["top3"]], reverse=True)
    assert body["inference_ms"] > 0 and body["batch_size"] >= 1


def test_every_input_form_gives_the_same_answer(http):
    forms = {
        "multipart": dict(files={"image": ("d.png", SEVEN, "image/png")}),
        "raw png": dict(content=SEVEN, headers={"Content-Type": "image/png"}),
        "raw, curl's default type": dict(content=SEVEN, headers={"Content-Type": "application/x-www-form-urlencoded"}),
        "octet-stream": dict(content=SEVEN, headers={"Content-Type": "application/octet-stream"}),
        "json base64": dict(json={"image_base64": _b64(SEVEN)}),
        "json data url": dict(json={"image_base64": "data:image/png;base64," + _b64(SEVEN)}),
    }
    answers = {}
    for name, request in forms.items():
        r = http.post("/predict", **request)
        assert r.status_code == 200, (name, r.text)
        answers[name] = r.json()["probabilities"]
    for name, probabilities in answers.items():
        np.testing.assert_allclose(probabilities, answers["multipart"], atol=1e-5, err_msg=name)
    raw = http.post("/predict", params={"model": "mlp_b1"}, content=SEVEN, headers={"Content-Type": "image/png"})
    assert raw.json()["model"] == "mlp_b1"


def test_pixels_json_is_scored_exactly_like_the_model(http, digits, mlp):
    image = digits[1].images[0] if digits[1].images is not None else np.asarray(draw_seven().resize((28, 28)))
    r = http.post("/predict", json={"pixels": image.tolist(), "model": "mlp"})
    assert r.status_code == 200, r.text
    with torch.no_grad():
        expected = torch.softmax(mlp(torch.from_numpy(image).float().div(255)[None, None]), 1)[0].numpy()
    np.testing.assert_allclose(r.json()["probabilities"], expected, atol=1e-4)


def test_photographed_digits_are_recognised_through_the_server(http, digits):
    test = digits[1]
    if test.images is None:
        pytest.skip("MNIST is not available on this machine")
    hits = 0
    for i in range(30):
        photo = encode(as_photo(test.images[i], scale=4 + i % 4, at=(20 + 7 * i, 30 + 3 * i)), "JPEG")
        r = http.post("/predict", content=photo, headers={"Content-Type": "image/jpeg"})
        hits += r.json()["digit"] == int(test.labels[i])
    assert hits >= 26


def test_predict_all_answers_for_every_served_model(http):
    r = http.post("/predict_all", files={"image": ("d.png", SEVEN, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [p["model"] for p in body["predictions"]] == ["mlp", "mlp_b1"]
    dynamic, one_by_one = (p["probabilities"] for p in body["predictions"])
    np.testing.assert_allclose(dynamic, one_by_one, atol=1e-5)
    assert set(body["skipped"]) == {"tampered", "garbage", "faster_rcnn"}
    assert http.post("/predict_all", content=SEVEN, headers={"Content-Type": "image/png"}).status_code == 200
    seen = np.asarray(body["input_28x28"])  # what the models received, for the web page
    assert seen.shape == (28, 28) and seen.dtype.kind == "i" and seen.min() == 0 and seen.max() == 255
    np.testing.assert_array_equal(seen, np.rint(from_bytes(SEVEN, max_pixels=10**7)[0] * 255))


def test_predict_batch_takes_files_or_json(http):
    other = encode(draw_seven(ink=255, paper=0, box=(0.2, 0.1, 0.9, 0.9)))
    multipart = http.post("/predict_batch", files=[("images", ("a.png", SEVEN)), ("images", ("b.png", other))],
                          data={"model": "mlp_b1"})
    assert multipart.status_code == 200, multipart.text
    body = multipart.json()
    assert body["model"] == "mlp_b1" and len(body["predictions"]) == 2
    pixels = (from_bytes(SEVEN, max_pixels=10**7)[0] * 255).round().tolist()
    as_json = http.post("/predict_batch", json={"images": [{"image_base64": _b64(SEVEN)}, {"pixels": pixels}]})
    assert as_json.status_code == 200 and as_json.json()["model"] == "mlp"
    first = [p["probabilities"] for p in (body["predictions"][0], as_json.json()["predictions"][0])]
    np.testing.assert_allclose(first[0], first[1], atol=1e-5)
    bad = http.post("/predict_batch", json={"images": [{"image_base64": _b64(SEVEN)}, {"image_base64": _b64(b"junk")}]})
    assert bad.status_code == 400 and bad.json()["error"].startswith("images[1]")
    too_many = http.post("/predict_batch", json={"images": [{"image_base64": _b64(SEVEN)}] * 9})
    assert too_many.status_code == 413
    assert http.post("/predict_batch", json={"images": []}).status_code == 400


BLANK = encode(Image.new("L", (64, 64), 255))
HUGE = encode(Image.new("L", (2000, 2000), 255))  # 4 megapixels, over the server's 1-megapixel limit
ZEROS = [[0] * 28] * 28
ERRORS = {
    "unknown model": ("/predict", dict(json={"image_base64": _b64(SEVEN), "model": "nope"}), 404, "served models: mlp"),
    "skipped model": ("/predict", dict(files={"image": SEVEN}, data={"model": "tampered"}), 404, "checksum"),
    "not an image": ("/predict", dict(files={"image": ("x.png", b"hello")}), 400, "not an image"),
    "truncated image": ("/predict", dict(content=SEVEN[:200], headers={"Content-Type": "image/png"}), 400, "readable"),
    "empty raw body": ("/predict", dict(content=b"", headers={"Content-Type": "image/png"}), 400, "empty"),
    "wrong shape": ("/predict", dict(json={"pixels": [[0] * 27] * 28}), 400, "28x28"),
    "out of range": ("/predict", dict(json={"pixels": [[300] * 28] * 28}), 400, "0..255"),
    "nan": ("/predict", dict(content=json.dumps({"pixels": [[float("nan")] + [0] * 27] + ZEROS[1:]}).encode(),
                             headers={"Content-Type": "application/json"}), 400, ""),
    "both forms": ("/predict", dict(json={"pixels": ZEROS, "image_base64": _b64(SEVEN)}), 400, "exactly one"),
    "no image": ("/predict", dict(json={}), 400, "exactly one"),
    "bad base64": ("/predict", dict(json={"image_base64": "@@@"}), 400, "base64"),
    "text field for a file": ("/predict", dict(data={"image": "hello"}, files={"x": b"1"}), 400, "file upload"),
    "malformed multipart": ("/predict", dict(content=b"junk", headers={"Content-Type": "multipart/form-data"}), 400,
                            "multipart"),
    "not json": ("/predict", dict(content=b"hello", headers={"Content-Type": "text/plain"}), 400, ""),
    "body too large": ("/predict", dict(content=b"\0" * (2 * 1024 * 1024 + 1), headers={"Content-Type": "image/png"}),
                       413, "limit"),
    "too many pixels": ("/predict", dict(files={"image": HUGE}), 413, "pixels"),
    "no ink": ("/predict", dict(files={"image": BLANK}), 422, "no ink"),
    "no ink, every model": ("/predict_all", dict(files={"image": BLANK}), 422, "no ink"),
    "form to classify": ("/classify", dict(data={"items": "x"}), 415, "application/json"),
    "classify out of range": ("/classify", dict(json={"items": [{"model": "mlp", "input": [[2.0] * 28] * 28}]}),
                              400, ""),
    "classify unknown model": ("/classify", dict(json={"items": [{"model": "x", "input": [[0.0] * 28] * 28}]}),
                               200, ""),
    "benchmark runs": ("/latency/benchmark", dict(json={"runs": 0}), 400, "runs"),
    "benchmark model": ("/latency/benchmark", dict(json={"model": "nope"}), 404, "unknown model"),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_client_errors_get_their_status_and_a_message(http, name):
    path, request, status, message = ERRORS[name]
    r = http.post(path, **request)
    assert r.status_code == status, r.text
    if status != 200:
        assert message.lower() in json.dumps(r.json()).lower()
    else:
        assert r.json()[0]["status"] == 404  # per-item error: one bad item never fails a merged batch


def test_get_errors(http):
    assert http.get("/comparison", params={"format": "xml"}).status_code == 400
    assert http.get("/predict").status_code == 405
    assert http.get("/nothing-here").status_code == 404


def test_garbage_never_causes_a_server_error(http):
    rng = np.random.default_rng(1)
    types = ["image/png", "application/json", "multipart/form-data; boundary=x", "text/plain", "", "image/jpeg",
             "application/x-www-form-urlencoded", "multipart/form-data"]
    for path in ("/predict", "/predict_all", "/predict_batch", "/classify", "/latency/benchmark"):
        for i, content_type in enumerate(types):
            body = rng.integers(0, 256, int(rng.integers(0, 400)), dtype=np.uint8).tobytes() if i % 2 else b'{"a": [1,'
            r = http.post(path, content=body, headers={"Content-Type": content_type} if content_type else {})
            assert r.status_code < 500, (path, content_type, r.text)


def test_adaptive_batching_merges_concurrent_requests(server, http):
    for _ in range(16):  # BentoML's dispatcher runs its first requests one by one while it learns their cost
        assert http.post("/predict", files={"image": SEVEN}).status_code == 200

    async def burst(n: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            return await asyncio.gather(*[client.post("/predict", content=SEVEN, headers={"Content-Type": "image/png"})
                                          for _ in range(n)])

    sizes = []
    for _ in range(3):
        responses = asyncio.run(burst(24))
        assert {r.status_code for r in responses} == {200}
        sizes += [r.json()["batch_size"] for r in responses]
    assert max(sizes) > 1
    live = http.get("/latency").json()["models"]["mlp"]["live"]["batch_size"]
    assert live["max"] > 1
    assert "bentoml_service_adaptive_batch_size" in http.get("/metrics").text


def test_without_adaptive_batching_predict_runs_the_model_directly(server, ui_server):
    """Same answers with batching off; concurrent requests are never merged, and errors keep their status."""
    with httpx.Client(base_url=server.url, timeout=30) as batched:
        expected = batched.post("/predict", files={"image": SEVEN}).json()

    async def burst(n: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=ui_server.url, timeout=60) as client:
            return await asyncio.gather(*[client.post("/predict", content=SEVEN, headers={"Content-Type": "image/png"})
                                          for _ in range(n)])

    responses = asyncio.run(burst(24))
    assert {r.status_code for r in responses} == {200}
    assert {r.json()["batch_size"] for r in responses} == {1}
    assert responses[0].json()["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)
    with httpx.Client(base_url=ui_server.url, timeout=30) as direct:
        r = direct.post("/predict_all", files={"image": SEVEN})
        assert r.status_code == 200 and r.json()["predictions"][0]["digit"] == expected["digit"]
        r = direct.post("/predict", files={"image": SEVEN}, data={"model": "resnet"})
        assert r.status_code == 404 and "unknown model" in r.json()["error"]


def test_models_lists_metrics_checksums_providers_and_skips(http, exported_dir):
    body = http.get("/models").json()
    manifest = read_json(exported_dir / "manifest.json")
    assert body["default"] == "mlp" and [m["name"] for m in body["models"]] == ["mlp", "mlp_b1"]
    for m in body["models"]:
        assert m["sha256"] == manifest["models"][m["name"]]["sha256"] and m["provider"] == "CPUExecutionProvider"
        assert {"accuracy", "macro_f1", "test_loss", "train_seconds", "parameters"} <= set(m["metrics"])
        assert m["pretrained"] is False and m["profile"] == "smoke"
    assert {s["name"]: s["reason"] for s in body["skipped"]}.keys() == {"tampered", "garbage", "faster_rcnn"}


def test_comparison_as_json_and_markdown(http, exported_dir):
    assert http.get("/comparison").json() == read_json(exported_dir / "comparison.json")
    md = http.get("/comparison", params={"format": "markdown"})
    assert md.headers["content-type"].startswith("text/markdown")
    assert md.text.startswith("| model | test accuracy | real-world |") and "| mlp | 97.00% |" in md.text
    assert "failed: out of memory" in md.text


def test_latency_reports_live_figures_beside_export_figures(http):
    for _ in range(5):
        http.post("/predict", params={"model": "mlp_b1"}, content=SEVEN, headers={"Content-Type": "image/png"})
    body = http.get("/latency").json()
    b1 = body["models"]["mlp_b1"]
    assert body["window"] == 1000 and b1["exported"] == {"batch1": 0.05, "batch64_per_image": 0.01}
    for series in ("inference_ms", "request_ms"):
        s = b1["live"][series]
        assert s["count"] >= 5 and 0 < s["p50"] <= s["p90"] <= s["p99"] <= s["max"]
    assert b1["live"]["request_ms"]["mean"] >= b1["live"]["inference_ms"]["mean"]


def test_benchmark_times_runs_on_this_hardware(http):
    r = http.post("/latency/benchmark", json={"model": "mlp", "runs": 20, "batch_size": 4})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["runs"] == 20 and body["batch_size"] == 4 and body["provider"] == "CPUExecutionProvider"
    assert 0 < body["p50_ms"] <= body["p99_ms"] and body["images_per_second"] > 0


def test_no_servable_model_fails_readyz_only(exported_dir, tmp_path_factory):
    broken = tmp_path_factory.mktemp("broken")
    for f in exported_dir.iterdir():
        shutil.copy(f, broken / f.name)
    manifest = read_json(broken / "manifest.json")
    for entry in manifest["models"].values():
        entry["sha256"] = "f" * 64
    (broken / "manifest.json").write_text(json.dumps(manifest))
    running = start_server(broken, tmp_path_factory.mktemp("home-broken"), ready="/livez")
    try:
        with running.client() as client:
            assert client.get("/readyz").status_code == 503
            assert client.get("/livez").status_code == 200
            assert len(client.get("/models").json()["skipped"]) == 5
            r = client.post("/predict", files={"image": SEVEN})
            assert r.status_code == 503 and "checksum mismatch" in r.json()["error"]
            off = client.post("/latency/benchmark", json={})
            assert off.status_code == 403 and "MNISTSERVE_ENABLE_BENCHMARK" in off.json()["error"]
    finally:
        running.stop()


def test_bentoml_build_packs_the_models_without_torch(exported_dir, tmp_path):
    context = tmp_path / "context"
    context.mkdir()
    shutil.copy(REPO / "bentofile.yaml", context)
    shutil.copytree(REPO / "serving", context / "serving", ignore=shutil.ignore_patterns("__pycache__"))
    (context / "mnistserve").mkdir()
    for name in ("__init__.py", "contracts.py"):
        shutil.copy(REPO / "mnistserve" / name, context / "mnistserve")
    shutil.copytree(exported_dir, context / "exported")
    (context / "exported" / "big.onnx").write_bytes(b"not shipped")  # as `mnistserve export` marks a large file
    (context / "exported" / ".bentoignore").write_text("/big.onnx\n")
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "home"), "BENTOML_DO_NOT_TRACK": "true",
           "PYTHONPATH": str(context)}
    done = subprocess.run([sys.executable, "-m", "bentoml", "build", str(context), "--output", "tag"], cwd=context,
                          env=env, capture_output=True, text=True, timeout=300)
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
    assert "BENTOML_DO_NOT_TRACK" in dockerfile or "BENTOML_DO_NOT_TRACK" in (bento / "bento.yaml").read_text()
    # The container runs the service as BentoML's unprivileged user, never root.
    users = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), users
