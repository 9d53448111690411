"""HTTP API of the MNIST models, on BentoML 1.4. Configuration: MNISTSERVE_* variables, see `serving`.

    POST /predict            one image -> digit, ten probabilities, top-3, model, version, inference ms
    POST /predict_all        one image -> every served model's answer
    POST /predict_batch      several images, one model -> one answer each, in one onnxruntime run
    POST /classify           low level: preprocessed 28x28 inputs in [0, 1] -> logits (adaptive batching)
    GET  /models             served models (metrics, checksum, provider) and skipped ones (reason)
    GET  /comparison         the stored training comparison; ?format=markdown for a table
    GET  /latency            live rolling latency per model beside the latency measured at export
    POST /latency/benchmark  time N inferences here (403 unless MNISTSERVE_ENABLE_BENCHMARK=1)
    BentoML's own: GET / (Swagger UI), /docs.json, /livez, /readyz, /metrics

How the pieces fit:
  * The POST routes are typed `@bentoml.api` methods taking JSON. `InputGate`, an ASGI middleware,
    turns a multipart upload or a raw image body into that JSON, enforces the body limit (413), and
    answers 415 for forms that BentoML's own parsers would turn into a 500.
  * Single-image requests reach the batchable `classify` through the service's own client
    (`self.to_async.classify`), so BentoML's dispatcher merges concurrent requests into one run.
  * The GET routes live in a small Starlette app mounted with `@bentoml.asgi_app`; they read the
    same service instance (`bentoml.get_current_service()`).
  * /docs.json is BentoML's document completed with the other input forms, examples and GET routes.
"""

from __future__ import annotations

import base64
import inspect
import json
import logging
import statistics
import time
from collections import defaultdict
from typing import Annotated, Any
from urllib.parse import parse_qs

import aiohttp
import anyio.to_thread
import bentoml
import numpy as np
import onnxruntime as ort
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from mnistserve.contracts import comparison_markdown, default_exported_dir
from serving import Settings
from serving.latency import LatencyBook
from serving.preprocess import BadInput, ServingError, TooLarge, Unavailable, decode_base64, from_array, from_bytes
from serving.store import ModelStore, ServedModel, softmax

log = logging.getLogger("mnistserve.service")
logging.getLogger("mnistserve").setLevel(logging.INFO)  # BentoML leaves the root at WARNING: show what is served
SETTINGS = Settings.from_env()
MODEL_HELP = "model name from GET /models; default: the manifest's default"
IMAGE_HELP = "base64 image bytes (PNG, JPEG, ...), a data: URL allowed; or send `pixels`"
PIXELS_HELP = "28x28 array of 0-255, white digit on black (MNIST style); or send `image_base64`"
CLIENT_ATTEMPTS = 3  # calls of `classify` through the service's own client, see `_classify`
Unit = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Row = Annotated[list[Unit], Field(min_length=28, max_length=28)]


class UnsupportedMedia(ServingError):
    """A request body in a form this route does not read."""

    status = 415


class Forbidden(ServingError):
    """A route switched off by configuration."""

    status = 403


class Top(BaseModel):
    digit: int
    probability: float


class Digit(BaseModel):
    digit: int = Field(description="most probable class")
    probabilities: list[float] = Field(description="softmax over the ten digits, index = digit")
    top3: list[Top]


class Prediction(Digit):
    model: str
    version: str = Field(description="first 12 hex digits of the model file's SHA-256")
    inference_ms: float = Field(description="onnxruntime time of the run that answered")
    batch_size: int = Field(description="images in that run (adaptive batching merges requests)")


class BatchPrediction(BaseModel):
    model: str
    version: str
    inference_ms: float
    predictions: list[Digit]


class AllPredictions(BaseModel):
    predictions: list[Prediction] = Field(description="one per served model")
    skipped: dict[str, str] = Field(description="models not served, with the reason")


class ImageInput(BaseModel):
    image_base64: str | None = Field(None, description=IMAGE_HELP)
    pixels: list[list[float]] | None = Field(None, description=PIXELS_HELP)


class ModelInput(BaseModel):
    model: str
    input: Annotated[list[Row], Field(min_length=28, max_length=28, description="28x28 floats in [0, 1]")]


