"""`BearerAuth`: the ASGI middleware that asks for `Authorization: Bearer <key>` before anything reads a body.

Off unless MNISTSERVE_API_KEYS or MNISTSERVE_API_KEYS_FILE names keys (`mnistserve.settings`). Then:

    every POST (and any method but GET, HEAD and a CORS preflight)   needs a key
    GET /models, /comparison, /latency, /plots, any other GET path   needs a key when MNISTSERVE_AUTH_GET=1
    GET /livez, /healthz, /readyz, /metrics                          always open: probes and scrapers
    GET /ui, /ui/<file>, / (Swagger), /static_content/*, /docs.json,
        /schema.json                                                 always open: pages and API descriptions
                                                                     that hold no data and where a key is typed

A missing or wrong key answers 401 `{"error": ..., "status": 401}` with `WWW-Authenticate: Bearer`. The
middleware keeps only SHA-256 digests of the keys and compares the presented key's digest with every one
of them with `hmac.compare_digest`, without stopping at a match: neither the time taken nor the answer
says which key, how long, or how close. Keys are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from serving.errors import Unauthorized, error_response

PROBES = frozenset({"/livez", "/healthz", "/readyz", "/metrics"})
PAGES = frozenset({"/", "/ui", "/ui/", "/docs.json", "/schema.json"})
PAGE_PREFIXES = ("/ui/", "/static_content/")
READS = frozenset({"GET", "HEAD"})
CHALLENGE = 'Bearer realm="mnistserve"'


@dataclass(frozen=True)
class AuthPolicy:
    """Which requests need a key, and the digests of the valid ones (no keys: everything is open)."""

    digests: tuple[bytes, ...] = field(default=(), repr=False)
    protect_get: bool = False

    @classmethod
    def from_keys(cls, keys: tuple[str, ...] | list[str], *, protect_get: bool = False) -> AuthPolicy:
        """A policy for these keys (as `Settings.api_keys` holds them)."""
        return cls(tuple(_digest(k.encode()) for k in keys), protect_get)

    @property
    def enabled(self) -> bool:
        return bool(self.digests)

    def needs_key(self, method: str, path: str) -> bool:
        """True when a request with this method and path must carry a valid key."""
        if not self.digests:
            return False
        if method.upper() not in READS:
            return True
        if path in PROBES or path in PAGES or path.startswith(PAGE_PREFIXES):
            return False
        return self.protect_get  # fail closed: an unknown GET path is a data route

    def accepts(self, presented: bytes) -> bool:
        """True when `presented` is one of the keys; the same work whichever key (if any) matches."""
        digest = _digest(presented)
        found = False
        for known in self.digests:  # no early exit: every digest is compared
            found |= hmac.compare_digest(digest, known)
        return found

    def check(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Raise Unauthorized unless the headers carry exactly one `Authorization: Bearer <valid key>`."""
        values = [v for k, v in headers if k.lower() == b"authorization"]
        if not values:
            raise Unauthorized("this route needs an API key: send the header `Authorization: Bearer <key>`")
        scheme, _, token = values[0].strip().partition(b" ")
        if len(values) > 1 or scheme.lower() != b"bearer" or not token.strip():
            raise Unauthorized(
                "the Authorization header must be one `Bearer <key>`", challenge=CHALLENGE + ', error="invalid_request"'
            )
        if not self.accepts(token.strip()):
            raise Unauthorized("the API key is not valid", challenge=CHALLENGE + ', error="invalid_token"')


class BearerAuth:
    """ASGI middleware: a 401 for requests that the policy says need a key and that lack a valid one, answered
    before the body is read (add it before `serving.limits.RequestLimits`, so that it runs first)."""

    def __init__(self, app: Any, *, policy: Callable[[], AuthPolicy]) -> None:
        self.app = app
        self.policy = policy  # this worker's policy, read per request (the service is built after the middleware)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        kind = scope["type"]
        policy = self.policy() if kind in ("http", "websocket") else None
        if policy is None or not policy.enabled:
            return await self.app(scope, receive, send)
        method = scope.get("method", "WEBSOCKET")
        if kind == "http" and _is_preflight(method, scope["headers"]):
            return await self.app(scope, receive, send)  # a CORS preflight never carries credentials
        if policy.needs_key(method, scope["path"]):
            try:
                policy.check(scope["headers"])
            except Unauthorized as exc:
                if kind == "websocket":
                    return await send({"type": "websocket.close", "code": 1008})  # policy violation
                return await error_response(exc)(scope, receive, send)
        await self.app(scope, receive, send)


def bearer(key: str) -> str:
    """The Authorization header's value for `key`."""
    return f"Bearer {key}"


def _digest(data: bytes) -> bytes:
    # Fixed-length digests: compare_digest on the raw keys would still reveal the length of the keys.
    return hashlib.sha256(data).digest()


def _is_preflight(method: str, headers: list[tuple[bytes, bytes]]) -> bool:
    return method == "OPTIONS" and any(k.lower() == b"access-control-request-method" for k, _ in headers)
