"""The MNIST service: ONNX models from `exported/`, served by BentoML. Never imports torch or `training`.

Modules: `preprocess` (bytes or arrays -> (1, 28, 28) float32, errors that carry an HTTP status),
`store` (manifest, checksums, onnxruntime sessions), `latency` (rolling figures), `service` (the BentoML
service and its typed POST APIs), `gate` (ASGI middleware: multipart and raw bodies, size limits), `routes`
(GET routes, the /ui page and plots), `openapi` (the completed /docs.json).

Configuration, read from the environment when the service starts:

    MNISTSERVE_EXPORTED          directory holding manifest.json and the .onnx files (default ./exported)
    MNISTSERVE_MAX_BODY_BYTES    largest request body, in bytes; larger -> 413 (default 2097152, 2 MiB)
    MNISTSERVE_MAX_PIXELS        largest image, width x height, checked before decoding; larger -> 413
                                 (default 16777216, 4096 x 4096)
    MNISTSERVE_MAX_BATCH_IMAGES  most images in one /predict_batch request; more -> 413 (default 64)
    MNISTSERVE_ADAPTIVE_BATCHING 1: /predict and /predict_all go through the batchable /classify, where BentoML
                                 merges concurrent requests (worth it with a GPU provider); 0: they run the
                                 model directly, ~3x the throughput on a CPU (reports/serving/) (default 0)
    MNISTSERVE_MAX_BATCH_SIZE    adaptive batching: most single-image requests merged into one run (default 32)
    MNISTSERVE_MAX_LATENCY_MS    adaptive batching: a queued request older than this is shed with 503
                                 (default 5000)
    MNISTSERVE_TIMEOUT_S         request timeout, seconds (default 30)
    MNISTSERVE_ACCESS_LOG        0 switches BentoML's access log (one line per request) off (default 1)
    MNISTSERVE_LATENCY_WINDOW    requests kept per model for /latency (default 1000)
    MNISTSERVE_ENABLE_BENCHMARK  1 enables POST /latency/benchmark (default 0: it answers 403)
    MNISTSERVE_BENCHMARK_MAX_RUNS  most timed runs one benchmark request may ask for (default 1000)
    MNISTSERVE_ORT_THREADS       onnxruntime intra-op threads per session; 0 = onnxruntime's choice (default 0)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Settings:
    """Service limits and switches; each field is MNISTSERVE_<FIELD NAME IN CAPITALS>."""

    max_body_bytes: int = 2 * 1024 * 1024  # whole request body
    max_pixels: int = 4096 * 4096  # decompression-bomb guard, checked on the header
    max_batch_images: int = 64  # images in one /predict_batch request
    adaptive_batching: bool = False  # /predict through the batchable /classify (else directly)
    max_batch_size: int = 32  # adaptive batching cap (BentoML requires > 1)
    max_latency_ms: int = 5000  # adaptive batching latency budget
    timeout_s: int = 30  # BentoML traffic timeout
    access_log: bool = True  # BentoML's per-request log line
    latency_window: int = 1000  # rolling window of /latency
    enable_benchmark: bool = False  # POST /latency/benchmark
    benchmark_max_runs: int = 1000
    ort_threads: int = 0  # 0 = onnxruntime default

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Settings from MNISTSERVE_* variables; a malformed value raises ValueError naming it."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            key = f"MNISTSERVE_{f.name.upper()}"
            raw = env.get(key)
            if raw is None or raw.strip() == "":
                continue
            raw = raw.strip()
            if f.type == "bool":
                if raw.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                    raise ValueError(f"{key}={raw!r} is not a switch; use 1 or 0")
                values[f.name] = raw.lower() in ("1", "true", "yes", "on")
                continue
            try:
                number = int(raw)
            except ValueError:
                raise ValueError(f"{key}={raw!r} is not an integer") from None
            if number < 0 or (number == 0 and f.name != "ort_threads"):
                raise ValueError(f"{key}={raw!r} must be positive")
            values[f.name] = number
        settings = cls(**values)
        if settings.max_batch_size < 2:
            raise ValueError("MNISTSERVE_MAX_BATCH_SIZE must be at least 2 (BentoML's adaptive batching needs it)")
        return settings
