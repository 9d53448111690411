"""Every `MNISTSERVE_*` environment variable, in one place: typed and validated groups on pydantic-settings.

`Paths` (where runs, exports and data live), `Settings` (the service's limits, switches and API keys), `Deploy`
(read by the shell scripts, Makefile and stack file under deploy/, and by the container tests and benchmarks) and
`Suite` (the tests' switches). Torch-free: the service imports it. README's configuration table is generated
from these fields (`variables_markdown`) and tests/test_settings.py keeps the two, and every variable any file
names, equal.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import Field, NonNegativeInt, PositiveInt, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

PREFIX = "MNISTSERVE_"
KEY_CHARS = re.compile(r"[A-Za-z0-9._~+/-]+=*")  # RFC 6750's b64token: what fits in `Bearer <key>`
MIN_KEY_CHARS = 16  # shorter keys are guessable
NEW_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
# pydantic's error types in our words, after "MNISTSERVE_<NAME>='value'"; a ValueError of our own is shown as raised.
WORDING = {
    "int_parsing": "is not an integer",
    "int_from_float": "is not an integer",
    "bool_parsing": "is not a switch; use 1 or 0",
    "greater_than": "must be positive",  # only PositiveInt (gt=0) fields
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
}
SECRET_FIELDS = {"api_keys"}  # their values never appear in a message or a repr
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("mnistserve_environ", default=None)


class _Environ(EnvSettingsSource):
    """pydantic-settings' environment source over `from_env`'s mapping (else os.environ); blank values are unset."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        env = _ENVIRON.get()
        env = os.environ if env is None else env
        return {k.lower(): v.strip() for k, v in env.items() if k.startswith(PREFIX) and v.strip()}


class _Group(BaseSettings):
    """A group of MNISTSERVE_* variables, each field MNISTSERVE_<FIELD NAME IN CAPITALS>."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, hide_input_in_errors=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Keyword arguments, then the environment; no .env or secrets folder: one documented way in.
        return init_settings, _Environ(settings_cls)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """The group from `env` (os.environ when None); a malformed value raises ValueError naming its variable."""
        token = _ENVIRON.set(env)
        try:
            return cls()
        except ValidationError as exc:
            raise ValueError("; ".join(_explain(error) for error in exc.errors())) from None
        finally:
            _ENVIRON.reset(token)


def _explain(error: Mapping[str, Any]) -> str:
    """One validation error as `MNISTSERVE_<NAME>='value' <what is wrong>`, or our own validator's message."""
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])
    field = str(error["loc"][0]) if error["loc"] else ""
    name = PREFIX + field.upper()
    if field in SECRET_FIELDS:
        return f"{name} is malformed"
    wording = WORDING.get(error["type"])
    return (
        f"{name}={error['input']!r} {wording.format(**error.get('ctx', {}))}" if wording else f"{name}: {error['msg']}"
    )


def _shown(text: str) -> Any:
    """A field's default as the README shows it, where the value itself would mislead (a path, a machine's home)."""
    return {"shown": text}


class Paths(_Group):
    """Where runs, exported models and MNIST live."""

    home: Path = Field(
        Path("."), description="folder holding `runs/` and `exported/`", json_schema_extra=_shown("current directory")
    )
    exported: Path | None = Field(
        None,
        description="exported models the exporter writes and the service reads",
        json_schema_extra=_shown("`$MNISTSERVE_HOME/exported`"),
    )
    data: Path | None = Field(None, description="a folder with MNIST's IDX files, tried before the cache")
    cache: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "mnistserve",
        description="MNIST copy, torchvision download and the real-world set's cache",
        json_schema_extra=_shown("`~/.cache/mnistserve`"),
    )


