"""Every `MNISTSERVE_*` environment variable, in one place: the paths, and the service's limits and switches.

Torch-free (the service imports it). `VARIABLES` is the one list; README's configuration table is
checked against it by tests/test_settings.py, so a variable cannot be added without being documented.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

PREFIX = "MNISTSERVE_"
SWITCH_ON, SWITCH_OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
KEY_CHARS = re.compile(r"[A-Za-z0-9._~+/-]+=*")  # RFC 6750's b64token: what fits in `Bearer <key>`
MIN_KEY_CHARS = 16  # shorter keys are guessable
NEW_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, default as written, and what it does."""

    name: str
    default: str
    help: str


PATH_VARIABLES = (
    Variable("MNISTSERVE_HOME", "current directory", "folder holding `runs/` and `exported/`"),
    Variable(
        "MNISTSERVE_EXPORTED",
        "`$MNISTSERVE_HOME/exported`",
        "exported models the exporter writes and the service reads",
    ),
    Variable("MNISTSERVE_DATA", "unset", "a folder with MNIST's IDX files, tried before the cache"),
    Variable(
        "MNISTSERVE_CACHE", "`~/.cache/mnistserve`", "MNIST copy, torchvision download and the real-world set's cache"
    ),
)


@dataclass(frozen=True)
class Settings:
    """The service's limits and switches; each field is MNISTSERVE_<FIELD NAME IN CAPITALS>."""

    max_body_bytes: int = 2 * 1024 * 1024  # whole request body
    max_pixels: int = 4096 * 4096  # decompression-bomb guard, checked on the header
    max_batch_images: int = 64  # images in one /predict_batch request
    adaptive_batching: bool = False  # /predict through the batchable /classify (else directly)
    max_batch_size: int = 32  # adaptive batching cap (BentoML requires > 1)
    max_latency_ms: int = 5000  # adaptive batching latency budget
    timeout_s: int = 30  # BentoML traffic timeout
    # 2 on 2 cores: 161-176 req/s against 93-100 with 1 (reports/serving/serving-workers-*.md), +~170 MB RSS.
    workers: int = 2  # BentoML worker processes (each loads every model)
    access_log: bool = True  # BentoML's per-request log line
    json_logs: bool = False  # one JSON object a line (serving.logs), BentoML's access log included
    latency_window: int = 1000  # rolling window of /latency
    enable_benchmark: bool = False  # POST /latency/benchmark
    benchmark_max_runs: int = 1000
    ort_threads: int = 0  # 0 = onnxruntime default
    auth_get: bool = False  # with API keys: the GET data routes need a key too, not only the POST routes
    api_keys: tuple[str, ...] = field(default=(), repr=False)  # from MNISTSERVE_API_KEYS(_FILE); never printed

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from MNISTSERVE_* variables; a malformed value raises ValueError naming it."""
        env = os.environ if env is None else env
        values: dict[str, object] = {"api_keys": api_keys(env)}
        for f in fields(cls):
            if f.name == "api_keys":
                continue
            key = PREFIX + f.name.upper()
            raw = (env.get(key) or "").strip()
            if raw:
                values[f.name] = (
                    _switch(key, raw) if f.type == "bool" else _count(key, raw, zero=f.name == "ort_threads")
                )
        settings = cls(**values)
        if settings.max_batch_size < 2:
            raise ValueError("MNISTSERVE_MAX_BATCH_SIZE must be at least 2 (BentoML's adaptive batching needs it)")
        if settings.auth_get and not settings.api_keys:  # fail closed: asking for protection without a key
            raise ValueError("MNISTSERVE_AUTH_GET=1 needs keys in MNISTSERVE_API_KEYS or MNISTSERVE_API_KEYS_FILE")
        return settings


def api_keys(env: Mapping[str, str]) -> tuple[str, ...]:
    """The bearer keys: MNISTSERVE_API_KEYS (comma-separated) or the file MNISTSERVE_API_KEYS_FILE (one per
    line, blank lines and # comments skipped); () when neither is set. Errors name the variable, never a key."""
    inline = (env.get("MNISTSERVE_API_KEYS") or "").strip()
    path = (env.get("MNISTSERVE_API_KEYS_FILE") or "").strip()
    if inline and path:
        raise ValueError("set MNISTSERVE_API_KEYS or MNISTSERVE_API_KEYS_FILE, not both")
    if path:
        name = f"MNISTSERVE_API_KEYS_FILE={path!r}"
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"{name} cannot be read: {exc.strerror or type(exc).__name__}") from None
        except UnicodeDecodeError:
            raise ValueError(f"{name} is not UTF-8 text") from None
        lines = (line.strip() for line in text.splitlines())
        entries = [(f"line {n}", line) for n, line in enumerate(lines, 1) if line and not line.startswith("#")]
    elif inline:
        name = "MNISTSERVE_API_KEYS"
        entries = [(f"key {n}", part.strip()) for n, part in enumerate(inline.split(","), 1) if part.strip()]
    else:
        return ()
    if not entries:
        raise ValueError(f"{name} holds no key (one per line; blank lines and # comments are skipped)")
    for where, key in entries:
        if not KEY_CHARS.fullmatch(key) or len(key) < MIN_KEY_CHARS:
            raise ValueError(
                f"{name}: {where} is not a usable key: it needs at least {MIN_KEY_CHARS} characters "
                f"from A-Z a-z 0-9 - . _ ~ + / (and = at the end); make one with {NEW_KEY}"
            )
    return tuple(dict.fromkeys(key for _, key in entries))  # duplicates dropped, order kept


