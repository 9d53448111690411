"""Every endpoint of the service, in-process: its own ASGI app (`MNISTService.to_asgi()`) behind Starlette's
TestClient, with the settings of the `server_env` fixture (tests/test_live_server.py covers what needs a real one)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from mnistserve.contracts import read_json
from serving.preprocess import from_bytes
from serving.routes import ROUTES
from testkit.digits import as_photo, draw_seven, encode
from testkit.servers import REPO, in_process

SEVEN = encode(draw_seven())


@pytest.fixture(scope="module")
def http(exported_dir, server_env):
    with in_process(exported_dir, server_env) as client:
        yield client


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_health_index_and_docs(http):  # /metrics: tests/test_live_server.py (BentoML's server sets it up)
    assert http.get("/livez").status_code == 200 and http.get("/readyz").status_code == 200
    assert "swagger" in http.get("/").text.lower()
    docs = http.get("/docs.json").json()  # BentoML's own document, from the typed inputs, answers and docstrings
    for path in ("/predict", "/predict_all", "/predict_batch", "/classify", "/latency/benchmark"):
        post = docs["paths"][path]["post"]
        assert post["description"], path
        [answer] = post["responses"]["200"]["content"].values()
        assert answer["schema"].get("example") or answer["schema"].get("items", {}).get("$ref"), path
    for path in ("/predict", "/predict_all"):  # Swagger's "Try it out" offers a file upload
        form = docs["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
        assert form["image"]["format"] == "binary" and form["image_base64"]["example"]
        assert "raw image body" in docs["paths"][path]["post"]["description"] + form["image"]["description"]
    batch = docs["paths"]["/predict_batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert batch["properties"]["images"]["example"][0]["image_base64"]


def test_the_bento_description_names_the_page_and_every_get_route():
    """BentoML heads a built Bento's OpenAPI document with its description: the page and the GET routes it has."""
    description = yaml.safe_load((REPO / "bentofile.yaml").read_text())["description"]
    assert "(./ui)" in description
    for route in ROUTES:
        assert route.path.split("{")[0].rstrip("/") in description, route.path


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
    multipart = http.post(
        "/predict_batch", files=[("images", ("a.png", SEVEN)), ("images", ("b.png", other))], data={"model": "mlp_b1"}
    )
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
    "nan": (
        "/predict",
        dict(
            content=json.dumps({"pixels": [[float("nan")] + [0] * 27] + ZEROS[1:]}).encode(),
            headers={"Content-Type": "application/json"},
        ),
        400,
        "NaN or infinity",
    ),
    "both forms": ("/predict", dict(json={"pixels": ZEROS, "image_base64": _b64(SEVEN)}), 400, "exactly one"),
    "no image": ("/predict", dict(json={}), 400, "exactly one"),
    "bad base64": ("/predict", dict(json={"image_base64": "@@@"}), 400, "base64"),
    "text field for a file": ("/predict", dict(data={"image": "hello"}, files={"x": b"1"}), 400, "file upload"),
    "two files for one image": (
        "/predict",
        dict(files=[("image", ("a.png", SEVEN)), ("image", ("b.png", SEVEN))]),
        400,
        "send one file",
    ),
    "a file for the model": ("/predict", dict(files={"image": SEVEN, "model": ("m.txt", b"mlp")}), 400, "text field"),
    "pixels not json": ("/predict", dict(data={"pixels": "[[1,"}, files={"x": b"1"}), 400, "must be json"),
    "image and pixels": ("/predict", dict(files={"image": SEVEN}, data={"pixels": json.dumps(ZEROS)}), 400, "exactly"),
    "malformed multipart": (
        "/predict",
        dict(content=b"junk", headers={"Content-Type": "multipart/form-data"}),
        400,
        "multipart",
    ),
    "not json": ("/predict", dict(content=b"hello", headers={"Content-Type": "text/plain"}), 400, "invalid json"),
    "body too large": (
        "/predict",
        dict(content=b"\0" * (2 * 1024 * 1024 + 1), headers={"Content-Type": "image/png"}),
        413,
        "limit",
    ),
    "too many pixels": ("/predict", dict(files={"image": HUGE}), 413, "pixels"),
    "no ink": ("/predict", dict(files={"image": BLANK}), 422, "no ink"),
    "no ink, every model": ("/predict_all", dict(files={"image": BLANK}), 422, "no ink"),
    "form to classify": ("/classify", dict(data={"items": "x"}), 415, "application/json"),
    "classify out of range": (
        "/classify",
        dict(json={"items": [{"model": "mlp", "input": [[2.0] * 28] * 28}]}),
        400,
        "less than or equal to 1",
    ),
    "classify unknown model": (
        "/classify",
        dict(json={"items": [{"model": "x", "input": [[0.0] * 28] * 28}]}),
        200,
        "served models",
    ),
    "classify, more items than one batch": (
        "/classify",
        dict(json={"items": [{"model": "mlp", "input": [[0.0] * 28] * 28}] * 100}),
        413,
        "at most",
    ),
    "benchmark runs": ("/latency/benchmark", dict(json={"runs": 0}), 400, "runs"),
    "benchmark model": ("/latency/benchmark", dict(json={"model": "nope"}), 404, "unknown model"),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_client_errors_get_their_status_and_a_message(http, name):
    path, request, status, message = ERRORS[name]
    r = http.post(path, **request)
    assert r.status_code == status, r.text
    assert message and message.lower() in json.dumps(r.json()).lower()
    if status == 200:
        assert r.json()[0]["status"] == 404  # per-item error: one bad item never fails a merged batch


def test_get_errors(http):
    assert http.get("/comparison", params={"format": "xml"}).status_code == 400
    assert http.get("/predict").status_code == 405
    assert http.get("/nothing-here").status_code == 404


def test_garbage_never_causes_a_server_error(http):
    rng = np.random.default_rng(1)
    types = [
        "image/png",
        "application/json",
        "multipart/form-data; boundary=x",
        "text/plain",
        "",
        "image/jpeg",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ]
    for path in ("/predict", "/predict_all", "/predict_batch", "/classify", "/latency/benchmark"):
        for i, content_type in enumerate(types):
            body = rng.integers(0, 256, int(rng.integers(0, 400)), dtype=np.uint8).tobytes() if i % 2 else b'{"a": [1,'
            r = http.post(path, content=body, headers={"Content-Type": content_type} if content_type else {})
            assert r.status_code < 500, (path, content_type, r.text)


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
    assert md.text.startswith("| model | test accuracy | real-world sealed | real-world dev |")
    assert "| mlp | 97.00% |" in md.text
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