class Settings(_Group):
    """The service's limits and switches, read once at start-up; the service refuses to start on a bad value."""

    max_body_bytes: PositiveInt = Field(2 * 1024 * 1024, description="largest request body in bytes; larger -> 413")
    max_pixels: PositiveInt = Field(
        4096 * 4096, description="largest image, width x height, checked before decoding; larger -> 413"
    )
    max_batch_images: PositiveInt = Field(64, description="most images in one /predict_batch request; more -> 413")
    adaptive_batching: bool = Field(
        False,
        description="1: /predict and /predict_all go through the batchable /classify, where BentoML merges "
        "concurrent requests (worth it with a GPU); 0: they run the model directly, 2.7x the requests/s at "
        "concurrency 64 on one CPU core (reports/serving/serving.md)",
    )
    max_batch_size: int = Field(
        32, ge=2, description="adaptive batching: most single-image requests merged into one run (at least 2)"
    )
    max_latency_ms: PositiveInt = Field(
        5000, description="adaptive batching: a queued request older than this is shed with 503"
    )
    timeout_s: PositiveInt = Field(30, description="request timeout, seconds")
    workers: PositiveInt = Field(
        2,
        description="BentoML worker processes, each with every model loaded; 2 measured 1.44-1.45x the requests/s "
        "of 1 on 2 cores at concurrency 8 and 64, unpinned, three rounds "
        "(reports/serving/serving-workers-1.md and -2.md); set 1 per CPU you give it",
    )
    access_log: bool = Field(True, description="0 switches BentoML's access log (one line per request) off")
    json_logs: bool = Field(
        False, description="1: logs as one JSON object a line (access log fields parsed), for a log shipper"
    )
    latency_window: PositiveInt = Field(1000, description="requests kept per model for /latency")
    enable_benchmark: bool = Field(False, description="1 enables POST /latency/benchmark (else it answers 403)")
    benchmark_max_runs: PositiveInt = Field(1000, description="most timed runs one benchmark request may ask for")
    ort_threads: NonNegativeInt = Field(
        0, description="onnxruntime intra-op threads per session; 0 = onnxruntime's choice"
    )
    gc_young: NonNegativeInt = Field(
        20000,
        description="allocations between collections of Python's youngest generation (Python's own: 700), with the "
        "objects built at start-up frozen out of collection: a shorter tail under load (reports/serving/gc.md); "
        "0 leaves Python's collector as it is",
    )
    api_keys: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        repr=False,
        description="comma-separated API keys: when set, every POST route needs "
        '`Authorization: Bearer <key>` (else 401); README, "Authentication"',
    )
    api_keys_file: Path | None = Field(
        None,
        description="a file of API keys (a mounted secret), one per line, blank lines "
        "and # comments skipped; instead of MNISTSERVE_API_KEYS",
    )
    auth_get: bool = Field(
        False,
        description="1: with API keys set, the GET data routes (/models, /comparison, /latency, /plots) need a key "
        "too; /ui, Swagger (/, /docs.json), /livez, /readyz and /metrics stay open",
    )

    @model_validator(mode="before")
    @classmethod
    def _keys_from_file(cls, data: Any) -> Any:
        """MNISTSERVE_API_KEYS_FILE's keys into `api_keys`; errors name the variable and the line, never a key."""
        path = data.get("api_keys_file") if isinstance(data, dict) else None
        if not path:
            return data
        if data.get("api_keys"):
            raise ValueError("set MNISTSERVE_API_KEYS or MNISTSERVE_API_KEYS_FILE, not both")
        name = f"MNISTSERVE_API_KEYS_FILE={str(path)!r}"
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"{name} cannot be read: {exc.strerror or type(exc).__name__}") from None
        except UnicodeDecodeError:
            raise ValueError(f"{name} is not UTF-8 text") from None
        lines = (line.strip() for line in text.splitlines())
        entries = [(f"line {n}", line) for n, line in enumerate(lines, 1) if line and not line.startswith("#")]
        return {**data, "api_keys": _usable_keys(name, entries)}

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, raw: Any) -> Any:
        """MNISTSERVE_API_KEYS: comma-separated, spaces around a key ignored."""
        if not isinstance(raw, str):
            return raw
        entries = [(f"key {n}", part.strip()) for n, part in enumerate(raw.split(","), 1) if part.strip()]
        return _usable_keys("MNISTSERVE_API_KEYS", entries)

    @model_validator(mode="after")
    def _keys_for_get(self) -> Self:
        # Fail closed: asking for the GET routes' protection without a key would leave them open.
        if self.auth_get and not self.api_keys:
            raise ValueError("MNISTSERVE_AUTH_GET=1 needs keys in MNISTSERVE_API_KEYS or MNISTSERVE_API_KEYS_FILE")
        return self


