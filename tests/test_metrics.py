"""Per-model metrics (`serving.metrics`) on a running server's /metrics, errors counted under their model, and
the JSON log format (`serving.logs`) on BentoML's real access-log records."""

from __future__ import annotations

import json
import logging
import sys
import time

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from mnistserve.contracts import sha256_file
from serving import metrics
from serving.logs import JsonFormatter, access_fields, use_json_logs
from testkit.digits import draw_seven, encode
from testkit.servers import in_process, start_bentoml

SEVEN = encode(draw_seven())
N = 4


def scrape(client) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics, keyed by (series name, labels)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def delta(before: dict, after: dict, name: str, **labels: str) -> float:
    """How much one series grew between two scrapes (absent counts as 0)."""
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


@pytest.fixture(scope="module")
def http(live_server):
    with live_server.client() as client:
        yield client


def test_metrics_count_each_models_answers_and_errors_by_status(http, exported_with_plots):
    """N predictions, one batch of three and two errors show on /metrics under model and version (the live
    server: two workers merged by BentoML's multiprocess collector, and adaptive batching on)."""
    version = sha256_file(exported_with_plots / "mlp.onnx")[:12]
    before = scrape(http)
    for _ in range(N):  # one after another: each is its own onnxruntime run of one
        r = http.post("/predict", files={"image": SEVEN}, data={"model": "mlp"})
        assert r.status_code == 200 and r.json()["version"] == version
    images = [("images", ("d.png", SEVEN, "image/png"))] * 3
    assert http.post("/predict_batch", files=images, data={"model": "mlp"}).status_code == 200
    assert http.post("/predict", files={"image": SEVEN}, data={"model": "resnet"}).status_code == 404
    assert http.post("/predict", files={"image": b"not an image"}, data={"model": "mlp"}).status_code == 400
    after = scrape(http)

    mlp = {"model": "mlp", "version": version}
    assert delta(before, after, "mnistserve_requests_total", **mlp, status="200") == N + 1
    assert delta(before, after, "mnistserve_inference_seconds_count", **mlp) == N + 1
    assert delta(before, after, "mnistserve_batch_size_count", **mlp) == N + 1
    assert delta(before, after, "mnistserve_batch_size_sum", **mlp) == N + 3
    assert delta(before, after, "mnistserve_batch_size_bucket", **mlp, le="1.0") == N
    assert 0 < delta(before, after, "mnistserve_inference_seconds_sum", **mlp) < 5  # seconds, not milliseconds
    assert delta(before, after, "mnistserve_requests_total", **mlp, status="400") == 1  # a bad image sent to mlp
    # an unknown model is no label: a name a client made up counts under "none"
    assert delta(before, after, "mnistserve_requests_total", model="none", version="none", status="404") == 1
    assert not any(dict(labels).get("model") == "resnet" for _, labels in after)


def test_without_adaptive_batching_errors_count_under_their_model(exported_dir):
    """In-process (batching off: /predict decodes in a worker thread): a failure after the model was chosen is
    still counted under it; the process's own registry holds the counts."""
    version = sha256_file(exported_dir / "mlp.onnx")[:12]

    def count(model: str, v: str, status: str) -> float:
        labels = {"model": model, "version": v, "status": status}
        return REGISTRY.get_sample_value("mnistserve_requests_total", labels) or 0.0

    start = {s: count("mlp", version, s) for s in ("200", "400", "413")}
    with in_process(exported_dir, env={"MNISTSERVE_MAX_BATCH_IMAGES": "2"}) as client:
        assert client.post("/predict", files={"image": SEVEN}, data={"model": "mlp"}).status_code == 200
        assert (
            client.post(
                "/predict", content=b"not an image", params={"model": "mlp"}, headers={"Content-Type": "image/png"}
            ).status_code
            == 400
        )
        images = [("images", ("d.png", SEVEN, "image/png"))] * 3
        assert client.post("/predict_batch", files=images, data={"model": "mlp"}).status_code == 413
    assert count("mlp", version, "200") - start["200"] == 1
    assert count("mlp", version, "400") - start["400"] == 1
    assert count("mlp", version, "413") - start["413"] == 1