SERVICE_HELP = {
    "max_body_bytes": "largest request body in bytes; larger -> 413",
    "max_pixels": "largest image, width x height, checked before decoding; larger -> 413",
    "max_batch_images": "most images in one /predict_batch request; more -> 413",
    "adaptive_batching": "1: /predict and /predict_all go through the batchable /classify, where BentoML merges "
    "concurrent requests (worth it with a GPU); 0: they run the model directly, ~3x the "
    "throughput on a CPU (reports/serving/)",
    "max_batch_size": "adaptive batching: most single-image requests merged into one run (at least 2)",
    "max_latency_ms": "adaptive batching: a queued request older than this is shed with 503",
    "timeout_s": "request timeout, seconds",
    "workers": "BentoML worker processes, each with every model loaded (~170 MB each); 2 measured 1.6-1.9x the "
    "requests/s of 1 on 2 cores (reports/serving/serving-workers-1.md and -2.md); set 1 per CPU you give it",
    "access_log": "0 switches BentoML's access log (one line per request) off",
    "json_logs": "1: logs as one JSON object a line (access log fields parsed), for a log shipper",
    "latency_window": "requests kept per model for /latency",
    "enable_benchmark": "1 enables POST /latency/benchmark (else it answers 403)",
    "benchmark_max_runs": "most timed runs one benchmark request may ask for",
    "ort_threads": "onnxruntime intra-op threads per session; 0 = onnxruntime's choice",
    "auth_get": "1: with API keys set, the GET data routes (/models, /comparison, /latency, /plots) need a key "
    "too; /ui, Swagger (/, /docs.json), /livez, /readyz and /metrics stay open",
}
SERVICE_VARIABLES = tuple(
    Variable(PREFIX + f.name.upper(), str(int(f.default)) if f.type == "bool" else str(f.default), SERVICE_HELP[f.name])
    for f in fields(Settings)
    if f.name not in ("auth_get", "api_keys")
)
AUTH_VARIABLES = (
    Variable(
        "MNISTSERVE_API_KEYS",
        "unset",
        "comma-separated API keys: when set, every POST route needs "
        '`Authorization: Bearer <key>` (else 401); README, "Authentication"',
    ),
    Variable(
        "MNISTSERVE_API_KEYS_FILE",
        "unset",
        "a file of API keys (a mounted secret), one per line, blank lines "
        "and # comments skipped; instead of MNISTSERVE_API_KEYS",
    ),
    Variable("MNISTSERVE_AUTH_GET", "0", SERVICE_HELP["auth_get"]),
)
DEPLOY_VARIABLES = (
    Variable(
        "MNISTSERVE_IMAGE",
        "mnistserve:latest",
        "the image `make container` builds and the container tests, benchmarks and swarm stack run",
    ),
    Variable(
        "MNISTSERVE_BASE_IMAGE",
        "auto",
        "`make container`'s base: auto (python:3.11-slim where a registry answers, "
        "else a local Debian base built once), local, or an image name",
    ),
    Variable("MNISTSERVE_REPLICAS", "2", "the swarm stack's model replicas (deploy/swarm/stack.yml)"),
    Variable("MNISTSERVE_LB_PORT", "38080", "the swarm stack's HAProxy port on the host"),
)
TEST_VARIABLES = (
    Variable(
        "MNISTSERVE_REQUIRE_BROWSER",
        "0",
        "tests: 1 makes the browser test fail, not skip, without Chromium (CI sets it)",
    ),
    Variable(
        "MNISTSERVE_REQUIRE_CONTAINER",
        "0",
        "tests: 1 makes the container tests fail, not skip, without Docker "
        "or the image (`make test-container` sets it)",
    ),
)
VARIABLES = PATH_VARIABLES + SERVICE_VARIABLES + AUTH_VARIABLES + DEPLOY_VARIABLES + TEST_VARIABLES


def home() -> Path:
    """Folder holding `exported/` and `runs/`: $MNISTSERVE_HOME, else the current directory."""
    return Path(os.environ.get("MNISTSERVE_HOME", ".")).resolve()


def runs_dir() -> Path:
    """Where training writes its runs."""
    return home() / "runs"


def exported_dir() -> Path:
    """Where the exporter writes and the service reads."""
    env = os.environ.get("MNISTSERVE_EXPORTED")
    return Path(env).resolve() if env else home() / "exported"


def cache_dir() -> Path:
    """MNIST's cached copy, torchvision's downloads and the real-world set's cache."""
    return Path(os.environ.get("MNISTSERVE_CACHE", Path.home() / ".cache" / "mnistserve"))


def data_dir() -> Path | None:
    """A folder of MNIST IDX files named by $MNISTSERVE_DATA, tried before the cache; None when unset."""
    env = os.environ.get("MNISTSERVE_DATA")
    return Path(env) if env else None


def container_image() -> str:
    """The image `make container` builds and the container tests and benchmarks run: $MNISTSERVE_IMAGE."""
    return os.environ.get("MNISTSERVE_IMAGE") or "mnistserve:latest"


def variables_markdown() -> str:
    """The README's configuration table."""
    rows = [f"| `{v.name}` | {v.default} | {v.help} |" for v in VARIABLES]
    return "\n".join(["| variable | default | what it does |", "|---|---|---|", *rows])


def _switch(key: str, raw: str) -> bool:
    if raw.lower() not in SWITCH_ON + SWITCH_OFF:
        raise ValueError(f"{key}={raw!r} is not a switch; use 1 or 0")
    return raw.lower() in SWITCH_ON


def _count(key: str, raw: str, *, zero: bool) -> int:
    try:
        number = int(raw)
    except ValueError:
        raise ValueError(f"{key}={raw!r} is not an integer") from None
    if number < 0 or (number == 0 and not zero):
        raise ValueError(f"{key}={raw!r} must be positive")
    return number
