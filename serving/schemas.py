"""The JSON bodies of the typed POST APIs (pydantic models BentoML validates and documents)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from serving.openapi import IMAGE_HELP, PIXELS_HELP

Unit = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Row = Annotated[list[Unit], Field(min_length=28, max_length=28)]


class Top(BaseModel):
    digit: int
    probability: float


class Digit(BaseModel):
    digit: int = Field(description="most probable class")
    uncertain: bool = Field(
        description="the digit's calibrated probability is below 0.7 (serving.store.UNCERTAIN_BELOW): "
        "the model is not sure, show the top 3 rather than one answer"
    )
    probabilities: list[float] = Field(
        description="calibrated probabilities of the ten digits (softmax of scores / the model's temperature), "
        "index = digit"
    )
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
    input_28x28: list[list[int]] = Field(
        description="the 28x28 image every model received, 0-255, white digit on black: what preprocessing made"
    )


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
