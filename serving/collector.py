"""Python's garbage collector, set for serving: fewer, cheaper collections under load.

Every request allocates thousands of short-lived containers (BentoML's and Starlette's request objects, pydantic
models, answers); with Python's default threshold (700 allocations) the youngest generation is collected every
few requests, and each collection that reaches the older generations walks every object the worker holds:
models, BentoML, pydantic's schemas. Those are built once, at start-up, and live as long as the process, so they
are frozen out of every collection (`gc.freeze`), and the youngest generation is collected less often.
reports/serving/gc.md measures the effect on the tail latency.
"""

from __future__ import annotations

import gc


def tune(young: int) -> None:
    """Freeze the objects alive now out of collection and collect the youngest generation every `young`
    allocations; 0 leaves the collector as Python set it."""
    if young <= 0:
        return
    gc.collect()  # garbage from start-up is freed first, not frozen for the process's life
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, old)