class ModelScores(BaseModel):
    model: str
    logits: list[float] | None = None
    status: int = 200
    error: str | None = None
    inference_ms: float = 0.0
    batch_size: int = 0


class Benchmark(BaseModel):
    model: str
    provider: str
    runs: int
    batch_size: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    images_per_second: float


def error_response(exc: ServingError) -> JSONResponse:
    """The JSON error body every route answers with."""
    return JSONResponse({"error": str(exc), "status": exc.status}, status_code=exc.status)


def decode_one(image_base64: str | None, pixels: list[list[float]] | None) -> np.ndarray:
    """Exactly one of the two JSON forms -> (1, 28, 28) float32."""
    if (image_base64 is None) == (pixels is None):
        raise BadInput("send exactly one of image_base64 (an image) or pixels (a 28x28 array)")
    if pixels is not None:
        return from_array(pixels)
    return from_bytes(decode_base64(image_base64), max_pixels=SETTINGS.max_pixels)


def digit(probabilities: np.ndarray) -> dict[str, Any]:
    """Digit, probabilities and top-3 of one row of probabilities."""
    order = np.argsort(-probabilities)[:3]
    return {
        "digit": int(order[0]),
        "probabilities": [round(float(p), 6) for p in probabilities],
        "top3": [{"digit": int(d), "probability": round(float(probabilities[d]), 6)} for d in order],
    }


# -- GET routes: a Starlette app mounted on the service, reading the same instance -------------------


def _service() -> MNISTService:
    return bentoml.get_current_service()  # the instance BentoML created in this worker


async def models_route(_: Request) -> Response:
    return JSONResponse(_service().models_info())


async def latency_route(_: Request) -> Response:
    return JSONResponse(_service().latency_info())


async def comparison_route(request: Request) -> Response:
    comparison = _service().store.comparison
    fmt = request.query_params.get("format", "json")
    if fmt not in ("json", "markdown"):
        return error_response(BadInput(f"format must be json or markdown, not {fmt[:40]!r}"))
    if comparison is None:
        return JSONResponse({"error": "no comparison.json in the exported directory", "status": 404}, 404)
    if fmt == "json":
        return JSONResponse(comparison)
    try:
        table = comparison_markdown(comparison)
    except (KeyError, TypeError, ValueError) as exc:  # our stored file is at fault, not the client
        return JSONResponse({"error": f"comparison.json cannot be rendered: {exc!r}", "status": 500}, 500)
    return PlainTextResponse(table, media_type="text/markdown; charset=utf-8")


GET_APP = Starlette(
    routes=[
        Route("/models", models_route, methods=["GET"]),
        Route("/comparison", comparison_route, methods=["GET"]),
        Route("/latency", latency_route, methods=["GET"]),
    ]
)


