"""HTTP API of the MNIST models, on BentoML 1.4. Configuration: MNISTSERVE_* variables, see `serving`.

    POST /predict            one image -> digit, ten probabilities, top-3, model, version, inference ms
    POST /predict_all        one image -> every served model's answer, and the 28x28 input they received
    POST /predict_batch      several images, one model -> one answer each, in one onnxruntime run
    POST /classify           low level: preprocessed 28x28 inputs in [0, 1] -> logits (adaptive batching)
    GET  /models             served models (metrics, checksum, provider) and skipped ones (reason)
    GET  /comparison         the stored training comparison; ?format=markdown for a table
    GET  /latency            live rolling latency per model beside the latency measured at export
    GET  /plots, /plots/<name>.png   the training report's plots copied into exported/plots
    GET  /ui                 a web page: draw a digit and watch every served model answer
    POST /latency/benchmark  time N inferences here (403 unless MNISTSERVE_ENABLE_BENCHMARK=1)
    BentoML's own: GET / (Swagger UI), /docs.json, /livez, /readyz, /metrics

How the pieces fit:
  * The POST routes are typed `@bentoml.api` methods taking JSON (this module). `InputGate`, an ASGI
    middleware (`serving.gate`), turns a multipart upload or a raw image body into that JSON, enforces
    the body limit (413), and answers 415 for forms that BentoML's own parsers would turn into a 500.
  * By default /predict decodes, runs the model and answers in one worker-thread call. With adaptive
    batching on (MNISTSERVE_ADAPTIVE_BATCHING=1), single-image requests reach the batchable `classify`
    through the service's own client (`self.to_async.classify`), so BentoML's dispatcher merges concurrent
    requests into one run: that hop costs more CPU per request (reports/serving/serving.md measures it)
    than a CPU saves by batching a small model, so it is off by default.
  * The GET routes and the web page (`serving.routes`, files in `serving/static`) live in a small
    Starlette app mounted with `@bentoml.asgi_app`; it reads only this worker's `Served` (the store and
    the latency book), which the service instance owns.
  * Errors: every client error is a `serving.errors` class carrying its HTTP status; `answers_errors`
    turns one raised in an API method into the JSON error body. Request bodies are in `serving.schemas`.
  * /docs.json (`serving.openapi`) is BentoML's document completed with the other input forms,
    examples and GET routes; InputGate serves it.
  * Optional API keys (MNISTSERVE_API_KEYS or MNISTSERVE_API_KEYS_FILE): `BearerAuth` (`serving.auth`), the
    outer of the two middlewares, answers 401 before InputGate reads a body; probes stay open.
"""

from __future__ import annotations

import functools
import logging
import statistics
import time
from collections import defaultdict

import aiohttp
import anyio.to_thread
import bentoml
import numpy as np
from pydantic import Field

from mnistserve import settings
from mnistserve.settings import Settings
from serving import metrics
from serving.auth import AuthPolicy, BearerAuth, bearer, document_bearer
from serving.errors import BadInput, Forbidden, ServingError, TooLarge, Unavailable, answers_errors
from serving.gate import InputGate
from serving.latency import LatencyBook
from serving.logs import use_json_logs
from serving.openapi import IMAGE_HELP, MODEL_HELP, PIXELS_HELP, openapi_document
from serving.preprocess import from_json
from serving.routes import Served, create_app
from serving.schemas import (
    AllPredictions,
    BatchPrediction,
    Benchmark,
    Digit,
    ImageInput,
    ModelInput,
    ModelScores,
    Prediction,
)
from serving.store import ModelStore, ServedModel, digit

log = logging.getLogger("mnistserve.service")
logging.getLogger("mnistserve").setLevel(logging.INFO)  # BentoML leaves the root at WARNING: show what is served
SETTINGS = Settings.from_env()
if SETTINGS.json_logs:
    use_json_logs()  # BentoML configured this worker's logging before importing us: swap its formatter
AUTH = AuthPolicy.from_keys(SETTINGS.api_keys, protect_get=SETTINGS.auth_get)
CLIENT_ATTEMPTS = 3  # calls of `classify` through the service's own client, see `_classify`