def _usable_keys(name: str, entries: list[tuple[str, str]]) -> tuple[str, ...]:
    """The keys, duplicates dropped in order; ValueError naming `name` and the entry when one is unusable."""
    if not entries:
        raise ValueError(f"{name} holds no key (one per line; blank lines and # comments are skipped)")
    for where, key in entries:
        if not KEY_CHARS.fullmatch(key) or len(key) < MIN_KEY_CHARS:
            raise ValueError(
                f"{name}: {where} is not a usable key: it needs at least {MIN_KEY_CHARS} characters "
                f"from A-Z a-z 0-9 - . _ ~ + / (and = at the end); make one with {NEW_KEY}"
            )
    return tuple(dict.fromkeys(key for _, key in entries))


class Deploy(_Group):
    """The image and the swarm stack: read by deploy/ (shell, Makefile, stack file) with these same defaults."""

    image: str = Field(
        "mnistserve:latest",
        description="the image `make container` builds and the container tests, benchmarks and swarm stack run",
    )
    base_image: str = Field(
        "auto",
        description="`make container`'s base: auto (python:3.11-slim where a registry answers, "
        "else local Debian bases built once, one to build on and a smaller one to run on), local, or an image name",
    )
    ca_bundle: Path = Field(
        Path("/etc/ssl/certs/ca-certificates.crt"),
        description="`make container`: CA certificates the image build trusts (a BuildKit secret), so that pip "
        "works behind a proxy that re-signs HTTPS; skipped when the file is missing or empty",
    )
    replicas: PositiveInt = Field(2, description="the swarm stack's model replicas (deploy/swarm/stack.yml)")
    lb_port: int = Field(38080, ge=1, le=65535, description="the swarm stack's HAProxy port on the host")
    lb_image: str = Field(
        "mnistserve-lb:latest",
        description="the swarm stack's HAProxy image, built from deploy/swarm/Dockerfile.lb by `make deploy-bench`",
    )


class Suite(_Group):
    """The test suite's switches: CI turns a skip into a failure where a skipped test would prove nothing."""

    require_browser: bool = Field(
        False, description="tests: 1 makes the browser test fail, not skip, without Chromium (CI sets it)"
    )
    require_container: bool = Field(
        False,
        description="tests: 1 makes the container tests fail, not skip, without Docker "
        "or the image (`make test-container` sets it)",
    )


GROUPS: tuple[type[_Group], ...] = (Paths, Settings, Deploy, Suite)


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, default as written, and what it does."""

    name: str
    default: str
    help: str


def _default_text(field: Any) -> str:
    """A default as the README's table writes it: switches as 1/0, no value as "unset"."""
    extra = field.json_schema_extra or {}
    if "shown" in extra:
        return extra["shown"]
    value = field.get_default(call_default_factory=True)
    if value is None or value == ():
        return "unset"
    if isinstance(value, Path):
        return f"`{value}`"
    return str(int(value)) if isinstance(value, bool) else str(value)


VARIABLES = tuple(
    Variable(PREFIX + name.upper(), _default_text(field), field.description or "")
    for group in GROUPS
    for name, field in group.model_fields.items()
)


def home() -> Path:
    """Folder holding `exported/` and `runs/`: $MNISTSERVE_HOME, else the current directory."""
    return Paths.from_env().home.resolve()


def runs_dir() -> Path:
    """Where training writes its runs."""
    return home() / "runs"


def exported_dir() -> Path:
    """Where the exporter writes and the service reads."""
    paths = Paths.from_env()
    return paths.exported.resolve() if paths.exported else paths.home.resolve() / "exported"


def cache_dir() -> Path:
    """MNIST's cached copy, torchvision's downloads and the real-world set's cache."""
    return Paths.from_env().cache


def data_dir() -> Path | None:
    """A folder of MNIST IDX files named by $MNISTSERVE_DATA, tried before the cache; None when unset."""
    return Paths.from_env().data


def container_image() -> str:
    """The image `make container` builds and the container tests and benchmarks run: $MNISTSERVE_IMAGE."""
    return Deploy.from_env().image


def variables_markdown() -> str:
    """The README's configuration table."""
    rows = [f"| `{v.name}` | {v.default} | {v.help} |" for v in VARIABLES]
    return "\n".join(["| variable | default | what it does |", "|---|---|---|", *rows])
