"""The two smallest servers `floor.py` compares: a BentoML service and a Starlette app, each echoing a JSON number.

bentoml serve benchmarks.floor_apps:Floor          POST /echo {"x": 1} -> {"x": 1}
uvicorn benchmarks.floor_apps:STARLETTE            the same route, no BentoML
"""

from __future__ import annotations

import bentoml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@bentoml.service(name="floor", logging={"access": {"enabled": False}})
class Floor:
    """Nothing but BentoML's own request handling (access log off, as the Starlette app has none)."""

    @bentoml.api(route="/echo")
    def echo(self, x: int) -> dict:
        """Return the number sent."""
        return {"x": x}


async def _echo(request: Request) -> JSONResponse:
    return JSONResponse({"x": (await request.json())["x"]})


async def _ready(_: Request) -> JSONResponse:
    return JSONResponse({})


STARLETTE = Starlette(routes=[Route("/echo", _echo, methods=["POST"]), Route("/readyz", _ready)])
