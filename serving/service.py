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
    BentoML's own: GET / (Swagger UI), /docs.json (its OpenAPI document), /livez, /readyz, /metrics

How the pieces fit:
  * The POST routes are typed `@bentoml.api` methods. The image routes' inputs (`serving.inputs`) take a JSON
    body, a multipart upload or a raw image body into typed fields (`image` bytes, `image_base64`, `pixels`,
    `model`); images are decoded here, by `serving.preprocess`. /classify and /latency/benchmark take JSON.
  * By default /predict decodes, runs the model and answers in one worker-thread call. With adaptive batching on
    (MNISTSERVE_ADAPTIVE_BATCHING=1), images reach the batchable `classify` through the client BentoML gives every
    service of itself (`self.to_async`), so that BentoML's dispatcher merges concurrent requests into one run:
    that hop costs more CPU per request than a CPU saves by batching a small model (reports/serving/serving.md),
    so it is off by default.
  * The GET routes and the web page (`serving.routes`, files in `serving/static`) are a small Starlette app that
    each service instance builds over its own store and latency book; `@bentoml.asgi_app` mounts a
    `serving.routes.CurrentApp`, which hands each request to the current instance's app.
  * Two ASGI middlewares, each reading the current instance's settings per request: `BearerAuth`
    (`serving.auth`, optional API keys) answers 401 before anything reads a body; `RequestLimits`
    (`serving.limits`) answers 413 for a body over the limit and 415 for a form on a JSON-only route.
  * Errors: every client error is a `serving.errors` class carrying its HTTP status; `answers_errors` turns one
    raised in an API method into the JSON error body. A body that cannot be parsed is refused by BentoML (400).
  * /docs.json is the document BentoML generates from the typed inputs and answers (`serving.inputs`,
    `serving.schemas`: descriptions and examples on their fields) and from the docstrings here.
  * Settings are read when BentoML constructs the service, except the five it needs at definition (DEFINITION).
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import aiohttp
import anyio.to_thread
import bentoml
import numpy as np
from bentoml import get_current_service
from pydantic import Field

from mnistserve.settings import PREFIX, Settings, exported_dir
from serving import collector, metrics
from serving.auth import AuthPolicy, BearerAuth, bearer
from serving.errors import BadInput, Forbidden, ServingError, TooLarge, Unavailable, answers_errors
from serving.inputs import BatchInput, ImageInput, ImageRequest, PredictAllInput, PredictInput
from serving.latency import LatencyBook
from serving.limits import RequestLimits
from serving.logs import use_json_logs
from serving.preprocess import from_bytes, from_json
from serving.routes import CurrentApp, Served, create_app
from serving.schemas import MODEL_HELP, AllPredictions, BatchPrediction, Benchmark, ModelInput, ModelScores, Prediction
from serving.store import ModelStore, ServedModel

log = logging.getLogger("mnistserve.service")
CLIENT_ATTEMPTS = 3  # calls of `classify` through the service's own client, see `_classify`
DEFINITION_FIELDS = ("workers", "timeout_s", "access_log", "max_batch_size", "max_latency_ms")


def definition_settings(env: Mapping[str, str] = os.environ) -> Settings:
    """The settings BentoML reads when it imports this module: only DEFINITION_FIELDS' variables are looked at."""
    names = {PREFIX + name.upper() for name in DEFINITION_FIELDS}
    return Settings.from_env({k: v for k, v in env.items() if k in names})


# BentoML takes a service's workers, traffic timeout and access-log switch from @bentoml.service, and a batchable
# API's batch size and latency from @bentoml.api, as it imports this module, before any instance exists (its own
# configuration, e.g. BENTOML_CONFIG_OPTIONS="services.mnistserve.workers=1", can override the first three): so
# these five settings are read once, here. Every other setting is read by the constructor.
DEFINITION = definition_settings()


