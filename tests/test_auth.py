"""Optional API keys: the `BearerAuth` middleware on a tiny app, the key settings, and the real service."""

from __future__ import annotations

import asyncio
import hmac
import re

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from mnistserve.settings import Settings
from serving import auth
from serving.auth import AuthPolicy, BearerAuth
from testkit.digits import draw_seven, encode
from testkit.servers import in_process

KEY, OTHER = "k-" + "a" * 30, "k-" + "b" * 30
CHALLENGE = re.compile(r'^Bearer realm="mnistserve"')


async def _echo(request: Request) -> JSONResponse:
    return JSONResponse({"path": request.url.path, "bytes": len(await request.body())})


TINY = Starlette(
    routes=[
        Route(p, _echo, methods=["GET", "POST"])
        for p in (
            "/predict",
            "/classify",
            "/models",
            "/plots/{name}",
            "/livez",
            "/readyz",
            "/metrics",
            "/ui",
            "/ui/{name}",
            "/docs.json",
            "/",
        )
    ]
)


def _client(*keys: str, protect_get: bool = False) -> TestClient:
    policy = AuthPolicy.from_keys(keys, protect_get=protect_get)
    return TestClient(BearerAuth(TINY, policy=lambda: policy))


def _refused(response, error: str | None = None) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert set(body) == {"error", "status"} and body["status"] == 401
    assert CHALLENGE.match(response.headers["www-authenticate"])
    if error:
        assert f'error="{error}"' in response.headers["www-authenticate"]
    assert KEY not in response.text and OTHER not in response.text  # no hint of a valid key


# -- the middleware -------------------------------------------------------------------------------


def test_no_keys_means_everything_is_open():
    http = _client()
    assert http.post("/predict", content=b"x").status_code == 200 and http.get("/models").status_code == 200


def test_a_valid_key_passes_and_any_of_several_keys_works():
    http = _client(KEY, OTHER)
    for key in (KEY, OTHER):
        r = http.post("/predict", content=b"abc", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200 and r.json() == {"path": "/predict", "bytes": 3}
    assert http.post("/classify", headers={"authorization": f"bearer {KEY}"}).status_code == 200  # scheme: any case


@pytest.mark.parametrize(
    "header, error",
    [
        (None, None),
        (f"Bearer {KEY}x", "invalid_token"),
        (f"Bearer {KEY[:-1]}", "invalid_token"),
        ("Bearer " + "z" * len(KEY), "invalid_token"),
        (f"Basic {KEY}", "invalid_request"),
        ("Bearer", "invalid_request"),
        ("Bearer   ", "invalid_request"),
        (KEY, "invalid_request"),
        ("Bearer \u00e9\u00e9\u00e9", "invalid_token"),
    ],
)
def test_a_missing_wrong_or_malformed_header_is_refused(header, error):
    http = _client(KEY)
    headers = {} if header is None else {"Authorization": header.encode("latin-1")}
    _refused(http.post("/predict", content=b"abc", headers=headers), error)


def test_two_authorization_headers_are_refused():
    http = _client(KEY)
    r = http.post("/predict", headers=[("Authorization", f"Bearer {KEY}"), ("Authorization", f"Bearer {KEY}")])
    _refused(r, "invalid_request")


def test_probes_and_pages_stay_open_and_get_needs_a_key_only_by_the_setting():
    for protect_get in (False, True):
        http = _client(KEY, protect_get=protect_get)
        for path in ("/livez", "/readyz", "/metrics", "/ui", "/ui/app.js", "/docs.json", "/"):
            assert http.get(path).status_code == 200, (path, protect_get)
        for path in ("/models", "/plots/confusion_cnn.png"):
            r = http.get(path)
            if protect_get:
                _refused(r)
                assert http.get(path, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
            else:
                assert r.status_code == 200
        _refused(http.post("/livez"))  # only a probe's GET is open
        _refused(http.get("/nowhere") if protect_get else http.post("/nowhere"))  # unknown paths: closed


def test_unauthenticated_requests_are_answered_before_the_body_is_read():
    calls = {"app": 0, "receive": 0}

    async def app(scope, receive, send):
        calls["app"] += 1

    async def receive():
        calls["receive"] += 1
        return {"type": "http.request", "body": b"x" * 10, "more_body": True}

    sent = []

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict",
        "headers": [(b"content-length", b"999999999")],
        "query_string": b"",
    }
    policy = AuthPolicy.from_keys([KEY])
    asyncio.run(BearerAuth(app, policy=lambda: policy)(scope, receive, send))
    assert calls == {"app": 0, "receive": 0}
    assert sent[0]["status"] == 401 and (b"www-authenticate", b'Bearer realm="mnistserve"') in sent[0]["headers"]


def test_every_key_is_compared_in_constant_time(monkeypatch):
    compared, real = [], hmac.compare_digest

    def spy(a, b):
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    policy = AuthPolicy.from_keys(["k" * 16, KEY, "k" * 64])
    assert policy.accepts(KEY.encode())  # a match in the middle: the others are still compared
    assert not policy.accepts(b"short") and not policy.accepts(b"q" * 500)
    assert compared == [(32, 32)] * 9  # fixed-length digests: no key's length shows in the timing
    assert KEY not in repr(policy)


def test_a_websocket_without_a_key_is_closed():
    sent = []

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):
        raise AssertionError("reached the app")

    scope = {"type": "websocket", "path": "/predict", "headers": []}
    policy = AuthPolicy.from_keys([KEY])
    asyncio.run(BearerAuth(app, policy=lambda: policy)(scope, None, send))
    assert sent == [{"type": "websocket.close", "code": 1008}]