@bentoml.asgi_app(GET_APP, path="/", name="mnistserve-get")
@bentoml.service(name="mnistserve", traffic={"timeout": SETTINGS.timeout_s})
class MNISTService:
    """Handwritten-digit recognition with the models in exported/ (ONNX Runtime)."""

    def __init__(self) -> None:
        self.settings = SETTINGS
        self.store = ModelStore(default_exported_dir(), threads=SETTINGS.ort_threads)
        self.latency = LatencyBook(SETTINGS.latency_window)

    def __is_ready__(self) -> bool:
        """BentoML's /readyz hook: ready while at least one model is served."""
        return bool(self.store.models)

    @bentoml.api(route="/predict")
    async def predict(
        self,
        image_base64: str | None = Field(None, description=IMAGE_HELP),
        pixels: list[list[float]] | None = Field(None, description=PIXELS_HELP),
        model: str | None = Field(None, description=MODEL_HELP),
    ) -> Prediction:
        """One image -> digit, probabilities, top-3. Also takes a multipart upload (`image` file,
        `model` field) or a raw image body (Content-Type image/png, image/jpeg, ...; `?model=`)."""
        start = time.perf_counter()
        try:
            served = self.store.get(model)
            x = await anyio.to_thread.run_sync(decode_one, image_base64, pixels)
            [scores] = await self._classify([(served.name, x)])
            return self._answer(served, scores, start)
        except ServingError as exc:
            return error_response(exc)

    @bentoml.api(route="/predict_all")
    async def predict_all(
        self,
        image_base64: str | None = Field(None, description=IMAGE_HELP),
        pixels: list[list[float]] | None = Field(None, description=PIXELS_HELP),
    ) -> AllPredictions:
        """One image -> the answer of every served model (same input forms as /predict)."""
        start = time.perf_counter()
        try:
            if not self.store.models:
                self.store.get(None)  # raises Unavailable with the reasons
            x = await anyio.to_thread.run_sync(decode_one, image_base64, pixels)
            results = await self._classify([(name, x) for name in self.store.models])
            answers = [self._answer(self.store.models[r.model], r, start) for r in results]
            return AllPredictions(predictions=answers, skipped=self.store.skipped)
        except ServingError as exc:
            return error_response(exc)

    @bentoml.api(route="/predict_batch")
    async def predict_batch(
        self,
        images: list[ImageInput] = Field(description="the images; multipart: several `images` files"),
        model: str | None = Field(None, description=MODEL_HELP),
    ) -> BatchPrediction:
        """Several images for one model, run together (a max_batch=1 model runs them one by one)."""
        start = time.perf_counter()
        try:
            served = self.store.get(model)
            if not images:
                raise BadInput("images is empty")
            if len(images) > self.settings.max_batch_images:
                raise TooLarge(f"{len(images)} images; the limit is {self.settings.max_batch_images} per request")
            x = await anyio.to_thread.run_sync(_decode_many, images)
            logits, ms = await anyio.to_thread.run_sync(served.run, x)
            self.latency.add(served.name, "batch_size", len(x) if served.max_batch is None else served.max_batch)
            self.latency.request(served.name, ms, (time.perf_counter() - start) * 1000)
            rows = [Digit(**digit(p)) for p in softmax(logits)]
            return BatchPrediction(
                model=served.name, version=served.version, inference_ms=round(ms, 4), predictions=rows
            )
        except ServingError as exc:
            return error_response(exc)

    @bentoml.api(
        route="/classify",
        batchable=True,
        max_batch_size=SETTINGS.max_batch_size,
        max_latency_ms=SETTINGS.max_latency_ms,
    )
    def classify(self, items: list[ModelInput]) -> list[ModelScores]:
        """Low level: preprocessed inputs -> logits. Concurrent single-image requests are merged here
        by adaptive batching; each model then runs its share in one onnxruntime call."""
        out: list[ModelScores] = [ModelScores(model=item.model) for item in items]
        groups: dict[str, list[int]] = defaultdict(list)
        for i, item in enumerate(items):
            groups[item.model].append(i)
        for name, indices in groups.items():
            try:
                served = self.store.get(name)
                x = np.asarray([items[i].input for i in indices], dtype=np.float32)[:, None]  # (n, 1, 28, 28)
                logits, ms = served.run(x)
            except ServingError as exc:
                for i in indices:
                    out[i] = ModelScores(model=name, status=exc.status, error=str(exc))
                continue
            except Exception as exc:  # one model failing must not fail the other requests of the batch
                log.exception("inference of %s failed", name)
                for i in indices:
                    out[i] = ModelScores(model=name, status=500, error=f"inference of {name} failed: {exc}")
                continue
            size = len(indices) if served.max_batch is None else min(len(indices), served.max_batch)
            self.latency.add(name, "batch_size", size)
            for row, i in zip(logits, indices, strict=True):
                out[i] = ModelScores(model=name, logits=row.tolist(), inference_ms=round(ms, 4), batch_size=size)
        return out

    @bentoml.api(route="/latency/benchmark")
    def benchmark(
        self,
        model: str | None = Field(None, description=MODEL_HELP),
        runs: int = Field(100, description="timed runs, after one warm-up"),
        batch_size: int = Field(1, description="images per run"),
    ) -> Benchmark:
        """Time `runs` inferences of random inputs on this server's hardware (enable with
        MNISTSERVE_ENABLE_BENCHMARK=1). It shares the inference thread, so it competes with traffic."""
        try:
            if not self.settings.enable_benchmark:
                raise Forbidden("the benchmark is off; start the service with MNISTSERVE_ENABLE_BENCHMARK=1")
            if not 1 <= runs <= self.settings.benchmark_max_runs:
                raise BadInput(f"runs must lie in 1..{self.settings.benchmark_max_runs}")
            if not 1 <= batch_size <= self.settings.max_batch_images:
                raise BadInput(f"batch_size must lie in 1..{self.settings.max_batch_images}")
            served = self.store.get(model)
        except ServingError as exc:
            return error_response(exc)
        x = np.random.default_rng(0).random((batch_size, 1, 28, 28), dtype=np.float32)
        served.run(x)
        times = sorted(served.run(x)[1] for _ in range(runs))
        p50, p90, p99 = np.percentile(times, [50, 90, 99])
        mean = statistics.fmean(times)
        return Benchmark(
            model=served.name, provider=served.provider, runs=runs, batch_size=batch_size, mean_ms=round(mean, 4),
            p50_ms=round(p50, 4), p90_ms=round(p90, 4), p99_ms=round(p99, 4),
            images_per_second=round(batch_size * 1000 / mean, 1) if mean > 0 else 0.0,
        )

    async def _classify(self, pairs: list[tuple[str, np.ndarray]]) -> list[ModelScores]:
        """Run (model, (1, 28, 28) input) pairs through the batchable `classify`."""
        items = [ModelInput(model=name, input=x[0].tolist()) for name, x in pairs]
        for attempt in range(CLIENT_ATTEMPTS):
            try:
                results = await self.to_async.classify(items)
                break
            except bentoml.exceptions.BentoMLException as exc:
                if getattr(exc, "error_code", None) == 503:
                    raise Unavailable(f"the inference queue is full, try again: {exc}") from None
                raise
            except (aiohttp.ClientConnectionError, RuntimeError):
                # BentoML 1.4's client renews its session every 100 calls and closes the old one
                # under the calls still in flight (bentoml/BentoML#5540); `classify` is pure, so resend.
                if attempt == CLIENT_ATTEMPTS - 1:
                    raise
        results = [r if isinstance(r, ModelScores) else ModelScores.model_validate(r) for r in results]
        for r in results:
            if r.error is not None:
                failure = ServingError(r.error)
                failure.status = r.status
                raise failure
        return results

    def _answer(self, served: ServedModel, scores: ModelScores, start: float) -> Prediction:
        """A Prediction, recorded in the latency book."""
        probabilities = softmax(np.asarray(scores.logits, dtype=np.float64))
        request_ms = (time.perf_counter() - start) * 1000
        self.latency.request(served.name, scores.inference_ms, request_ms)
        return Prediction(
            model=served.name, version=served.version, inference_ms=scores.inference_ms,
            batch_size=scores.batch_size, **digit(probabilities),
        )

    def models_info(self) -> dict[str, Any]:
        """GET /models."""
        keys = ("file", "sha256", "size_bytes", "shipped", "opset", "metrics", "pretrained", "weights", "profile",
                "parity", "onnx_accuracy", "latency_ms")
        served = [
            {"name": m.name, "version": m.version, "provider": m.provider, "device": _device(m.provider),
             "batching": "dynamic" if m.max_batch is None else f"max {m.max_batch} per run",
             **{k: m.entry.get(k) for k in keys}}
            for m in self.store.models.values()
        ]
        entries = self.store.manifest["models"]
        skipped = [{"name": n, "reason": r, "shipped": entries[n].get("shipped"), "metrics": entries[n].get("metrics")}
                   for n, r in self.store.skipped.items()]
        return {"default": self.store.default, "run_id": self.store.manifest.get("run_id"),
                "providers_available": ort.get_available_providers(), "models": served, "skipped": skipped}

    def latency_info(self) -> dict[str, Any]:
        """GET /latency."""
        return {
            "window": self.latency.window,
            "models": {
                name: {"live": self.latency.summary(name), "exported": m.entry.get("latency_ms"),
                       "provider": m.provider}
                for name, m in self.store.models.items()
            },
        }


