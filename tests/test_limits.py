"""`serving.limits.RequestLimits` on its own: what it refuses before a body is read, and what it leaves untouched."""

from __future__ import annotations

import asyncio

from mnistserve.settings import Settings
from serving.limits import RequestLimits

SETTINGS = Settings(max_body_bytes=100, max_batch_size=2)


def _run(
    headers: list[tuple[bytes, bytes]], chunks: list[bytes], path: str = "/predict", settings: Settings = SETTINGS
) -> tuple[list, int, bytes]:
    """(messages sent, how often the client's body was read, the body the app saw) for one POST."""
    reads, seen, sent = [0], [b""], []
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive() -> dict:
        reads[0] += 1
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def app(scope, receive, send) -> None:
        while True:
            message = await receive()
            seen[0] += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers, "query_string": b""}
    limits = RequestLimits(app, settings=lambda: settings, json_routes=frozenset({"/classify"}))
    asyncio.run(limits(scope, receive, send))
    return sent, reads[0], seen[0]


def test_a_declared_length_within_the_limit_passes_unread():
    sent, reads, seen = _run([(b"content-length", b"5")], [b"hello"])
    assert sent[0]["status"] == 200 and seen == b"hello" and reads == 1  # read once: by the app, not by us


def test_a_declared_length_over_the_limit_is_refused_before_reading():
    sent, reads, _ = _run([(b"content-length", b"101")], [b"x" * 101])
    assert sent[0]["status"] == 413 and reads == 0


def test_a_streamed_body_is_counted_and_refused_once_over():
    sent, reads, _ = _run([], [b"x" * 60, b"x" * 60, b"x" * 60])
    assert sent[0]["status"] == 413 and reads == 2  # stopped at the chunk that passed the limit
    sent, _, seen = _run([], [b"x" * 50, b"y" * 50])
    assert sent[0]["status"] == 200 and seen == b"x" * 50 + b"y" * 50  # replayed whole to the app


def test_forms_on_json_routes_and_classify_items_over_one_batch_are_refused():
    form = [(b"content-type", b"multipart/form-data; boundary=x")]
    assert _run(form, [b""], path="/classify")[0][0]["status"] == 415
    assert _run(form, [b""], path="/predict")[0][0]["status"] == 200  # an image route reads forms
    item = b'{"model": "m", "input": [' + b",".join([b"[" + b",".join([b"0"] * 28) + b"]"] * 28) + b"]}"
    body = b'{"items": [' + b",".join([item] * 3) + b"]}"
    declared = [(b"content-length", str(len(body)).encode())]
    roomy = Settings(max_body_bytes=10**6, max_batch_size=2)
    sent, _, _ = _run(declared, [body], path="/classify", settings=roomy)
    assert sent[0]["status"] == 413  # three items, one batch holds two
    two = b'{"items": [' + b",".join([item] * 2) + b"]}"
    sent, _, seen = _run([(b"content-length", str(len(two)).encode())], [two], path="/classify", settings=roomy)
    assert sent[0]["status"] == 200 and seen == two
