"""What only a running `bentoml serve` shows: readiness over a socket, /metrics, and adaptive batching through
BentoML's dispatcher. The suite's one live server (`live_server` in conftest.py) has batching on."""

from __future__ import annotations

import asyncio
import base64
from concurrent.futures import ThreadPoolExecutor

import bentoml
import httpx
import pytest

from testkit.digits import draw_seven, encode
from testkit.servers import in_process

SEVEN = encode(draw_seven())


@pytest.fixture(scope="module")
def http(live_server):
    with live_server.client() as client:
        yield client


def test_health_and_metrics(http):
    assert http.get("/livez").status_code == 200 and http.get("/readyz").status_code == 200
    assert http.post("/predict", files={"image": SEVEN}).status_code == 200  # so that a request is counted
    assert "bentoml_service_request" in http.get("/metrics").text


def test_bentomls_python_client_calls_the_routes_by_keyword(live_server):
    """The README's client example: keyword arguments, the JSON forms."""
    png = base64.b64encode(SEVEN).decode()
    with bentoml.SyncHTTPClient(live_server.url) as client:
        answer = client.predict(image_base64=png, model="mlp")
        assert answer["model"] == "mlp" and len(answer["probabilities"]) == 10
        assert len(client.predict_batch(images=[{"image_base64": png}] * 2)["predictions"]) == 2
        assert [p["model"] for p in client.predict_all(image_base64=png)["predictions"]] == ["mlp", "mlp_b1"]


def test_adaptive_batching_merges_concurrent_requests(live_server, http):
    for _ in range(16):  # BentoML's dispatcher runs its first requests one by one while it learns their cost
        assert http.post("/predict", files={"image": SEVEN}).status_code == 200

    async def burst(n: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as client:
            return await asyncio.gather(
                *[client.post("/predict", content=SEVEN, headers={"Content-Type": "image/png"}) for _ in range(n)]
            )

    sizes = []
    for _ in range(3):
        responses = asyncio.run(burst(24))
        assert {r.status_code for r in responses} == {200}
        sizes += [r.json()["batch_size"] for r in responses]
    assert max(sizes) > 1
    live = http.get("/latency").json()["models"]["mlp"]["live"]["batch_size"]
    assert live["max"] > 1
    assert "bentoml_service_adaptive_batch_size" in http.get("/metrics").text


def test_without_adaptive_batching_predict_runs_the_model_directly(http, exported_with_plots):
    """Same answers with batching off (default settings, in-process); concurrent requests are never merged, and
    errors keep their status."""
    expected = http.post("/predict", files={"image": SEVEN}).json()  # the live server: batching on
    with in_process(exported_with_plots) as direct:
        with ThreadPoolExecutor(24) as pool:  # concurrent requests into the one app, as a burst would be
            responses = list(
                pool.map(
                    lambda _: direct.post("/predict", content=SEVEN, headers={"Content-Type": "image/png"}), range(24)
                )
            )
        assert {r.status_code for r in responses} == {200}
        assert {r.json()["batch_size"] for r in responses} == {1}
        assert responses[0].json()["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)
        r = direct.post("/predict_all", files={"image": SEVEN})
        assert r.status_code == 200 and r.json()["predictions"][0]["digit"] == expected["digit"]
        r = direct.post("/predict", files={"image": SEVEN}, data={"model": "resnet"})
        assert r.status_code == 404 and "unknown model" in r.json()["error"]
