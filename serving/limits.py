"""`RequestLimits`: the ASGI middleware that refuses a POST body before BentoML reads it.

    413  a body over MNISTSERVE_MAX_BODY_BYTES: by its Content-Length before anything is read, else as it streams
    413  a /classify body holding more items than one batch (MNISTSERVE_MAX_BATCH_SIZE): BentoML's batcher would
         otherwise split it up, and one request could hold the batcher for many runs
    415  a form body (multipart or urlencoded) on a JSON-only route: BentoML's form reader would answer a
         malformed one with a 500

Everything else passes untouched: a body with a Content-Length within the limit is not even read here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mnistserve.settings import Settings
from serving.errors import BadInput, ServingError, TooLarge, UnsupportedMedia, error_response

FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")
CLASSIFY = "/classify"
MIN_ITEM_BYTES = 28 * 28 * 2  # the shortest JSON a /classify item can have: a digit and a comma per pixel


class RequestLimits:
    """ASGI middleware: body size, /classify items and form bodies on JSON-only routes (see the module)."""

    def __init__(self, app: Any, *, settings: Callable[[], Settings], json_routes: frozenset[str]) -> None:
        self.app = app
        self.settings = settings  # this worker's settings, read per request (the service is built after us)
        self.json_routes = json_routes  # routes whose input is JSON only

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        try:
            body = await self.check(scope, receive)
        except ServingError as exc:
            return await error_response(exc)(scope, receive, send)
        await self.app(scope, receive if body is None else _replay(body, receive), send)

    async def check(self, scope: dict, receive: Any) -> bytes | None:
        """Raise the refusal of this request, if any; the body when it had to be read here, else None."""
        settings, path = self.settings(), scope["path"]
        media = (_header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
        if path in self.json_routes and media in FORMS:
            raise UnsupportedMedia(f"{path} takes application/json")
        limit, declared = settings.max_body_bytes, _header(scope, b"content-length")
        size = int(declared) if declared is not None and declared.strip().isdigit() else None
        if size is not None and size > limit:
            raise TooLarge(f"request body is {size} bytes; the limit is {limit}")
        items_limit = settings.max_batch_size
        could_overflow = path == CLASSIFY and (size is None or size > items_limit * MIN_ITEM_BYTES)
        if size is not None and not could_overflow:
            return None  # the server delivers exactly Content-Length bytes: nothing to count
        body = await _read_body(receive, limit)
        if path == CLASSIFY and len(body) > items_limit * MIN_ITEM_BYTES:
            _check_items(body, items_limit)
        return body


def _header(scope: dict, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k.lower() == name), None)


def _replay(body: bytes, receive: Any) -> Any:
    """A `receive` that hands the app the body read here, then waits on the real one (for the disconnect)."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _read_body(receive: Any, limit: int) -> bytes:
    """The whole body, or TooLarge as soon as it passes `limit`."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise BadInput("client disconnected")
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            raise TooLarge(f"request body is over the limit of {limit} bytes")
        if not message.get("more_body", False):
            return b"".join(chunks)


def _check_items(body: bytes, limit: int) -> None:
    """TooLarge when a /classify body holds more items than one batch (malformed JSON is BentoML's to answer)."""
    try:
        items = json.loads(body).get("items")
    except (ValueError, AttributeError, RecursionError):
        return
    if isinstance(items, list) and len(items) > limit:
        raise TooLarge(
            f"/classify takes at most {limit} items per request (MNISTSERVE_MAX_BATCH_SIZE); got {len(items)}"
        )
