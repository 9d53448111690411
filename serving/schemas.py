"""The typed answers of the POST APIs and the JSON bodies of /classify: pydantic models BentoML validates and
documents. Descriptions and examples live here, on the fields, so that BentoML's generated OpenAPI carries them."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

MODEL_HELP = "model name from GET /models; default: the manifest's default"
IMAGE_HELP = "base64 image bytes (PNG, JPEG, ...), a data: URL allowed; for JSON clients"
PIXELS_HELP = "28x28 array of 0-255, white digit on black (MNIST style)"
FILE_HELP = "the image file (multipart, `curl -F image=@digit.png`); a raw image body fills it too"
SAMPLE_PNG = (  # a 28x28 "7", so that Swagger's "Try it out" works as is
    "iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAAAAABXZoBIAAAAQ0lEQVR42mNgGEqAEcb4j0WUCauW//gkGdGMRdGG01iEHA5jcUkiaSRNJ7JG"
    "knSiaCRFJ6pGEnSiaSRe53+s8TCYAAAkIQohNgkS4QAAAABJRU5ErkJggg=="
)
_DIGIT_EXAMPLE = {
    "digit": 7,
    "uncertain": False,
    "probabilities": [0.0001, 0.0003, 0.0012, 0.0021, 0.0001, 0.0002, 0.0, 0.9871, 0.0004, 0.0085],
    "top3": [{"digit": 7, "probability": 0.9871}, {"digit": 9, "probability": 0.0085}],
}
_PREDICTION_EXAMPLE = {
    **_DIGIT_EXAMPLE,
    "model": "cnn",
    "version": "3f2a9c1b7d4e",
    "inference_ms": 0.41,
    "batch_size": 1,
}

Unit = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Row = Annotated[list[Unit], Field(min_length=28, max_length=28)]


class Top(BaseModel):
    digit: int
    probability: float


class Digit(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": _DIGIT_EXAMPLE})

    digit: int = Field(description="most probable class")
    uncertain: bool = Field(
        description="the digit's calibrated probability is below the model's threshold (its manifest entry's "
        "calibration.uncertain_below, chosen on the real-world development split; 0.7 where it names none): "
        "the model is not sure, show the top 3 rather than one answer"
    )
    probabilities: list[float] = Field(
        description="calibrated probabilities of the ten digits (softmax of scores / the model's temperature), "
        "index = digit"
    )
    top3: list[Top]


class Prediction(Digit):
    model_config = ConfigDict(json_schema_extra={"example": _PREDICTION_EXAMPLE})

    model: str
    version: str = Field(description="first 12 hex digits of the model file's SHA-256")
    inference_ms: float = Field(description="onnxruntime time of the run that answered")
    batch_size: int = Field(description="images in that run (adaptive batching merges requests)")


class BatchPrediction(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "model": "cnn",
                "version": "3f2a9c1b7d4e",
                "inference_ms": 0.6,
                "predictions": [_DIGIT_EXAMPLE] * 2,
            }
        }
    )

    model: str
    version: str
    inference_ms: float
    predictions: list[Digit]


class AllPredictions(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "predictions": [_PREDICTION_EXAMPLE],
                "skipped": {"faster_rcnn": "file faster_rcnn.onnx is missing (not shipped: too large for git)"},
                "input_28x28": [[0] * 28] * 28,
            }
        }
    )

    predictions: list[Prediction] = Field(description="one per served model")
    skipped: dict[str, str] = Field(description="models not served, with the reason")
    input_28x28: list[list[int]] = Field(
        description="the 28x28 image every model received, 0-255, white digit on black: what preprocessing made"
    )


class ModelInput(BaseModel):
    model: str = Field(json_schema_extra={"example": "cnn"})
    input: Annotated[list[Row], Field(min_length=28, max_length=28, description="28x28 floats in [0, 1]")]


class ModelScores(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "model": "cnn",
                "logits": [-3.1, 0.2, 1.4, 0.9, -2.2, 0.5, -1.0, 6.3, -0.4, 1.1],
                "status": 200,
                "error": None,
                "inference_ms": 0.38,
                "batch_size": 4,
            }
        }
    )

    model: str
    logits: list[float] | None = None
    status: int = Field(200, description="this item's HTTP status: one bad item never fails a merged batch")
    error: str | None = None
    inference_ms: float = 0.0
    batch_size: int = 0


class Benchmark(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "model": "cnn",
                "provider": "CPUExecutionProvider",
                "runs": 100,
                "batch_size": 1,
                "mean_ms": 0.31,
                "p50_ms": 0.29,
                "p90_ms": 0.37,
                "p99_ms": 0.52,
                "images_per_second": 3225.8,
            }
        }
    )

    model: str
    provider: str
    runs: int
    batch_size: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    images_per_second: float