def _device(provider: str) -> str:
    return provider.removesuffix("ExecutionProvider").lower()


def _decode_many(images: list[ImageInput]) -> np.ndarray:
    """(N, 1, 28, 28) from /predict_batch's images; an error names the image."""
    arrays = []
    for i, image in enumerate(images):
        try:
            arrays.append(decode_one(image.image_base64, image.pixels))
        except ServingError as exc:
            exc.args = (f"images[{i}]: {exc}",)
            raise
    return np.stack(arrays)  # (N, 1, 28, 28)


# -- InputGate: every POST body passes here before BentoML parses it ---------------------------------

IMAGE_FIELDS = {"/predict": "image", "/predict_all": "image", "/predict_batch": "images"}
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF", b"qoif")


class InputGate:
    """ASGI middleware: the body limit, multipart and raw image bodies turned into the typed APIs'
    JSON, 415 for form bodies elsewhere, and the completed OpenAPI document at /docs.json."""

    def __init__(self, app: Any, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["method"] == "GET" and scope["path"] == "/docs.json":
            return await JSONResponse(openapi_document())(scope, receive, send)
        if scope["method"] != "POST":
            return await self.app(scope, receive, send)
        try:
            body = await _read_body(scope, receive, self.max_body_bytes)
            scope, body = await _as_json(scope, body)
        except ServingError as exc:
            return await error_response(exc)(scope, receive, send)
        await self.app(scope, _replay(body, receive), send)


def _header(scope: dict, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k.lower() == name), None)


