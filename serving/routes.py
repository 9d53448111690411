"""The GET routes: a small Starlette app that the service mounts with `@bentoml.asgi_app`.

The app is built by `create_app` from a function returning this worker's `Served` (the model store and
the latency book), so it never sees the service itself and can be tested on its own.

    GET /models, /comparison, /latency   JSON read from the `Served` of this worker
                                         (`models_info`, `latency_info`, the stored comparison)
    GET /plots                           the exported plots (the manifest's `plots` whose file exists)
    GET /plots/<name>.png                one of them; any other name is 404, nothing outside exported/plots
    GET /ui, /ui/<file>                  the web page, from serving/static (no build step, no CDN)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from mnistserve.contracts import comparison_markdown
from mnistserve.realworld import realworld_splits
from serving.errors import BadInput, NotFound, error_response, unexpected_in_route
from serving.latency import LatencyBook
from serving.store import ModelStore

STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = frozenset(p.name for p in STATIC.iterdir() if p.is_file()) if STATIC.is_dir() else frozenset()
NO_CACHE = {"Cache-Control": "no-cache"}  # the page changes with the service; revalidate, never go stale


@dataclass(frozen=True)
class Served:
    """What the GET routes read: the models of this worker and their live latency figures."""

    store: ModelStore
    latency: LatencyBook


def _served(request: Request) -> Served:
    return request.app.state.served()  # Starlette puts the app that routed the request in its scope


def models_info(served: Served) -> dict[str, Any]:
    """GET /models: served models with what the manifest says of them, skipped ones with the reason."""
    keys = (
        "file",
        "sha256",
        "size_bytes",
        "shipped",
        "opset",
        "metrics",
        "pretrained",
        "weights",
        "profile",
        "parity",
        "onnx_accuracy",
        "latency_ms",
        "calibration",
    )
    store = served.store
    models = [
        {
            "name": m.name,
            "version": m.version,
            "provider": m.provider,
            "device": m.provider.removesuffix("ExecutionProvider").lower(),
            "batching": "dynamic" if m.max_batch is None else f"max {m.max_batch} per run",
            **{k: m.entry.get(k) for k in keys},
            "realworld": realworld_splits(m.entry.get("realworld")),  # {"sealed", "dev"}; older exports: dev only
        }
        for m in store.models.values()
    ]
    entries = store.manifest["models"]
    skipped = [
        {
            "name": n,
            "reason": r,
            "shipped": entries[n].get("shipped"),
            "metrics": entries[n].get("metrics"),
            "realworld": realworld_splits(entries[n].get("realworld")),
        }
        for n, r in store.skipped.items()
    ]
    return {
        "default": store.default,
        "default_rule": store.manifest.get("default_rule"),
        "problem": store.problem,
        "run_id": store.manifest.get("run_id"),
        "providers_available": ort.get_available_providers(),
        "models": models,
        "skipped": skipped,
    }


def latency_info(served: Served) -> dict[str, Any]:
    """GET /latency: live rolling figures per served model beside those measured at export."""
    book = served.latency
    return {
        "window": book.window,
        "models": {
            name: {"live": book.summary(name), "exported": m.entry.get("latency_ms"), "provider": m.provider}
            for name, m in served.store.models.items()
        },
    }


async def models_route(request: Request) -> Response:
    return JSONResponse(models_info(_served(request)))


async def latency_route(request: Request) -> Response:
    return JSONResponse(latency_info(_served(request)))


async def comparison_route(request: Request) -> Response:
    comparison = _served(request).store.comparison
    fmt = request.query_params.get("format", "json")
    if fmt not in ("json", "markdown"):
        return error_response(BadInput(f"format must be json or markdown, not {fmt[:40]!r}"))
    if comparison is None:
        return error_response(
            NotFound("the exported directory holds no comparison (its manifest names none that verifies)")
        )
    if fmt == "json":
        return JSONResponse(comparison)
    try:
        table = comparison_markdown(comparison)
    except (KeyError, TypeError, ValueError) as exc:  # our stored file is at fault, not the client
        return JSONResponse({"error": f"the stored comparison cannot be rendered: {exc!r}", "status": 500}, 500)
    return PlainTextResponse(table, media_type="text/markdown; charset=utf-8")


def exported_plots(store: ModelStore) -> dict[str, Path]:
    """name -> file of every PNG the manifest lists under plots/ that exists inside exported/plots."""
    folder = (store.directory / "plots").resolve()
    listed = store.manifest.get("plots")
    found = {}
    for entry in listed if isinstance(listed, list) else []:
        if not isinstance(entry, str) or not entry.startswith("plots/") or not entry.endswith(".png"):
            continue
        name = entry.removeprefix("plots/")
        path = (folder / name).resolve()
        if "/" not in name and path.parent == folder and path.is_file():  # no subfolders, no links out
            found[name] = path
    return found


async def plots_route(request: Request) -> Response:
    return JSONResponse({"plots": [f"plots/{name}" for name in exported_plots(_served(request).store)]})


async def plot_route(request: Request) -> Response:
    name = request.path_params["name"]
    path = exported_plots(_served(request).store).get(name)
    if path is None:
        return error_response(NotFound(f"no exported plot named {name[:80]!r}; GET /plots lists them"))
    return FileResponse(path, media_type="image/png", headers=NO_CACHE)


async def ui_route(_: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8", headers=NO_CACHE)


async def ui_slash_route(_: Request) -> Response:
    return RedirectResponse("../ui", status_code=308)  # relative, so the page also works behind a path prefix


async def static_route(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in STATIC_FILES:  # a fixed list: no path from a request ever reaches the file system
        return error_response(NotFound(f"no file {name[:80]!r} in the web page"))
    return FileResponse(STATIC / name, headers=NO_CACHE)


ROUTES = [
    Route("/models", models_route, methods=["GET"]),
    Route("/comparison", comparison_route, methods=["GET"]),
    Route("/latency", latency_route, methods=["GET"]),
    Route("/plots", plots_route, methods=["GET"]),
    Route("/plots/{name}", plot_route, methods=["GET"]),
    Route("/ui", ui_route, methods=["GET"]),
    Route("/ui/", ui_slash_route, methods=["GET"]),
    Route("/ui/{name}", static_route, methods=["GET"]),
]


class CurrentApp(Starlette):
    """What the service mounts at definition: the GET route table (BentoML's passive mount routes by it), each
    request handed to `current()`, the app of the service instance that BentoML builds later."""

    def __init__(self, current: Callable[[], Starlette]) -> None:
        super().__init__(routes=ROUTES)
        self.current = current

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        await self.current()(scope, receive, send)


def create_app(served: Callable[[], Served]) -> Starlette:
    """The GET app; `served` returns this worker's store and latency book (called per request, as the
    service that owns them is created after this app)."""
    app = Starlette(routes=ROUTES, exception_handlers={Exception: unexpected_in_route})
    app.state.served = served
    return app