@bentoml.asgi_app(CurrentApp(lambda: _current().routes), path="/", name="mnistserve-get")
@bentoml.service(
    name="mnistserve",
    traffic={"timeout": DEFINITION.timeout_s},
    workers=DEFINITION.workers,
    logging={"access": {"enabled": DEFINITION.access_log}},
)
class MNISTService:
    """Handwritten-digit recognition with the ONNX models of exported/ (ONNX Runtime). The Bento's description
    (bentofile.yaml) heads its OpenAPI document: the GET routes, the web page and the error statuses."""

    def __init__(self) -> None:
        self.settings = Settings.from_env()
        logging.getLogger("mnistserve").setLevel(logging.INFO)  # BentoML leaves the root at WARNING
        if self.settings.json_logs:
            use_json_logs()  # BentoML configured this worker's logging before building us: swap its formatter
        self.auth = AuthPolicy.from_keys(self.settings.api_keys, protect_get=self.settings.auth_get)
        if self.auth.enabled:  # how many keys and what they cover; never the keys
            scope = " and the GET data routes" if self.auth.protect_get else ""
            log.info("API keys required (%d configured) on the POST routes%s", len(self.auth.digests), scope)
        self.store = ModelStore(exported_dir(), threads=self.settings.ort_threads, strict=False)
        self.latency = LatencyBook(self.settings.latency_window)
        self.served = Served(self.store, self.latency)  # all that the GET routes read
        self.routes = create_app(lambda: self.served)
        collector.tune(self.settings.gc_young)  # last: what was built above lives as long as the worker

    def __is_ready__(self) -> bool:
        """BentoML's /readyz hook: ready while at least one model is served."""
        return bool(self.store.models)

    @bentoml.api(route="/predict", input_spec=PredictInput)
    @answers_errors
    async def predict(
        self,
        image: bytes | None = None,
        image_base64: str | None = None,
        pixels: list[list[float]] | None = None,
        model: str | None = None,
    ) -> Prediction:
        """One image -> digit, probabilities, top-3. Send a multipart `image` file (and a `model` field), a raw
        image body (`curl --data-binary @digit.png -H 'Content-Type: image/png' '.../predict?model=cnn'`), or JSON
        `{"image_base64": ..., "model": ...}` or `{"pixels": [[...28 numbers] x 28]}`."""
        start = time.perf_counter()
        served = self.store.get(model)
        metrics.attribute(served.name, served.version)  # an error from here on is counted under this model
        one = ImageInput(image=image, image_base64=image_base64, pixels=pixels)
        if not self.settings.adaptive_batching:
            return await anyio.to_thread.run_sync(self._predict_here, served, one, start)
        x = await anyio.to_thread.run_sync(self.decode, one)
        [scores] = await self._classify([(served.name, x)])
        return self._answer(served, scores.logits, scores.inference_ms, scores.batch_size, start)

    @bentoml.api(route="/predict_all", input_spec=PredictAllInput)
    @answers_errors
    async def predict_all(
        self, image: bytes | None = None, image_base64: str | None = None, pixels: list[list[float]] | None = None
    ) -> AllPredictions:
        """One image -> the answer of every served model, and the 28x28 input they received. Same input forms
        as /predict, without a model."""
        start = time.perf_counter()
        if not self.store.models:
            self.store.get(None)  # raises Unavailable with the reasons
        one = ImageInput(image=image, image_base64=image_base64, pixels=pixels)
        x = await anyio.to_thread.run_sync(self.decode, one)
        results = await self._classify([(name, x) for name in self.store.models])
        answers = [
            self._answer(self.store.models[r.model], r.logits, r.inference_ms, r.batch_size, start) for r in results
        ]
        seen = np.rint(x[0] * 255).astype(np.uint8).tolist()  # (28, 28): what the models received
        return AllPredictions(predictions=answers, skipped=self.store.skipped, input_28x28=seen)

    @bentoml.api(route="/predict_batch", input_spec=BatchInput)
    @answers_errors
    async def predict_batch(self, images: list[ImageInput], model: str | None = None) -> BatchPrediction:
        """Several images for one model, run together (a max_batch=1 model runs them one by one): JSON `images`
        (a list of `{"image_base64"}` or `{"pixels"}`), several multipart `images` files, or one raw image body."""
        start = time.perf_counter()
        served = self.store.get(model)
        metrics.attribute(served.name, served.version)
        if not images:
            raise BadInput("images is empty")
        if len(images) > self.settings.max_batch_images:
            raise TooLarge(f"{len(images)} images; the limit is {self.settings.max_batch_images} per request")
        x = await anyio.to_thread.run_sync(self._decode_many, images)
        logits, ms = await anyio.to_thread.run_sync(served.run, x)
        size = len(x) if served.max_batch is None else served.max_batch
        self.latency.add(served.name, "batch_size", size)
        self.latency.request(served.name, ms, (time.perf_counter() - start) * 1000)
        metrics.record_batch(served.name, served.version, size)
        metrics.record_answer(served.name, served.version, ms)
        rows = [served.answer(p) for p in served.probabilities(logits)]
        return BatchPrediction(model=served.name, version=served.version, inference_ms=round(ms, 4), predictions=rows)

    @bentoml.api(
        route="/classify",
        batchable=True,
        max_batch_size=DEFINITION.max_batch_size,
        max_latency_ms=DEFINITION.max_latency_ms,
    )
    def classify(self, items: list[ModelInput]) -> list[ModelScores]:
        """Low level: preprocessed 28x28 inputs in [0, 1] -> logits. BentoML's adaptive batching merges concurrent
        requests here; each model then runs its share in one onnxruntime call. An item that fails carries its
        own status and error; the others are answered."""
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

    def decode(self, one: ImageInput) -> np.ndarray:
        """Exactly one of the three image forms -> (1, 28, 28) float32, under this service's pixel limit."""
        if one.image is None:
            return from_json(one.image_base64, one.pixels, max_pixels=self.settings.max_pixels)
        if one.image_base64 is not None or one.pixels is not None:
            raise BadInput("send exactly one image: a file or raw body, image_base64 or pixels")
        return from_bytes(one.image, max_pixels=self.settings.max_pixels)

    def _decode_many(self, images: list[ImageInput]) -> np.ndarray:
        """(N, 1, 28, 28) from /predict_batch's images; an error names the image."""
        arrays = []
        for i, one in enumerate(images):
            try:
                arrays.append(self.decode(one))
            except ServingError as exc:
                exc.args = (f"images[{i}]: {exc}",)
                raise
        return np.stack(arrays)  # (N, 1, 28, 28)

    def _predict_here(self, served: ServedModel, one: ImageInput, start: float) -> Prediction:
        """Decode, run and answer in one worker-thread call: one hop off the event loop, not three."""
        logits, ms = served.run(self.decode(one)[None])  # (1, 1, 28, 28) -> (1, 10)
        self.latency.add(served.name, "batch_size", 1)
        metrics.record_batch(served.name, served.version, 1)
        return self._answer(served, logits[0], round(ms, 4), 1, start)

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
        else directly in a worker thread."""
        if not self.settings.adaptive_batching:
            return _raise_errors(await anyio.to_thread.run_sync(self._run_pairs, pairs))
        items = [ModelInput(model=name, input=x[0].tolist()) for name, x in pairs]
        if self.settings.api_keys:  # the hop runs through this app, BearerAuth included: present the first key
            self.to_async.default_headers["Authorization"] = bearer(self.settings.api_keys[0])
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
                # BentoML 1.4's client renews its session every 100 calls and closes the old one under the calls
                # still in flight (bentoml/BentoML#5540; 11 of 600 failed at concurrency 8 without this): resend,
                # `classify` is pure.
                if attempt == CLIENT_ATTEMPTS - 1:
                    log.warning("adaptive batching: classify unreachable after %d attempts: %r", CLIENT_ATTEMPTS, exc)
                    raise Unavailable("the batching queue is unreachable, try again") from None
        return _raise_errors([r if isinstance(r, ModelScores) else ModelScores.model_validate(r) for r in results])

    def _answer(self, served: ServedModel, logits: Any, inference_ms: float, size: int, start: float) -> Prediction:
        """A Prediction from one image's logits, recorded in the latency book and the metrics."""
        probabilities = served.probabilities(np.asarray([logits], dtype=np.float64))[0]
        request_ms = (time.perf_counter() - start) * 1000
        self.latency.request(served.name, inference_ms, request_ms)
        metrics.record_answer(served.name, served.version, inference_ms)
        return Prediction(
            model=served.name,
            version=served.version,
            inference_ms=inference_ms,
            batch_size=size,
            **served.answer(probabilities),
        )


def _raise_errors(results: list[ModelScores]) -> list[ModelScores]:
    """`results` unchanged, or the first failure raised as a ServingError with its HTTP status."""
    for r in results:
        if r.error is not None:
            raise ServingError(r.error, status=r.status)
    return results


def _current() -> MNISTService:
    return get_current_service()


# Middlewares run in the order added: BearerAuth first, so a request without a valid key is answered 401 before
# RequestLimits reads its body. BentoML's own (access log, metrics, timeout) wrap both.
MNISTService.add_asgi_middleware(BearerAuth, policy=lambda: _current().auth)
MNISTService.add_asgi_middleware(
    RequestLimits,
    settings=lambda: _current().settings,
    json_routes=frozenset(
        api.route for api in MNISTService.apis.values() if not issubclass(api.input_spec, ImageRequest)
    ),
)