def decode_one(image_base64: str | None, pixels: list[list[float]] | None) -> np.ndarray:
    """Exactly one of the two JSON forms -> (1, 28, 28) float32, under this service's pixel limit."""
    return from_json(image_base64, pixels, max_pixels=SETTINGS.max_pixels)


# BentoML creates the service instance after this app, in each worker: the app asks for it per request.
GET_APP = create_app(lambda: bentoml.get_current_service().served)


@bentoml.asgi_app(GET_APP, path="/", name="mnistserve-get")
@bentoml.service(
    name="mnistserve",
    traffic={"timeout": SETTINGS.timeout_s},
    workers=SETTINGS.workers,
    logging={"access": {"enabled": SETTINGS.access_log}},
)
class MNISTService:
    """Handwritten-digit recognition with the models in exported/ (ONNX Runtime)."""

    def __init__(self) -> None:
        self.settings = SETTINGS
        self.store = ModelStore(settings.exported_dir(), threads=SETTINGS.ort_threads, strict=False)
        self.latency = LatencyBook(SETTINGS.latency_window)
        self.served = Served(self.store, self.latency)  # all that the GET routes read

    def __is_ready__(self) -> bool:
        """BentoML's /readyz hook: ready while at least one model is served."""
        return bool(self.store.models)

    @bentoml.api(route="/predict")
    @answers_errors
    async def predict(
        self,
        image_base64: str | None = Field(None, description=IMAGE_HELP),
        pixels: list[list[float]] | None = Field(None, description=PIXELS_HELP),
        model: str | None = Field(None, description=MODEL_HELP),
    ) -> Prediction:
        """One image -> digit, probabilities, top-3. Also takes a multipart upload (`image` file,
        `model` field) or a raw image body (Content-Type image/png, image/jpeg, ...; `?model=`)."""
        start = time.perf_counter()
        served = self.store.get(model)
        metrics.attribute(served.name, served.version)  # an error from here on is counted under this model
        if not self.settings.adaptive_batching:
            return await anyio.to_thread.run_sync(self._predict_here, served, image_base64, pixels, start)
        x = await anyio.to_thread.run_sync(decode_one, image_base64, pixels)
        [scores] = await self._classify([(served.name, x)])
        return self._answer(served, scores, start)

    @bentoml.api(route="/predict_all")
    @answers_errors
    async def predict_all(
        self,
        image_base64: str | None = Field(None, description=IMAGE_HELP),
        pixels: list[list[float]] | None = Field(None, description=PIXELS_HELP),
    ) -> AllPredictions:
        """One image -> the answer of every served model (same input forms as /predict)."""
        start = time.perf_counter()
        if not self.store.models:
            self.store.get(None)  # raises Unavailable with the reasons
        x = await anyio.to_thread.run_sync(decode_one, image_base64, pixels)
        results = await self._classify([(name, x) for name in self.store.models])
        answers = [self._answer(self.store.models[r.model], r, start) for r in results]
        seen = np.rint(x[0] * 255).astype(np.uint8).tolist()  # (28, 28): what the models received
        return AllPredictions(predictions=answers, skipped=self.store.skipped, input_28x28=seen)

    @bentoml.api(route="/predict_batch")
    @answers_errors
    async def predict_batch(
        self,
        images: list[ImageInput] = Field(description="the images; multipart: several `images` files"),
        model: str | None = Field(None, description=MODEL_HELP),
    ) -> BatchPrediction:
        """Several images for one model, run together (a max_batch=1 model runs them one by one)."""
        start = time.perf_counter()
        served = self.store.get(model)
        metrics.attribute(served.name, served.version)
        if not images:
            raise BadInput("images is empty")
        if len(images) > self.settings.max_batch_images:
            raise TooLarge(f"{len(images)} images; the limit is {self.settings.max_batch_images} per request")
        x = await anyio.to_thread.run_sync(_decode_many, images)
        logits, ms = await anyio.to_thread.run_sync(served.run, x)
        size = len(x) if served.max_batch is None else served.max_batch
        self.latency.add(served.name, "batch_size", size)
        self.latency.request(served.name, ms, (time.perf_counter() - start) * 1000)
        metrics.record_batch(served.name, served.version, size)
        metrics.record_answer(served.name, served.version, ms)
        rows = [Digit(**digit(p)) for p in served.probabilities(logits)]
        return BatchPrediction(model=served.name, version=served.version, inference_ms=round(ms, 4), predictions=rows)

    @bentoml.api(
        route="/classify",
        batchable=True,
        max_batch_size=SETTINGS.max_batch_size,
        max_latency_ms=SETTINGS.max_latency_ms,
    )
    def classify(self, items: list[ModelInput]) -> list[ModelScores]:
        """Low level: preprocessed inputs -> logits. Concurrent single-image requests are merged here
        by adaptive batching; each model then runs its share in one onnxruntime call."""
        pairs = [(item.model, np.asarray(item.input, dtype=np.float32)[None]) for item in items]
        return self._run_pairs(pairs)

    @bentoml.api(route="/latency/benchmark")
    @answers_errors
    def benchmark(
        self,
        model: str | None = Field(None, description=MODEL_HELP),
        runs: int = Field(100, description="timed runs, after one warm-up"),
        batch_size: int = Field(1, description="images per run"),
    ) -> Benchmark:
        """Time `runs` inferences of random inputs on this server's hardware (enable with
        MNISTSERVE_ENABLE_BENCHMARK=1). It shares the inference thread, so it competes with traffic."""
        if not self.settings.enable_benchmark:
            raise Forbidden("the benchmark is off; start the service with MNISTSERVE_ENABLE_BENCHMARK=1")
        if not 1 <= runs <= self.settings.benchmark_max_runs:
            raise BadInput(f"runs must lie in 1..{self.settings.benchmark_max_runs}")
        if not 1 <= batch_size <= self.settings.max_batch_images:
            raise BadInput(f"batch_size must lie in 1..{self.settings.max_batch_images}")
        served = self.store.get(model)
        x = np.random.default_rng(0).random((batch_size, 1, 28, 28), dtype=np.float32)
        served.run(x)
        times = sorted(served.run(x)[1] for _ in range(runs))
        p50, p90, p99 = np.percentile(times, [50, 90, 99])
        mean = statistics.fmean(times)
        return Benchmark(
            model=served.name,
            provider=served.provider,
            runs=runs,
            batch_size=batch_size,
            mean_ms=round(mean, 4),
            p50_ms=round(p50, 4),
            p90_ms=round(p90, 4),
            p99_ms=round(p99, 4),
            images_per_second=round(batch_size * 1000 / mean, 1) if mean > 0 else 0.0,
        )

    def _predict_here(
        self, served: ServedModel, image_base64: str | None, pixels: list[list[float]] | None, start: float
    ) -> Prediction:
        """Decode, run and answer in one worker-thread call: one hop off the event loop, not three."""
        x = decode_one(image_base64, pixels)
        [scores] = _raise_errors(self._run_pairs([(served.name, x)]))
        return self._answer(served, scores, start)

    def _run_pairs(self, pairs: list[tuple[str, np.ndarray]]) -> list[ModelScores]:
        """(model, (1, 28, 28) input) pairs -> scores; each model runs its share in one onnxruntime call."""
        out: list[ModelScores] = [ModelScores(model=name) for name, _ in pairs]
        groups: dict[str, list[int]] = defaultdict(list)
        for i, (name, _) in enumerate(pairs):
            groups[name].append(i)
        for name, indices in groups.items():
            try:
                served = self.store.get(name)
                logits, ms = served.run(np.stack([pairs[i][1] for i in indices]))  # (n, 1, 28, 28)
            except ServingError as exc:  # one model failing must not fail the other requests of the batch
                for i in indices:
                    out[i] = ModelScores(model=name, status=exc.status, error=str(exc))
                continue
            except Exception as exc:  # a genuine bug: logged, and a 500 for these requests only
                log.exception("inference of %s failed unexpectedly", name)
                for i in indices:
                    out[i] = ModelScores(
                        model=name, status=500, error=f"internal error in inference of {name} ({type(exc).__name__})"
                    )
                continue
            size = len(indices) if served.max_batch is None else min(len(indices), served.max_batch)
            self.latency.add(name, "batch_size", size)
            metrics.record_batch(name, served.version, size)
            for row, i in zip(logits, indices, strict=True):
                out[i] = ModelScores(model=name, logits=row.tolist(), inference_ms=round(ms, 4), batch_size=size)
        return out

    async def _classify(self, pairs: list[tuple[str, np.ndarray]]) -> list[ModelScores]:
        """Run (model, (1, 28, 28) input) pairs: through the batchable `classify` with adaptive batching on,
        else directly in a worker thread (no hop through BentoML's client, whose CPU cost reports/serving/ measures)."""
        if not self.settings.adaptive_batching:
            return _raise_errors(await anyio.to_thread.run_sync(self._run_pairs, pairs))
        items = [ModelInput(model=name, input=x[0].tolist()) for name, x in pairs]
        _authorize_own_client(self.to_async)
        for attempt in range(CLIENT_ATTEMPTS):
            try:
                results = await self.to_async.classify(items)
                break
            except bentoml.exceptions.BentoMLException as exc:
                if getattr(exc, "error_code", None) == 503:
                    raise Unavailable(f"the inference queue is full, try again: {exc}") from None
                # `classify` answers its own failures in ModelScores: anything else is the hop's, a server fault
                log.exception("adaptive batching: the call to classify failed")
                raise Unavailable(f"the batching queue failed, try again ({type(exc).__name__})") from None
            except (aiohttp.ClientConnectionError, RuntimeError) as exc:
                # BentoML 1.4's client renews its session every 100 calls and closes the old one
                # under the calls still in flight (bentoml/BentoML#5540); `classify` is pure, so resend.
                if attempt == CLIENT_ATTEMPTS - 1:
                    log.warning("adaptive batching: classify unreachable after %d attempts: %r", CLIENT_ATTEMPTS, exc)
                    raise Unavailable("the batching queue is unreachable, try again") from None
        return _raise_errors([r if isinstance(r, ModelScores) else ModelScores.model_validate(r) for r in results])

    def _answer(self, served: ServedModel, scores: ModelScores, start: float) -> Prediction:
        """A Prediction, recorded in the latency book and the metrics."""
        probabilities = served.probabilities(np.asarray([scores.logits], dtype=np.float64))[0]
        request_ms = (time.perf_counter() - start) * 1000
        self.latency.request(served.name, scores.inference_ms, request_ms)
        metrics.record_answer(served.name, served.version, scores.inference_ms)
        return Prediction(
            model=served.name,
            version=served.version,
            inference_ms=scores.inference_ms,
            batch_size=scores.batch_size,
            **digit(probabilities),
        )


