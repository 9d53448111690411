"""Live latency: per model, a rolling window of inference and whole-request times, and batch sizes."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

SERIES = ("inference_ms", "request_ms", "batch_size")


class Rolling:
    """The last `window` values of one series and how many were ever recorded."""

    def __init__(self, window: int) -> None:
        self.values: deque[float] = deque(maxlen=window)
        self.count = 0

    def add(self, value: float) -> None:
        self.values.append(float(value))
        self.count += 1

    def summary(self) -> dict[str, float | int | None]:
        """count (ever), window (kept), mean, p50, p90, p99 and max over the window."""
        values = np.fromiter(self.values, dtype=np.float64)
        if values.size == 0:
            return {"count": self.count, "window": 0, "mean": None, "p50": None, "p90": None, "p99": None, "max": None}
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        return {
            "count": self.count,
            "window": int(values.size),
            "mean": round(float(values.mean()), 4),
            "p50": round(float(p50), 4),
            "p90": round(float(p90), 4),
            "p99": round(float(p99), 4),
            "max": round(float(values.max()), 4),
        }


class LatencyBook:
    """Thread-safe rolling figures per model: inference_ms and request_ms per served request, and
    batch_size per onnxruntime run (how many images adaptive batching put together)."""

    def __init__(self, window: int = 1000) -> None:
        self.window = window
        self._series: dict[tuple[str, str], Rolling] = {}
        self._lock = threading.Lock()

    def add(self, model: str, series: str, value: float) -> None:
        """Record one value of `series` (one of SERIES) for `model`."""
        if series not in SERIES:
            raise ValueError(f"unknown series {series!r}; choose from {SERIES}")
        with self._lock:
            self._series.setdefault((model, series), Rolling(self.window)).add(value)

    def request(self, model: str, inference_ms: float, request_ms: float) -> None:
        """Record one served request."""
        self.add(model, "inference_ms", inference_ms)
        self.add(model, "request_ms", request_ms)

    def summary(self, model: str) -> dict[str, dict[str, float | int | None]]:
        """Every series of one model (empty series included)."""
        with self._lock:
            return {s: self._series.get((model, s), Rolling(self.window)).summary() for s in SERIES}
