"""A minimal reference server for the serving benchmark: Starlette under uvicorn, no BentoML, no batching.

It answers POST /predict exactly as the service does (a raw image body with `?model=`, or JSON
{"image_base64" | "pixels", "model"}; the same fields back) with the same `serving.store.ModelStore`
(same checksums, same onnxruntime session options) and the same `serving.preprocess` functions, one
onnxruntime run per request. Whatever it costs is the floor that BentoML's own machinery adds to.
Usage:  python -m benchmarks.reference_server [--exported exported] [--port 3100] [--threads 0]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mnistserve.settings import Settings
from serving.errors import BadInput, ServingError, TooLarge
from serving.preprocess import decode_base64, from_array, from_bytes
from serving.store import ModelStore, ServedModel
from testkit.servers import REPO


def parse(body: bytes, media: str, query_model: str | None, settings: Settings) -> tuple[np.ndarray, str | None]:
    """Request body -> ((1, 28, 28) input, model name); a raw image or the JSON form."""
    if media != "application/json":
        return from_bytes(body, max_pixels=settings.max_pixels), query_model
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise BadInput("the body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise BadInput("the JSON body must be an object")
    image, pixels, model = payload.get("image_base64"), payload.get("pixels"), payload.get("model")
    if (image is None) == (pixels is None) or not isinstance(image, str | None) or not isinstance(model, str | None):
        raise BadInput("send exactly one of image_base64 (a string) or pixels (a 28x28 array); model is a string")
    x = from_array(pixels) if pixels is not None else from_bytes(decode_base64(image), max_pixels=settings.max_pixels)
    return x, model


def infer(store: ModelStore, settings: Settings, body: bytes, media: str, query_model: str | None) -> dict:
    """Preprocess, one onnxruntime run, the service's answer fields (runs in a worker thread)."""
    x, model = parse(body, media, query_model, settings)
    served: ServedModel = store.get(model)
    logits, ms = served.run(x[None])  # (1, 1, 28, 28) -> (1, 10)
    # Calibrated, as the service answers: softmax(logits / temperature).
    return {
        **served.answer(served.probabilities(logits.astype(np.float64))[0]),
        "model": served.name,
        "version": served.version,
        "inference_ms": round(ms, 4),
        "batch_size": 1,
    }


def build_app(exported: Path, threads: int = 0) -> Starlette:
    settings = Settings.from_env()
    store = ModelStore(exported, threads=threads)

    async def predict(request: Request) -> Response:
        start = time.perf_counter()
        try:
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > settings.max_body_bytes:
                raise TooLarge(f"request body is {declared} bytes; the limit is {settings.max_body_bytes}")
            body = await request.body()
            if len(body) > settings.max_body_bytes:
                raise TooLarge(f"request body is over the limit of {settings.max_body_bytes} bytes")
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            answer = await run_in_threadpool(infer, store, settings, body, media, request.query_params.get("model"))
        except ServingError as exc:
            return JSONResponse({"error": str(exc), "status": exc.status}, status_code=exc.status)
        answer["request_ms"] = round((time.perf_counter() - start) * 1000, 4)
        return JSONResponse(answer)

    async def readyz(_: Request) -> Response:
        return Response("ok" if store.models else "no model", status_code=200 if store.models else 503)

    return Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/readyz", readyz)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exported", type=Path, default=REPO / "exported")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3100)
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: its choice)")
    args = parser.parse_args()
    app = build_app(args.exported.resolve(), args.threads)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