def _raise_errors(results: list[ModelScores]) -> list[ModelScores]:
    """`results` unchanged, or the first failure raised as a ServingError with its HTTP status."""
    for r in results:
        if r.error is not None:
            raise ServingError(r.error, status=r.status)
    return results


def _authorize_own_client(client: object) -> None:
    """With API keys, let the service's own client (its hop to /classify runs through this app, BearerAuth
    included) present the first key; BentoML builds each new client session from these headers."""
    headers = getattr(client, "default_headers", None)
    if SETTINGS.api_keys and isinstance(headers, dict):
        headers["Authorization"] = bearer(SETTINGS.api_keys[0])


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


@functools.cache
def _docs() -> dict:
    """/docs.json: BentoML's document completed, with the bearer scheme when keys are set."""
    return document_bearer(openapi_document(MNISTService), AUTH)


if AUTH.enabled:  # how many keys and what they cover; never the keys
    log.info(
        "API keys required (%d configured) on the POST routes%s",
        len(AUTH.digests),
        " and the GET data routes" if AUTH.protect_get else "",
    )
# Middlewares run in the order added: BearerAuth first, so a request without a valid key is answered 401
# before InputGate reads its body. BentoML's own (access log, metrics, timeout) wrap both.
MNISTService.add_asgi_middleware(BearerAuth, policy=AUTH)
MNISTService.add_asgi_middleware(
    InputGate,
    max_body_bytes=SETTINGS.max_body_bytes,
    max_files=SETTINGS.max_batch_images + 1,
    docs=_docs,
    max_classify_items=SETTINGS.max_batch_size,
)