def _replay(body: bytes, receive: Any) -> Any:
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if sent:
            return await receive()  # after the body: wait for the disconnect, as the server would
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _disconnected() -> dict:
    return {"type": "http.disconnect"}


async def _read_body(scope: dict, receive: Any, limit: int) -> bytes:
    """The whole body, or TooLarge as soon as it (or its Content-Length) passes `limit`."""
    declared = _header(scope, b"content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise TooLarge(f"request body is {int(declared)} bytes; the limit is {limit}")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise BadInput("client disconnected")
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            raise TooLarge(f"request body is over the limit of {limit} bytes")
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _as_json(scope: dict, body: bytes) -> tuple[dict, bytes]:
    """Multipart and raw image bodies of the image routes -> JSON; other form bodies -> 415."""
    field = IMAGE_FIELDS.get(scope["path"])
    media = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
    is_form = media in ("multipart/form-data", "application/x-www-form-urlencoded")
    if field and (media.startswith("image/") or media == "application/octet-stream"
                  or (media in ("", "application/x-www-form-urlencoded") and body.startswith(IMAGE_MAGIC))):
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        image = base64.b64encode(body).decode()
        payload: dict[str, Any] = {"image_base64": image}
        if field == "images":
            payload = {"images": [payload]}
        if "model" in query and scope["path"] != "/predict_all":
            payload["model"] = query["model"][0]
    elif field and media == "multipart/form-data":
        payload = await _form_payload(scope, body, field)
    elif is_form:
        raise UnsupportedMedia(f"{scope['path']} takes application/json" + (
            "" if field is None else ", multipart/form-data or a raw image body (Content-Type image/*)"))
    else:
        return scope, body
    data = json.dumps(payload).encode()
    headers = [(k, v) for k, v in scope["headers"] if k.lower() not in (b"content-type", b"content-length")]
    headers += [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    return {**scope, "headers": headers}, data


async def _form_payload(scope: dict, body: bytes, field: str) -> dict[str, Any]:
    """A multipart upload (`image` or `images` files, `model` and optional `pixels` fields) -> JSON."""
    request = Request(scope, _replay(body, _disconnected))
    try:
        form = await request.form(max_files=SETTINGS.max_batch_images + 1, max_fields=64)
    except Exception as exc:  # malformed multipart: Starlette and python-multipart raise several kinds
        raise BadInput(f"malformed multipart body: {getattr(exc, 'detail', exc)}") from None
    try:
        payload: dict[str, Any] = {}
        model, pixels, files = form.get("model"), form.get("pixels"), form.getlist(field)
        if isinstance(model, str) and scope["path"] != "/predict_all":
            payload["model"] = model
        if isinstance(pixels, str):
            try:
                payload["pixels"] = json.loads(pixels)
            except ValueError:
                raise BadInput("pixels must be a JSON 28x28 array") from None
        if any(not isinstance(f, UploadFile) for f in files) or isinstance(model, UploadFile):
            raise BadInput(f"`{field}` must be a file upload (curl -F {field}=@digit.png), `model` a text field")
        encoded = [base64.b64encode(await f.read()).decode() for f in files]
        if field == "images":
            payload["images"] = [{"image_base64": e} for e in encoded]
        elif len(encoded) > 1:
            raise BadInput("send one file in `image`; POST /predict_batch takes several")
        elif encoded:
            payload["image_base64"] = encoded[0]
        elif "pixels" not in payload:
            raise BadInput("the multipart body has no `image` file")
        return payload
    finally:
        await form.close()


MNISTService.add_asgi_middleware(InputGate, max_body_bytes=SETTINGS.max_body_bytes)


# -- /docs.json: BentoML's document, completed with the other input forms, examples and GET routes -----

SAMPLE_PNG = (  # a 28x28 "7", so that "Try it out" works as is
    "iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAAAAABXZoBIAAAAQ0lEQVR42mNgGEqAEcb4j0WUCauW//gkGdGMRdGG01iEHA5jcUkiaSRNJ7JG"
    "knSiaCRFJ6pGEnSiaSRe53+s8TCYAAAkIQohNgkS4QAAAABJRU5ErkJggg=="
)
_PROBS = [0.0001, 0.0003, 0.0012, 0.0021, 0.0001, 0.0002, 0.0, 0.9871, 0.0004, 0.0085]
_PREDICTION = {"digit": 7, "probabilities": _PROBS, "top3": [{"digit": 7, "probability": 0.9871},
               {"digit": 9, "probability": 0.0085}, {"digit": 3, "probability": 0.0021}],
               "model": "cnn", "version": "3f2a9c1b7d4e", "inference_ms": 0.41, "batch_size": 3}
_SKIPPED = {"faster_rcnn": "file faster_rcnn.onnx is missing (not shipped: too large for git)"}
_METRICS = {"accuracy": 0.9912, "macro_f1": 0.9911, "test_loss": 0.028, "train_seconds": 96.4,
            "images_per_second": 1510.0, "parameters": 460362}
_LIVE = {"count": 1520, "window": 1000, "mean": 0.52, "p50": 0.44, "p90": 0.81, "p99": 1.9, "max": 3.1}
# Request examples leave `model` out, so that "Try it out" works whatever the manifest serves.
EXAMPLES: dict[str, tuple[Any, Any]] = {  # route -> (JSON request, 200 response)
    "/predict": ({"image_base64": SAMPLE_PNG}, _PREDICTION),
    "/predict_all": ({"image_base64": SAMPLE_PNG}, {"predictions": [_PREDICTION], "skipped": _SKIPPED}),
    "/predict_batch": (
        {"images": [{"image_base64": SAMPLE_PNG}, {"image_base64": SAMPLE_PNG}]},
        {"model": "cnn", "version": "3f2a9c1b7d4e", "inference_ms": 0.6,
         "predictions": [{k: _PREDICTION[k] for k in ("digit", "probabilities", "top3")}] * 2},
    ),
    "/classify": (
        {"items": [{"model": "cnn", "input": [[0.0] * 28] * 28}]},
        [{"model": "cnn", "logits": [-3.1, 0.2, 1.4, 0.9, -2.2, 0.5, -1.0, 6.3, -0.4, 1.1], "status": 200,
          "error": None, "inference_ms": 0.38, "batch_size": 4}],
    ),
    "/latency/benchmark": (
        {"runs": 100, "batch_size": 1},
        {"model": "cnn", "provider": "CPUExecutionProvider", "runs": 100, "batch_size": 1, "mean_ms": 0.31,
         "p50_ms": 0.29, "p90_ms": 0.37, "p99_ms": 0.52, "images_per_second": 3225.8},
    ),
}
_ERROR = {"type": "object", "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}}
ERRORS = {
    400: "not an image, a truncated image, or an array of the wrong shape or range",
    403: "switched off by configuration",
    404: "unknown model (the message names the served ones)",
    413: "body, image or batch over the configured limit",
    415: "a body form this route does not read",
    422: "the image has no ink",
    503: "no model can be served, or the inference queue is full",
}
_GET = {
    "/models": ("Served models with stored metrics, checksum and provider; skipped models with the reason.", {
        "default": "cnn", "run_id": "20250101-120000", "providers_available": ["CPUExecutionProvider"],
        "models": [{"name": "cnn", "version": "3f2a9c1b7d4e", "provider": "CPUExecutionProvider", "device": "cpu",
                    "batching": "dynamic", "file": "cnn.onnx", "sha256": "3f2a9c1b7d4e...", "metrics": _METRICS,
                    "pretrained": False, "profile": "cpu", "latency_ms": {"batch1": 0.3, "batch64_per_image": 0.05}}],
        "skipped": [{"name": "faster_rcnn", "reason": _SKIPPED["faster_rcnn"], "shipped": False,
                     "metrics": _METRICS}]}),
    "/comparison": ("The stored training comparison (exported/comparison.json); `?format=markdown` gives a table.",
                    {"schema": "mnistserve.comparison/1", "profile": "cpu",
                     "models": [{"model": "cnn", "status": "ok", "pretrained": False, "metrics": _METRICS}]}),
    "/latency": ("Per model: live rolling figures (inference and whole-request ms, batch sizes) beside the "
                 "latency measured at export.", {"window": 1000, "models": {"cnn": {
                     "live": {"inference_ms": _LIVE, "request_ms": _LIVE, "batch_size": _LIVE},
                     "exported": {"batch1": 0.3, "batch64_per_image": 0.05}, "provider": "CPUExecutionProvider"}}}),
}
_OPENAPI: dict[str, Any] = {}


def _json_example(example: Any) -> dict[str, Any]:
    return {"application/json": {"schema": {"type": "object"}, "example": example}}


def openapi_document() -> dict[str, Any]:
    """The service's OpenAPI document, completed; built once."""
    if _OPENAPI:
        return _OPENAPI
    spec = MNISTService.openapi_spec.asdict()
    errors = {str(code): {"description": text, "content": {"application/json": {"schema": _ERROR}}}
              for code, text in ERRORS.items()}
    for path, (request, response) in EXAMPLES.items():
        post = spec["paths"][path]["post"]
        post["description"] = inspect.cleandoc(post.get("description", ""))
        post["requestBody"]["content"]["application/json"]["example"] = request
        post["responses"] = {"200": post["responses"].get(200) or post["responses"]["200"], **errors}
        post["responses"]["200"]["content"]["application/json"]["example"] = response
        field = IMAGE_FIELDS.get(path)
        if field is None:
            continue
        upload = {"type": "string", "format": "binary"}
        form = {field: upload if field == "image" else {"type": "array", "items": upload}}
        if path != "/predict_all":
            form["model"] = {"type": "string", "example": "cnn"}
            post["parameters"] = [{"name": "model", "in": "query", "required": False, "schema": {"type": "string"},
                                   "description": "with a raw image body: " + MODEL_HELP}]
        content = post["requestBody"]["content"]
        content["multipart/form-data"] = {"schema": {"type": "object", "properties": form, "required": [field]}}
        content["image/png"] = content["image/jpeg"] = {"schema": upload}
    for path, (text, example) in _GET.items():
        get: dict[str, Any] = {"tags": ["Service APIs"], "description": text,
                               "responses": {"200": {"description": "OK", "content": _json_example(example)}}}
        if path == "/comparison":
            get["parameters"] = [{"name": "format", "in": "query", "required": False,
                                  "schema": {"type": "string", "enum": ["json", "markdown"], "default": "json"}}]
            get["responses"]["200"]["content"]["text/markdown"] = {"schema": {"type": "string"}}
            get["responses"]["404"] = errors["404"] | {"description": "no comparison.json was exported"}
        spec["paths"][path] = {"get": get}
    _OPENAPI.update(spec)
    return _OPENAPI
