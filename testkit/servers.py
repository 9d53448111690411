"""The service on loopback (`bentoml serve` in its own process group) or in-process (Starlette's TestClient)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]  # the checkout: `bentoml serve` imports serving/ from here


@dataclass
class Server:
    """A server process on loopback and its log file."""

    name: str
    url: str
    process: subprocess.Popen
    log: Path

    def client(self, **kwargs) -> httpx.Client:
        """An httpx client with this server as its base URL."""
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 30.0), **kwargs)

    def alive(self) -> bool:
        """True while the process has not exited."""
        return self.process.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's log, for an error message."""
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the whole process group (the server and its workers share it), SIGKILL if it lingers."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pin(cpus: list[int] | None) -> Callable[[], None] | None:
    """A `preexec_fn` that pins a child to `cpus` before exec, so every thread and grandchild inherits it."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def launch(
    name: str,
    argv: list[str],
    *,
    env: Mapping[str, str],
    log: Path,
    url: str,
    cpus: list[int] | None = None,
    ready: str = "/readyz",
    timeout: float = 120.0,
    cwd: Path = REPO,
) -> Server:
    """Start a server process (own process group, optionally pinned) and wait until `ready` answers 200."""
    log.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env={**os.environ, **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=pin(cpus),
    )
    server = Server(name, url, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(url + ready, timeout=2.0).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    server.stop()
    raise RuntimeError(f"{name} was not ready after {timeout:.0f}s:\n{server.log_tail()}")


def start_bentoml(
    exported: Path,
    workdir: Path,
    *,
    env: Mapping[str, str] | None = None,
    cpus: list[int] | None = None,
    name: str = "bentoml",
    ready: str = "/readyz",
    timeout: float = 120.0,
    checkout: Path = REPO,
) -> Server:
    """`bentoml serve serving.service:MNISTService` on a free loopback port, its BentoML home under `workdir`;
    `checkout` is the source tree it serves (another revision's, for a side-by-side benchmark)."""
    port = free_port()
    home = workdir / f"{name}-home"
    home.mkdir(parents=True, exist_ok=True)
    full_env = {
        "MNISTSERVE_EXPORTED": str(exported),
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "true",
        **({} if checkout == REPO else {"PYTHONPATH": str(checkout)}),
        **(env or {}),
    }
    argv = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "serving.service:MNISTService",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    return launch(
        name,
        argv,
        env=full_env,
        log=workdir / f"{name}.log",
        url=f"http://127.0.0.1:{port}",
        cpus=cpus,
        ready=ready,
        timeout=timeout,
        cwd=checkout,
    )


@contextlib.contextmanager
def in_process(exported: Path, env: Mapping[str, str] | None = None) -> Iterator[httpx.Client]:
    """The service's own ASGI app (`MNISTService.to_asgi()`, lifespan included) behind Starlette's TestClient.

    The service reads its settings when BentoML constructs it, in the app's lifespan: `env` is in force while it
    starts (the five settings of `serving.service.DEFINITION_FIELDS` keep the values they had at import). No
    socket, no worker process: what a real server adds (readiness polling, /metrics, process behaviour) needs
    `start_bentoml`. One app at a time: BentoML keeps the current service in a global. BentoML's HTTP metrics are
    off here (its configuration, BENTOML_CONFIG_OPTIONS): each app would register them in the one registry again.
    """
    from starlette.testclient import TestClient

    from serving.service import MNISTService

    saved = dict(os.environ)
    os.environ.update(
        {
            "MNISTSERVE_EXPORTED": str(exported),
            "BENTOML_CONFIG_OPTIONS": f"services.{MNISTService.name}.metrics.enabled=false",
            "MNISTSERVE_GC_YOUNG": "0",  # the test process's collector stays Python's: no freeze per app
            **(env or {}),
        }
    )
    try:
        client = TestClient(MNISTService.to_asgi())
        client.__enter__()  # the lifespan: BentoML constructs the service (settings, ModelStore) here
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        yield client
    finally:
        client.__exit__(None, None, None)
