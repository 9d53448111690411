"""Every error a client can cause, each with the HTTP status it answers with, and the one mapping to JSON.

Routes raise these; `answers_errors` (the typed POST APIs) and `error_response` (the GET app, the
input gate and the API-key check) turn them into `{"error": message, "status": code}`. Nothing else
builds an error body.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse

from serving import metrics

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("mnistserve.errors")


class ServingError(Exception):
    """A client error; `status` is the HTTP status to answer with (a subclass names its own: `status=404`)."""

    status = 400
    headers: dict[str, str] | None = None  # extra response headers (WWW-Authenticate of a 401)

    def __init_subclass__(cls, status: int | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:  # a failure carried across the batcher keeps the status it was raised with
            self.status = status


class BadInput(ServingError, status=400):
    """Not an image, a truncated image, or an array of the wrong shape or range."""


class Unauthorized(ServingError, status=401):
    """No API key, or not a valid one, where the service asks for one (`serving.auth`)."""

    def __init__(self, message: str, *, challenge: str = 'Bearer realm="mnistserve"') -> None:
        super().__init__(message)
        self.headers = {"WWW-Authenticate": challenge}  # RFC 6750: how to authenticate; never which keys


class Forbidden(ServingError, status=403):
    """A route switched off by configuration."""


class UnknownModel(ServingError, status=404):
    """A model name that is not served."""


class NotFound(ServingError, status=404):
    """A GET of a plot or page file that is not there."""


class TooLarge(ServingError, status=413):
    """A body, an image or a batch over the configured limit."""


class UnsupportedMedia(ServingError, status=415):
    """A request body in a form this route does not read."""


class NoInk(ServingError, status=422):
    """An image with nothing drawn on it."""


class Unavailable(ServingError, status=503):
    """No model can answer (all skipped at start-up) or the batcher shed the request."""


class InferenceFailed(Unavailable):
    """onnxruntime failed on inputs that passed every check: the server's trouble, worth a retry (503)."""


def error_response(exc: ServingError) -> JSONResponse:
    """The JSON error body every route answers with."""
    return JSONResponse({"error": str(exc), "status": exc.status}, status_code=exc.status, headers=exc.headers)


def internal_error(exc: BaseException, where: str) -> JSONResponse:
    """A genuine bug: its traceback goes to the log, the client gets a JSON 500 (which fuzzers count as failures)."""
    log.error("unexpected error in %s", where, exc_info=(type(exc), exc, exc.__traceback__))
    return JSONResponse(
        {"error": f"internal error in {where} ({type(exc).__name__}); the server log has the details", "status": 500},
        status_code=500,
    )


def answers_errors(method: F) -> F:
    """Wrap an API method (sync or async): a ServingError becomes its error response, anything else a logged JSON 500;
    either is counted in `serving.metrics`."""
    where = method.__name__
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def wrapped_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await method(*args, **kwargs)
            except Exception as exc:
                return _failure(exc, where)

        return wrapped_async  # type: ignore[return-value]

    @functools.wraps(method)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            return _failure(exc, where)

    return wrapped  # type: ignore[return-value]


def _failure(exc: Exception, where: str) -> JSONResponse:
    """The answer to an exception an API method raised, counted in `serving.metrics`."""
    if isinstance(exc, ServingError):
        metrics.record_error(exc.status)
        return error_response(exc)
    metrics.record_error(500)
    return internal_error(exc, where)


async def unexpected_in_route(request: Request, exc: Exception) -> JSONResponse:
    """Starlette exception handler for the GET app: the same JSON 500 as the APIs."""
    return internal_error(exc, request.url.path)