def test_metric_names_are_the_exposed_series():
    assert metrics.metric_names() == {
        "mnistserve_requests_total",
        "mnistserve_inference_seconds_bucket",
        "mnistserve_inference_seconds_sum",
        "mnistserve_inference_seconds_count",
        "mnistserve_batch_size_bucket",
        "mnistserve_batch_size_sum",
        "mnistserve_batch_size_count",
    }


# -- JSON logs ---------------------------------------------------------------------------------------------


def test_json_formatter_turns_bentomls_access_lines_into_fields(exported_dir, caplog):
    """Records from BentoML's own access-log middleware (in-process), formatted as JSON: its fields parsed."""
    with caplog.at_level(logging.INFO, logger="bentoml.access"), in_process(exported_dir) as client:
        assert client.post("/predict", files={"image": SEVEN}, data={"model": "resnet"}).status_code == 404
    [record] = [r for r in caplog.records if r.name == "bentoml.access" and "path=/predict" in r.getMessage()]
    entry = json.loads(JsonFormatter().format(record))
    assert entry["logger"] == "bentoml.access" and entry["level"] == "INFO"
    assert entry["method"] == "POST" and entry["path"] == "/predict" and entry["status"] == 404
    assert entry["request_type"].startswith("multipart/form-data") and entry["request_length"] > 0
    assert entry["response_type"] == "application/json" and entry["latency_ms"] >= 0
    assert entry["message"] == record.getMessage()  # the text line stays, for grep


def test_json_formatter_keeps_plain_records_and_exceptions():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "mnistserve.store", logging.ERROR, __file__, 1, "skipping %s", ("vit",), exc_info=sys.exc_info()
        )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "skipping vit" and entry["level"] == "ERROR" and "ValueError: boom" in entry["exception"]
    assert "status" not in entry
    # a line of another shape (a BentoML change, a websocket line) keeps its message and gains no fields
    assert access_fields(("1.2.3.4:5", "scheme=http,path=/x", "status=200", 1.0)) == {}
    assert access_fields(("1.2.3.4:5 (scheme=ws,path=/x) - Client connected",)) == {}
    fields = access_fields(("_", "scheme=http,method=GET,path=/a,b", "status=200", 0.25))
    assert fields == {
        "client": "_",
        "scheme": "http",
        "method": "GET",
        "path": "/a,b",
        "status": 200,
        "latency_ms": 0.25,
    }


def test_use_json_logs_swaps_the_formatter_of_the_named_loggers():
    logger = logging.getLogger("mnistserve.test-json")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    try:
        use_json_logs(("mnistserve.test-json",))
        assert isinstance(handler.formatter, JsonFormatter)
    finally:
        logger.removeHandler(handler)


def test_a_server_with_json_logs_writes_its_access_log_as_json(exported_dir, tmp_path):
    """MNISTSERVE_JSON_LOGS=1 on a real `bentoml serve`: BentoML configures a worker's logging before it imports
    the service, and the service's swap of the formatter must come after, or the access lines stay text."""
    server = start_bentoml(exported_dir, tmp_path, env={"MNISTSERVE_JSON_LOGS": "1"}, name="json-logs")
    try:
        with server.client() as client:
            assert client.post("/predict", files={"image": SEVEN}, data={"model": "mlp"}).status_code == 200
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "path=/predict" not in server.log.read_text(errors="replace"):
            time.sleep(0.1)  # the access line is written after the response is sent
    finally:
        server.stop()
    lines = [line for line in server.log.read_text(errors="replace").splitlines() if "path=/predict" in line]
    assert lines, server.log_tail()
    entry = json.loads(lines[0])
    assert entry["logger"] == "bentoml.access" and entry["path"] == "/predict" and entry["status"] == 200
    served = [json.loads(line) for line in server.log.read_text().splitlines() if '"mnistserve.store"' in line]
    assert any("serving mlp" in e["message"] for e in served)  # the service's own log lines too