# -- the key settings -------------------------------------------------------------------------------


def test_keys_come_from_the_variable_or_the_file(tmp_path):
    assert Settings.from_env({}).api_keys == ()
    assert Settings.from_env({"MNISTSERVE_API_KEYS": f" {KEY} ,{OTHER},{KEY}, "}).api_keys == (KEY, OTHER)
    secret = tmp_path / "keys"
    secret.write_text(f"# rotated 2024-05\n\n  {KEY}  \r\n# old: revoked\n{OTHER}\n")
    settings = Settings.from_env({"MNISTSERVE_API_KEYS_FILE": str(secret), "MNISTSERVE_AUTH_GET": "1"})
    assert settings.api_keys == (KEY, OTHER) and settings.auth_get
    assert KEY not in repr(settings) and KEY not in str(settings)


@pytest.mark.parametrize(
    "env, message",
    [
        (
            {"MNISTSERVE_API_KEYS_FILE": "{missing}"},
            r"MNISTSERVE_API_KEYS_FILE='.*missing' cannot be read: No such file",
        ),
        ({"MNISTSERVE_API_KEYS_FILE": "{dir}"}, r"MNISTSERVE_API_KEYS_FILE='.*' cannot be read"),
        ({"MNISTSERVE_API_KEYS_FILE": "{binary}"}, r"MNISTSERVE_API_KEYS_FILE='.*binary' is not UTF-8 text"),
        ({"MNISTSERVE_API_KEYS_FILE": "{comments}"}, r"MNISTSERVE_API_KEYS_FILE='.*comments' holds no key"),
        ({"MNISTSERVE_API_KEYS_FILE": "{spaced}"}, r"MNISTSERVE_API_KEYS_FILE='.*spaced': line 2 is not a usable key"),
        ({"MNISTSERVE_API_KEYS": "tooshort"}, r"MNISTSERVE_API_KEYS: key 1 is not a usable key: it needs at least 16"),
        ({"MNISTSERVE_API_KEYS": f"{KEY},has space in it ok"}, r"MNISTSERVE_API_KEYS: key 2 is not a usable key"),
        ({"MNISTSERVE_API_KEYS": " , ,"}, r"MNISTSERVE_API_KEYS holds no key"),
        ({"MNISTSERVE_API_KEYS": KEY, "MNISTSERVE_API_KEYS_FILE": "{comments}"}, r"not both"),
        ({"MNISTSERVE_AUTH_GET": "1"}, r"MNISTSERVE_AUTH_GET=1 needs keys"),
        (
            {"MNISTSERVE_API_KEYS": KEY, "MNISTSERVE_AUTH_GET": "perhaps"},
            r"MNISTSERVE_AUTH_GET='perhaps' is not a switch",
        ),
    ],
)
def test_a_bad_key_setting_stops_the_service_naming_the_variable(tmp_path, env, message):
    (tmp_path / "dir").mkdir()
    (tmp_path / "binary").write_bytes(b"\xff\xfe" + KEY.encode())
    (tmp_path / "comments").write_text("# no keys yet\n\n")
    (tmp_path / "spaced").write_text(f"{KEY}\n{OTHER} {KEY}\n")
    env = {
        k: v.format(
            missing=tmp_path / "missing",
            dir=tmp_path / "dir",
            binary=tmp_path / "binary",
            comments=tmp_path / "comments",
            spaced=tmp_path / "spaced",
        )
        for k, v in env.items()
    }
    with pytest.raises(ValueError, match=message) as info:
        Settings.from_env(env)
    assert KEY not in str(info.value) and OTHER not in str(info.value)  # a message never shows a key


# -- the real service ---------------------------------------------------------------------------------


def test_the_service_asks_for_a_key_on_predict_and_leaves_probes_open(exported_dir):
    # Adaptive batching on: the service's own hop to /classify passes the middleware too, with a key.
    env = {
        "MNISTSERVE_API_KEYS": f"{KEY},{OTHER}",
        "MNISTSERVE_AUTH_GET": "1",
        "MNISTSERVE_ADAPTIVE_BATCHING": "1",
        "MNISTSERVE_MAX_BATCH_SIZE": "4",
        "MNISTSERVE_MAX_LATENCY_MS": "20000",
    }
    seven = {"image": ("seven.png", encode(draw_seven()), "image/png")}
    with in_process(exported_dir, env) as http:
        _refused(http.post("/predict", files=seven))
        _refused(http.post("/predict", files=seven, headers={"Authorization": "Bearer " + "x" * 32}), "invalid_token")
        r = http.post("/predict", files=seven, headers={"Authorization": f"Bearer {OTHER}"})
        assert r.status_code == 200 and len(r.json()["probabilities"]) == 10, r.text
        assert http.get("/readyz").status_code == 200 and http.get("/livez").status_code == 200
        _refused(http.get("/models"))
        assert http.get("/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert http.get("/ui").status_code == 200 and "auth" in http.get("/ui").text
        assert http.get("/docs.json").status_code == 200  # the API's description holds no data: open
