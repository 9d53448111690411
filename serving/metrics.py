"""Per-model Prometheus metrics, served on BentoML's /metrics beside its per-endpoint ones.

    mnistserve_requests_total{model, version, status}        answered requests; status 200, or the error's status
    mnistserve_inference_seconds{model, version}             onnxruntime time of each answer (histogram)
    mnistserve_batch_size{model, version}                    inputs per onnxruntime run (histogram)

`version` is the first 12 hex digits of the model file's SHA-256 (`ServedModel.version`). They are fed where the
latency book is (`serving.service`), so /metrics and /latency count the same things: /predict and /predict_batch
count one request each, /predict_all one per model; /classify (the batcher's route) feeds only the histograms.
Errors are counted by `serving.errors.answers_errors`, under the model the request had resolved to
(`attribute`), else model="none": a name a client made up never becomes a label.

BentoML 1.4.40 deprecates `bentoml.metrics`, which now only forwards to prometheus_client and says to use it
directly. What matters is multiprocess mode: BentoML starts each worker with PROMETHEUS_MULTIPROC_DIR set, so
metrics made at import write to the files its /metrics merges across workers. They are made once, here, at
import: prometheus_client refuses a second metric of the same name.
"""

from __future__ import annotations

from contextvars import ContextVar

from prometheus_client import Counter, Histogram

NONE = "none"  # the model label of an error that came before any model was chosen
LABELS = ("model", "version")

REQUESTS = Counter("mnistserve_requests", "Answered requests per model, by HTTP status", [*LABELS, "status"])
INFERENCE = Histogram(
    "mnistserve_inference_seconds",
    "onnxruntime time of each answer, per model",
    LABELS,
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
BATCH_SIZE = Histogram(
    "mnistserve_batch_size",
    "Inputs per onnxruntime run, per model",
    LABELS,
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
METRICS = (REQUESTS, INFERENCE, BATCH_SIZE)

# The model this request resolved to: set by the API method, read by answers_errors when it answers an error.
# Each request runs in its own task (a copied context), so one request's model never leaks into another's.
_MODEL: ContextVar[tuple[str, str]] = ContextVar("mnistserve_model", default=(NONE, NONE))


def attribute(model: str, version: str) -> None:
    """Mark the current request as one for `model`: an error it ends in is counted under that model."""
    _MODEL.set((model, version))


def record_answer(model: str, version: str, inference_ms: float) -> None:
    """One successful answer of `model` and the onnxruntime time behind it."""
    REQUESTS.labels(model, version, "200").inc()
    INFERENCE.labels(model, version).observe(inference_ms / 1000)


def record_batch(model: str, version: str, size: int) -> None:
    """One onnxruntime run of `size` inputs."""
    BATCH_SIZE.labels(model, version).observe(size)


def record_error(status: int) -> None:
    """One request answered with error `status`, under the model it had resolved to (or "none")."""
    model, version = _MODEL.get()
    REQUESTS.labels(model, version, str(status)).inc()


def metric_names() -> set[str]:
    """Every series name these metrics expose on /metrics: what a dashboard may query."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    return {
        family.name + suffix for metric in METRICS for family in metric.describe() for suffix in suffixes[family.type]
    }
