"""/docs.json: BentoML's OpenAPI document completed with the other input forms, examples and GET routes."""

from __future__ import annotations

import base64
import inspect
from typing import Any

from serving.gate import IMAGE_FIELDS
from serving.preprocess import from_bytes

MODEL_HELP = "model name from GET /models; default: the manifest's default"
IMAGE_HELP = "base64 image bytes (PNG, JPEG, ...), a data: URL allowed; or send `pixels`"
PIXELS_HELP = "28x28 array of 0-255, white digit on black (MNIST style); or send `image_base64`"
UI_LINK = "**Draw a digit and watch every served model answer: [the web page at /ui](./ui).**\n\n"
SAMPLE_PNG = (  # a 28x28 "7", so that "Try it out" works as is
    "iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAAAAABXZoBIAAAAQ0lEQVR42mNgGEqAEcb4j0WUCauW//gkGdGMRdGG01iEHA5jcUkiaSRNJ7JG"
    "knSiaCRFJ6pGEnSiaSRe53+s8TCYAAAkIQohNgkS4QAAAABJRU5ErkJggg=="
)
_PROBS = [0.0001, 0.0003, 0.0012, 0.0021, 0.0001, 0.0002, 0.0, 0.9871, 0.0004, 0.0085]
_PREDICTION = {
    "digit": 7,
    "probabilities": _PROBS,
    "top3": [
        {"digit": 7, "probability": 0.9871},
        {"digit": 9, "probability": 0.0085},
        {"digit": 3, "probability": 0.0021},
    ],
    "model": "cnn",
    "version": "3f2a9c1b7d4e",
    "inference_ms": 0.41,
    "batch_size": 3,
}
_SKIPPED = {"faster_rcnn": "file faster_rcnn.onnx is missing (not shipped: too large for git)"}
_METRICS = {
    "accuracy": 0.9912,
    "macro_f1": 0.9911,
    "test_loss": 0.028,
    "train_seconds": 96.4,
    "images_per_second": 1510.0,
    "parameters": 460362,
}
_LIVE = {"count": 1520, "window": 1000, "mean": 0.52, "p50": 0.44, "p90": 0.81, "p99": 1.9, "max": 3.1}
# Request examples leave `model` out, so that "Try it out" works whatever the manifest serves.
EXAMPLES: dict[str, tuple[Any, Any]] = {  # route -> (JSON request, 200 response)
    "/predict": ({"image_base64": SAMPLE_PNG}, _PREDICTION),
    "/predict_all": ({"image_base64": SAMPLE_PNG}, {"predictions": [_PREDICTION], "skipped": _SKIPPED}),
    "/predict_batch": (
        {"images": [{"image_base64": SAMPLE_PNG}, {"image_base64": SAMPLE_PNG}]},
        {
            "model": "cnn",
            "version": "3f2a9c1b7d4e",
            "inference_ms": 0.6,
            "predictions": [{k: _PREDICTION[k] for k in ("digit", "probabilities", "top3")}] * 2,
        },
    ),
    "/classify": (
        {"items": [{"model": "cnn", "input": [[0.0] * 28] * 28}]},
        [
            {
                "model": "cnn",
                "logits": [-3.1, 0.2, 1.4, 0.9, -2.2, 0.5, -1.0, 6.3, -0.4, 1.1],
                "status": 200,
                "error": None,
                "inference_ms": 0.38,
                "batch_size": 4,
            }
        ],
    ),
    "/latency/benchmark": (
        {"runs": 100, "batch_size": 1},
        {
            "model": "cnn",
            "provider": "CPUExecutionProvider",
            "runs": 100,
            "batch_size": 1,
            "mean_ms": 0.31,
            "p50_ms": 0.29,
            "p90_ms": 0.37,
            "p99_ms": 0.52,
            "images_per_second": 3225.8,
        },
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
    "/models": (
        "Served models with stored metrics, checksum and provider; skipped models with the reason.",
        {
            "default": "cnn",
            "run_id": "20250101-120000",
            "providers_available": ["CPUExecutionProvider"],
            "models": [
                {
                    "name": "cnn",
                    "version": "3f2a9c1b7d4e",
                    "provider": "CPUExecutionProvider",
                    "device": "cpu",
                    "batching": "dynamic",
                    "file": "cnn.3f2a9c1b7d4e.onnx",
                    "sha256": "3f2a9c1b7d4e...",
                    "metrics": _METRICS,
                    "pretrained": False,
                    "profile": "cpu",
                    "latency_ms": {"batch1": 0.3, "batch64_per_image": 0.05},
                }
            ],
            "skipped": [
                {"name": "faster_rcnn", "reason": _SKIPPED["faster_rcnn"], "shipped": False, "metrics": _METRICS}
            ],
        },
    ),
    "/comparison": (
        "The stored training comparison (the one exported/manifest.json names); `?format=markdown` gives a table.",
        {
            "schema": "mnistserve.comparison/1",
            "profile": "cpu",
            "models": [{"model": "cnn", "status": "ok", "pretrained": False, "metrics": _METRICS}],
        },
    ),
    "/latency": (
        "Per model: live rolling figures (inference and whole-request ms, batch sizes) beside the "
        "latency measured at export.",
        {
            "window": 1000,
            "models": {
                "cnn": {
                    "live": {"inference_ms": _LIVE, "request_ms": _LIVE, "batch_size": _LIVE},
                    "exported": {"batch1": 0.3, "batch64_per_image": 0.05},
                    "provider": "CPUExecutionProvider",
                }
            },
        },
    ),
    "/plots": (
        "The training report's plots that were exported (the manifest's `plots`), as URLs.",
        {"plots": ["plots/accuracy_vs_time.png", "plots/validation_curves.png", "plots/confusion_cnn.png"]},
    ),
}
_OTHER_GET = {  # path -> (description, media type)
    "/ui": (
        "The web page: draw a digit and watch every served model answer, beside the stored comparison.",
        "text/html",
    ),
    "/plots/{name}": ("One exported plot (only names that GET /plots lists).", "image/png"),
}
_OPENAPI: dict[str, Any] = {}


def _json_example(example: Any) -> dict[str, Any]:
    return {"application/json": {"schema": {"type": "object"}, "example": example}}


def _sample_28x28() -> list[list[int]]:
    """What the models receive for SAMPLE_PNG, as /predict_all reports it."""
    x = from_bytes(base64.b64decode(SAMPLE_PNG), max_pixels=28 * 28)
    return (x[0] * 255).round().astype(int).tolist()


def openapi_document(service: Any) -> dict[str, Any]:
    """The service's OpenAPI document, completed; built once."""
    if _OPENAPI:
        return _OPENAPI
    spec = service.openapi_spec.asdict()
    spec["info"]["description"] = UI_LINK + (spec["info"].get("description") or "")
    errors = {
        str(code): {"description": text, "content": {"application/json": {"schema": _ERROR}}}
        for code, text in ERRORS.items()
    }
    for path, (request, response) in EXAMPLES.items():
        post = spec["paths"][path]["post"]
        post["description"] = inspect.cleandoc(post.get("description", ""))
        post["requestBody"]["content"]["application/json"]["example"] = request
        post["responses"] = {"200": post["responses"].get(200) or post["responses"]["200"], **errors}
        if path == "/predict_all":
            response = {**response, "input_28x28": _sample_28x28()}
        post["responses"]["200"]["content"]["application/json"]["example"] = response
        if path in IMAGE_FIELDS:
            _add_image_forms(post, path)
    for path, (text, example) in _GET.items():
        get: dict[str, Any] = {
            "tags": ["Service APIs"],
            "description": text,
            "responses": {"200": {"description": "OK", "content": _json_example(example)}},
        }
        if path == "/comparison":
            get["parameters"] = [
                {
                    "name": "format",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": ["json", "markdown"], "default": "json"},
                }
            ]
            get["responses"]["200"]["content"]["text/markdown"] = {"schema": {"type": "string"}}
            get["responses"]["400"] = errors["400"] | {"description": "format is neither json nor markdown"}
            get["responses"]["404"] = errors["404"] | {"description": "the export holds no comparison"}
        spec["paths"][path] = {"get": get}
    for path, (text, media) in _OTHER_GET.items():
        spec["paths"][path] = {
            "get": {
                "tags": ["Service APIs"],
                "description": text,
                "responses": {"200": {"description": "OK", "content": {media: {"schema": {"type": "string"}}}}},
            }
        }
    spec["paths"]["/plots/{name}"]["get"]["parameters"] = [
        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}, "example": "confusion_cnn.png"}
    ]
    spec["paths"]["/plots/{name}"]["get"]["responses"]["404"] = {"description": "not an exported plot"}
    _OPENAPI.update(spec)
    return _OPENAPI


def _add_image_forms(post: dict[str, Any], path: str) -> None:
    """Document the multipart and raw image bodies that InputGate turns into JSON."""
    field = IMAGE_FIELDS[path]
    upload = {"type": "string", "format": "binary"}
    form = {field: upload if field == "image" else {"type": "array", "items": upload}}
    if path != "/predict_all":
        form["model"] = {"type": "string", "example": "cnn"}
        post["parameters"] = [
            {
                "name": "model",
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": "with a raw image body: " + MODEL_HELP,
            }
        ]
    content = post["requestBody"]["content"]
    content["multipart/form-data"] = {"schema": {"type": "object", "properties": form, "required": [field]}}
    content["image/png"] = content["image/jpeg"] = {"schema": upload}
