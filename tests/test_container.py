"""The image that `make container` builds, run in Docker and asked over HTTP on 127.0.0.1 (`make test-container`).

Marked `container` and left out of `make test`; CI builds the image and runs these with
MNISTSERVE_REQUIRE_CONTAINER=1, where a missing engine or image fails instead of skipping."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import httpx
import pytest

from benchmarks import harness as H
from mnistserve.contracts import read_json, sha256_file
from mnistserve.settings import Suite
from testkit import containers
from testkit.digits import draw_one, draw_seven, encode
from testkit.servers import REPO

pytestmark = pytest.mark.container

# exported/manifest.json's shipped models (in the image) and the rest (over the size limit: in neither git nor image).
_MODELS = read_json(REPO / "exported" / "manifest.json")["models"]
SHIPPED = {name for name, m in _MODELS.items() if m["shipped"]}
NOT_SHIPPED = set(_MODELS) - SHIPPED
MAX_IMAGE_MB = 450  # issue 21: with OpenCV inside (issue 15 had 400 without it)
MAX_READY_S = 10.0  # twice the goal of 5 s, which reports/container/ measures: a busy CI machine is no failure
SEVEN = encode(draw_seven())
ONE = encode(draw_one())


@pytest.fixture(scope="module")
def image() -> dict:
    """`docker image inspect` of the image under test; skips (fails in CI) without an engine or the image."""
    why = None
    if not containers.engine_answers():
        why = "no Docker engine answers (make container starts one)"
    elif (info := containers.inspect_image()) is None:
        why = f"no image {containers.IMAGE}: run make container"
    if why:
        if Suite.from_env().require_container:
            pytest.fail(why)
        pytest.skip(why)
    return info


@pytest.fixture(scope="module")
def exported_in_image(image) -> str:
    """Where the image keeps exported/ (its MNISTSERVE_EXPORTED)."""
    return containers.image_env(image)["MNISTSERVE_EXPORTED"]


@pytest.fixture(scope="module")
def served(image):
    """One container of the image, as `docker run` starts it, ready."""
    with containers.run() as box:
        box.ready_s = box.wait_ready()
        yield box


def test_image_is_lean(image):
    """Under the size goal, with no compiler, git or pip on its PATH, and a non-root USER."""
    assert image["Size"] / 1e6 <= MAX_IMAGE_MB, f"{image['Size'] / 1e6:.0f} MB"
    assert image["Config"]["User"] not in ("", "root", "0")
    found = containers.run_once(
        containers.IMAGE,
        "sh",
        "-c",
        "for t in gcc cc g++ make git pip pip3 torch; do command -v $t; done; "
        "python -c 'import torch' 2>/dev/null && echo torch-importable; true",
    )
    assert found.strip() == "", found


# What the preprocessing asks of OpenCV, on two blobs (2x2 and 3x3) of 200 on 10: the image's build strips compiled
# modules and drops OpenCV's data files, so its own library (and the LAPACK one it links) must still answer.
OPENCV_CHECK = """
import cv2, numpy as np
img = np.full((20, 20), 10, np.uint8); img[2:4, 2:4] = 200; img[10:13, 10:13] = 200
level, binary = cv2.threshold(img, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
count, labels, stats, centroids = cv2.connectedComponentsWithStats(binary, connectivity=8)
closed = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
moved = cv2.warpAffine(img, np.float32([[1, 0, 0], [0, 1, 0]]), (20, 20))
dist = cv2.distanceTransform(binary, cv2.DIST_L2, 3)
small = cv2.resize(img, (10, 10), interpolation=cv2.INTER_AREA)
ok, x = cv2.solve(np.float64([[2, 1], [1, 3]]), np.float64([[3], [5]]))
print(cv2.__version__, 10 <= level < 200, count, sorted(stats[1:, cv2.CC_STAT_AREA].tolist()),
      int((closed > 0).sum()), bool((moved == img).all()), float(dist.max()) > 1, small.shape,
      ok, np.round(x.ravel(), 6).tolist(), cv2.moments(binary)["m00"] == 13 * 255)
"""


def test_opencv_answers_in_the_image(image):
    out = containers.run_once(containers.IMAGE, "python", "-c", OPENCV_CHECK)
    version, answers = out.strip().split(" ", 1)
    assert version.startswith("4."), out
    assert answers == "True 3 [4, 9] 13 True True (10, 10) True [0.8, 1.4] True", out


def test_a_report_names_the_image_and_the_models_it_carries(image):
    """benchmarks.harness.measured_image (the container and swarm reports): the image's ID and, read inside the
    image, the export it carries: this checkout's, byte for byte."""
    measured = H.measured_image(containers.IMAGE)
    checkout = REPO / "exported" / "manifest.json"
    assert measured["image_id"] == image["Id"]
    assert measured["manifest_sha256"] == sha256_file(checkout)
    assert measured["models"] == {name: m["sha256"] for name, m in read_json(checkout)["models"].items()}


def test_ready_quickly_and_serves_the_shipped_models(served):
    assert served.ready_s <= MAX_READY_S, f"/readyz green {served.ready_s:.1f} s after docker run"
    with served.client() as http:
        assert http.get("/livez").status_code == 200
        models = http.get("/models").json()
    assert {m["name"] for m in models["models"]} == SHIPPED
    assert {m["name"] for m in models["skipped"]} == NOT_SHIPPED and "cnn" in SHIPPED


def test_process_is_not_root(served):
    assert served.exec("id", "-u").strip() != "0"
    uids = [line.split()[1:] for line in served.exec("cat", "/proc/1/status").splitlines() if line.startswith("Uid:")]
    assert uids and "0" not in uids[0], uids  # the server itself (PID 1): real, effective, saved, fs
    exported = served.exec("printenv", "MNISTSERVE_EXPORTED").strip()
    assert served.exec("sh", "-c", f"test -w {exported}/manifest.json && echo writable || true").strip() == ""


@pytest.mark.parametrize("form", ["multipart", "raw", "json"])
@pytest.mark.parametrize(("png", "digit"), [(SEVEN, 7), (ONE, 1)], ids=["seven", "one"])
def test_predicts_drawn_digits(served, form, png, digit):
    body = {
        "multipart": dict(files={"image": ("digit.png", png, "image/png")}),
        "raw": dict(content=png, headers={"Content-Type": "image/png"}),
        "json": dict(json={"image_base64": base64.b64encode(png).decode()}),
    }[form]
    with served.client() as http:
        r = http.post("/predict", **body)
        assert r.status_code == 200, r.text
        assert r.json()["digit"] == digit, r.json()
        every = http.post("/predict_all", files={"image": ("digit.png", png, "image/png")})
    assert every.status_code == 200, every.text
    answers = {a["model"]: a["digit"] for a in every.json()["predictions"]}
    assert set(answers) == SHIPPED and list(answers.values()).count(digit) >= 2, answers


def _tampered_copy(tmp_path: Path, exported: str, names: set[str]) -> Path:
    """exported/ copied out of the image, with one byte of each named model's file changed."""
    containers.copy_from_image(containers.IMAGE, exported, str(tmp_path))
    copy = tmp_path / Path(exported).name
    for onnx in copy.glob("*.onnx"):
        if onnx.name.split(".")[0] in names:
            data = bytearray(onnx.read_bytes())
            data[len(data) // 2] ^= 0xFF
            onnx.write_bytes(bytes(data))
    os.chmod(tmp_path, 0o755)
    return copy


def test_tampered_model_is_refused(image, exported_in_image, tmp_path):
    copy = _tampered_copy(tmp_path, exported_in_image, {"cnn"})
    with containers.run(mounts=[f"type=bind,src={copy},dst={exported_in_image},readonly"]) as box:
        box.wait_ready()
        with box.client() as http:
            models = http.get("/models").json()
            refused = http.post(
                "/predict", params={"model": "cnn"}, content=SEVEN, headers={"Content-Type": "image/png"}
            )
            others = http.post("/predict", content=SEVEN, headers={"Content-Type": "image/png"})
    skipped = {m["name"]: m["reason"] for m in models["skipped"]}
    assert "checksum mismatch" in skipped.get("cnn", ""), skipped
    assert {m["name"] for m in models["models"]} == SHIPPED - {"cnn"}
    assert refused.status_code >= 400 and "checksum mismatch" in refused.text, refused.text
    assert others.status_code == 200 and others.json()["model"] != "cnn", others.text


def test_all_models_tampered_is_not_ready(image, exported_in_image, tmp_path):
    copy = _tampered_copy(tmp_path, exported_in_image, SHIPPED)
    with containers.run(mounts=[f"type=bind,src={copy},dst={exported_in_image},readonly"]) as box:
        _wait_for_log(box, "/readyz will fail")
        with box.client() as http:
            assert http.get("/readyz").status_code == 503
            assert http.post("/predict", content=SEVEN, headers={"Content-Type": "image/png"}).status_code == 503
        assert "checksum mismatch" in box.logs()


def test_without_models_answers_503_and_says_why(image, exported_in_image, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o755)
    with containers.run(mounts=[f"type=bind,src={empty},dst={exported_in_image},readonly"]) as box:
        _wait_for_log(box, "manifest.json not found")
        with box.client() as http:
            assert _status(http, "/readyz") == 503, box.logs()[-2000:]
        assert box.running(), "the container exited instead of answering 503:\n" + box.logs()[-2000:]


def _status(http, path: str, tries: int = 100) -> int | None:
    """The status of GET `path`, waiting (up to ~10 s) for the server to listen."""
    for _ in range(tries):
        try:
            return http.get(path).status_code
        except httpx.TransportError:
            time.sleep(0.1)
    return None


def _wait_for_log(box: containers.Container, text: str, timeout: float = 30.0) -> None:
    """Until the container's log says `text`, and then until it listens."""
    deadline = time.monotonic() + timeout
    while text not in box.logs():
        assert time.monotonic() < deadline, f"{text!r} not in the log within {timeout} s:\n{box.logs()[-2000:]}"
        assert box.running(), f"the container exited:\n{box.logs()[-2000:]}"
        time.sleep(0.2)
    with box.client() as http:
        _status(http, "/livez")
