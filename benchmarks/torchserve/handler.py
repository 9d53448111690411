"""A TorchServe handler for an exported mnistserve model: onnxruntime, `serving.preprocess`, the service's answer.

TorchServe loads this file from the model archive as the module `handler` and finds its one class. The archive
holds the ONNX file and a manifest naming only it, so `serving.store.ModelStore` checks the same SHA-256, opens the
same onnxruntime session and applies the same calibration as the service. The request itself (a raw image body,
or the JSON form) goes through the reference server's `infer`: the same parsing, preprocessing and answer fields
as `/predict`, so the three servers compared by `benchmarks.versus` do the same work per request.
Needs the repository on PYTHONPATH (`benchmarks.torchserve.serve` sets it); never imports torch or `ts`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.reference_server import infer
from mnistserve.settings import Settings
from serving.errors import BadInput, ServingError, TooLarge
from serving.store import ModelStore

# TorchServe's `ts.context.Context`, duck-typed: TorchServe refuses a handler module defining more than one class,
# so no Protocol class here. Used: system_properties, get_request_header, get_all_request_header,
# set_response_status, set_response_content_type.
Context = Any


def media_type(context: Context, idx: int) -> str:
    """The request body's media type: the `body` parameter's content type, else the request's header."""
    param = context.get_request_header(idx, "body")
    declared = param.get("content-type") if isinstance(param, dict) else None
    if not declared:
        headers = context.get_all_request_header(idx) or {}
        declared = next((v for k, v in headers.items() if str(k).lower() == "content-type" and isinstance(v, str)), "")
    return str(declared or "").split(";")[0].strip().lower()


def request_parts(item: dict[str, Any]) -> tuple[bytes, str | None]:
    """One TorchServe request -> (body bytes, `?model=` value); the frontend may have decoded a JSON body."""
    body = item.get("body", item.get("data"))
    if body is None:
        raise BadInput("send the image as the request body")
    if isinstance(body, (dict, list)):  # TorchServe parsed application/json already (decode_input_request)
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    model = item.get("model")
    return bytes(body), model.decode() if isinstance(model, (bytes, bytearray)) else model


def answer(store: ModelStore, settings: Settings, item: dict[str, Any], media: str) -> tuple[int, dict]:
    """(HTTP status, JSON answer) for one request: the service's /predict fields, or its error body."""
    try:
        body, model = request_parts(item)
        if len(body) > settings.max_body_bytes:
            raise TooLarge(f"request body is over the limit of {settings.max_body_bytes} bytes")
        return 200, infer(store, settings, body, media, model)
    except ServingError as exc:
        return exc.status, {"error": str(exc), "status": exc.status}


class MNISTHandler:
    """TorchServe's custom-handler interface: `initialize(context)` once, `handle(data, context)` per batch."""

    def __init__(self) -> None:
        self.store: ModelStore | None = None
        self.settings = Settings.from_env()

    def initialize(self, context: Context) -> None:
        """Open the archive's model: manifest.json and the ONNX file it names, in TorchServe's model_dir."""
        model_dir = Path(context.system_properties["model_dir"])
        self.store = ModelStore(model_dir, threads=self.settings.ort_threads)

    def handle(self, data: list[dict[str, Any]], context: Context) -> list[str]:
        """One JSON answer per request of the batch, each with its own status (a bad image is a 4xx, not a 503)."""
        if self.store is None:
            raise RuntimeError("handle() before initialize()")
        out = []
        for idx, item in enumerate(data):
            status, body = answer(self.store, self.settings, item, media_type(context, idx))
            if status != 200:
                context.set_response_status(status, "", idx)
            context.set_response_content_type(idx, "application/json")
            out.append(json.dumps(body))
        return out
