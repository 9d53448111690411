"""`InputGate`: the ASGI middleware every POST body passes through before BentoML parses it.

It enforces the body limit (413), turns a multipart upload or a raw image body of the image routes
into the JSON the typed `@bentoml.api` methods take, answers 415 for form bodies that BentoML's own
parsers would turn into a 500, and serves the completed OpenAPI document at /docs.json.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse

from serving.errors import BadInput, ServingError, TooLarge, UnsupportedMedia, error_response

IMAGE_FIELDS = {"/predict": "image", "/predict_all": "image", "/predict_batch": "images"}
MIN_ITEM_BYTES = 28 * 28 * 2  # the shortest JSON a /classify item can have: a digit and a comma per pixel
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF", b"qoif")


class InputGate:
    """ASGI middleware: the body limit, multipart and raw image bodies turned into the typed APIs'
    JSON, 415 for form bodies elsewhere, and the completed OpenAPI document at /docs.json."""

    def __init__(
        self,
        app: Any,
        *,
        max_body_bytes: int,
        max_files: int,
        docs: Callable[[], dict],
        max_classify_items: int | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_files = max_files  # most files one multipart body may carry
        # BentoML's dispatcher sheds a /classify request holding more items than one batch with a bare 503:
        # refuse it here first, with a 413 that says why.
        self.max_classify_items = max_classify_items
        self.docs = docs  # builds the /docs.json document (once; it caches)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["method"] == "GET" and scope["path"] == "/docs.json":
            return await JSONResponse(self.docs())(scope, receive, send)
        if scope["method"] != "POST":
            return await self.app(scope, receive, send)
        try:
            body = await _read_body(scope, receive, self.max_body_bytes)
            scope, body = await _as_json(scope, body, self.max_files)
            # Parsed only when the body could hold more items than allowed: the service's own one-item hop to
            # /classify (adaptive batching) is never parsed twice.
            if (
                scope["path"] == "/classify"
                and self.max_classify_items
                and len(body) > self.max_classify_items * MIN_ITEM_BYTES
            ):
                _check_items(body, self.max_classify_items)
        except ServingError as exc:
            return await error_response(exc)(scope, receive, send)
        await self.app(scope, _replay(body, receive), send)


def _header(scope: dict, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k.lower() == name), None)


def _replay(body: bytes, receive: Any) -> Any:
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if sent:
            return await receive()  # after the body: wait for the disconnect, as the server would
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _disconnected() -> dict:
    return {"type": "http.disconnect"}


async def _read_body(scope: dict, receive: Any, limit: int) -> bytes:
    """The whole body, or TooLarge as soon as it (or its Content-Length) passes `limit`."""
    declared = _header(scope, b"content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise TooLarge(f"request body is {int(declared)} bytes; the limit is {limit}")
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


async def _as_json(scope: dict, body: bytes, max_files: int) -> tuple[dict, bytes]:
    """Multipart and raw image bodies of the image routes -> JSON; other form bodies -> 415."""
    field = IMAGE_FIELDS.get(scope["path"])
    media = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
    is_form = media in ("multipart/form-data", "application/x-www-form-urlencoded")
    if field and (
        media.startswith("image/")
        or media == "application/octet-stream"
        or (media in ("", "application/x-www-form-urlencoded") and body.startswith(IMAGE_MAGIC))
    ):
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        image = base64.b64encode(body).decode()
        payload: dict[str, Any] = {"image_base64": image}
        if field == "images":
            payload = {"images": [payload]}
        if "model" in query and scope["path"] != "/predict_all":
            payload["model"] = query["model"][0]
    elif field and media == "multipart/form-data":
        payload = await _form_payload(scope, body, field, max_files)
    elif is_form:
        raise UnsupportedMedia(
            f"{scope['path']} takes application/json"
            + ("" if field is None else ", multipart/form-data or a raw image body (Content-Type image/*)")
        )
    else:
        return scope, body
    data = json.dumps(payload).encode()
    headers = [(k, v) for k, v in scope["headers"] if k.lower() not in (b"content-type", b"content-length")]
    headers += [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    return {**scope, "headers": headers}, data


async def _form_payload(scope: dict, body: bytes, field: str, max_files: int) -> dict[str, Any]:
    """A multipart upload (`image` or `images` files, `model` and optional `pixels` fields) -> JSON."""
    request = Request(scope, _replay(body, _disconnected))
    try:
        form = await request.form(max_files=max_files, max_fields=64)
    except Exception as exc:  # malformed multipart: Starlette and python-multipart raise several kinds
        raise BadInput(f"malformed multipart body: {getattr(exc, 'detail', exc)}") from None
    try:
        payload: dict[str, Any] = {}
        model, pixels, files = form.get("model"), form.get("pixels"), form.getlist(field)
        if isinstance(model, str) and scope["path"] != "/predict_all":
            payload["model"] = model
        if isinstance(pixels, str):
            try:
                payload["pixels"] = json.loads(pixels)
            except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested past Python's limit
                raise BadInput("pixels must be a JSON 28x28 array") from None
        if any(not isinstance(f, UploadFile) for f in files) or isinstance(model, UploadFile):
            raise BadInput(f"`{field}` must be a file upload (curl -F {field}=@digit.png), `model` a text field")
        encoded = [base64.b64encode(await f.read()).decode() for f in files]
        if field == "images":
            payload["images"] = [{"image_base64": e} for e in encoded]
        elif len(encoded) > 1:
            raise BadInput("send one file in `image`; POST /predict_batch takes several")
        elif encoded:
            payload["image_base64"] = encoded[0]
        elif "pixels" not in payload:
            raise BadInput("the multipart body has no `image` file")
        return payload
    finally:
        await form.close()
