"""serving.errors: one mapping from failures to JSON answers; inference failures are 503s, bugs logged 500s."""

from __future__ import annotations

import asyncio
import json
import logging

import numpy as np
import pytest
from starlette.testclient import TestClient

from serving import errors
from serving.latency import LatencyBook
from serving.routes import Served, create_app
from serving.store import ServedModel


def _body(response) -> dict:
    return json.loads(bytes(response.body))


def test_every_client_error_answers_its_status_with_a_message():
    for cls in (
        errors.BadInput,
        errors.Forbidden,
        errors.UnknownModel,
        errors.NotFound,
        errors.TooLarge,
        errors.UnsupportedMedia,
        errors.NoInk,
        errors.Unavailable,
        errors.InferenceFailed,
    ):
        response = errors.error_response(cls("what went wrong"))
        assert 400 <= response.status_code < 600 and response.status_code != 500
        assert _body(response) == {"error": "what went wrong", "status": response.status_code}
    assert errors.ServingError("carried", status=429).status == 429 and errors.ServingError("x").status == 400


def test_api_methods_map_client_errors_and_log_bugs(caplog):
    @errors.answers_errors
    def sync_api(kind: str):
        if kind == "client":
            raise errors.TooLarge("too many images")
        if kind == "bug":
            raise KeyError("oops")
        return "fine"

    @errors.answers_errors
    async def async_api(kind: str):
        return sync_api.__wrapped__(kind)

    for call in (sync_api, lambda k: asyncio.run(async_api(k))):
        assert call("ok") == "fine"
        assert call("client").status_code == 413 and _body(call("client"))["error"] == "too many images"
        with caplog.at_level(logging.ERROR, logger="mnistserve.errors"):
            bug = call("bug")
        assert bug.status_code == 500 and "KeyError" in _body(bug)["error"] and "oops" not in _body(bug)["error"]
        assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)  # the traceback is logged
        caplog.clear()


class _FailingSession:
    def run(self, *_):
        raise RuntimeError("CUDA out of memory: tried to allocate 1 GiB")


def test_an_onnxruntime_failure_is_a_503_naming_the_model_not_the_internals():
    model = ServedModel(
        name="cnn",
        entry={"sha256": "0" * 64},
        session=_FailingSession(),
        provider="CPUExecutionProvider",
        max_batch=None,
    )
    with pytest.raises(errors.InferenceFailed) as info:
        model.run(np.zeros((2, 1, 28, 28), np.float32))
    assert info.value.status == 503 and "inference of cnn failed" in str(info.value)
    assert "allocate" not in str(info.value)


def test_a_bug_in_a_get_route_is_a_json_500():
    class Broken:
        @property
        def models(self):
            raise ZeroDivisionError("boom")

    app = create_app(lambda: Served(store=Broken(), latency=LatencyBook(10)))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/latency")
    assert response.status_code == 500 and response.json()["status"] == 500
    assert "ZeroDivisionError" in response.json()["error"]
