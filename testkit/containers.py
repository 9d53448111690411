"""The service's image in Docker, for tests and benchmarks: one container published on 127.0.0.1 only, waited for
on /readyz, and always removed by its id."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import httpx

from mnistserve import settings

IMAGE = settings.container_image()


def docker() -> str | None:
    """The Docker client: Debian's /usr/bin/docker where present (it has BuildKit), else the first on PATH."""
    return "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else shutil.which("docker")


def docker_cli(*argv: str, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess:
    """`docker ARGV...`, its output captured as text; CalledProcessError on failure when `check`."""
    client = docker()
    if client is None:
        raise RuntimeError("no docker client")
    return subprocess.run([client, *argv], capture_output=True, text=True, timeout=timeout, check=check)


def engine_answers() -> bool:
    """True when a Docker engine answers this client."""
    try:
        return docker() is not None and docker_cli("info", timeout=20, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def inspect_image(image: str = IMAGE) -> dict | None:
    """`docker image inspect` of `image`, or None when it is not here."""
    done = docker_cli("image", "inspect", image, check=False)
    return json.loads(done.stdout)[0] if done.returncode == 0 else None


def image_env(info: dict) -> dict[str, str]:
    """The image's environment variables (ENV), as a dict."""
    return dict(item.split("=", 1) for item in info["Config"].get("Env") or [])


@dataclass
class Container:
    """A running container of the image, reached at `url` (127.0.0.1 and the port Docker chose)."""

    id: str
    url: str
    started: float  # time.monotonic() just before `docker run`

    def client(self, **kwargs) -> httpx.Client:
        """An httpx client with this container as its base URL."""
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 30.0), **kwargs)

    def logs(self) -> str:
        """Everything the container wrote, stdout and stderr."""
        done = docker_cli("logs", self.id, check=False)
        return done.stdout + done.stderr

    def exec(self, *argv: str) -> str:
        """Run a command in the container as its own user; its stdout."""
        return docker_cli("exec", self.id, *argv).stdout

    def running(self) -> bool:
        """True while the container runs."""
        return docker_cli("inspect", "-f", "{{.State.Running}}", self.id, check=False).stdout.strip() == "true"

    def wait_ready(self, timeout: float = 60.0, interval: float = 0.05) -> float:
        """Seconds from `docker run` until /readyz answered 200; TimeoutError (with the log's end) otherwise."""
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/readyz").status_code == 200:
                        return time.monotonic() - self.started
                if not self.running():
                    break
                time.sleep(interval)
        raise TimeoutError(f"{self.url}/readyz not ready within {timeout:.0f} s; log:\n{self.logs()[-3000:]}")


@contextlib.contextmanager
def run(
    image: str = IMAGE,
    *,
    env: Mapping[str, str] | None = None,
    mounts: Sequence[str] = (),
    args: Sequence[str] = (),
    port: int = 3000,
) -> Iterator[Container]:
    """`docker run -d` of `image`, its port published on 127.0.0.1 only; removed (by id) when the block ends.

    `mounts` are `--mount` specifications, e.g. "type=bind,src=/tmp/x,dst=/home/bentoml/bento/src/exported,ro";
    `args` go to `docker run` before the image (e.g. "--tmpfs", "/some/dir")."""
    argv = ["run", "-d", "-p", f"127.0.0.1::{port}"]
    for key, value in (env or {}).items():
        argv += ["-e", f"{key}={value}"]
    for mount in mounts:
        argv += ["--mount", mount]
    started = time.monotonic()
    cid = docker_cli(*argv, *args, image).stdout.strip()
    try:
        host_port = docker_cli("port", cid, f"{port}/tcp").stdout.split()[0].rsplit(":", 1)[1]
        yield Container(cid, f"http://127.0.0.1:{host_port}", started)
    finally:
        docker_cli("rm", "-f", cid, check=False)


def run_once(image: str, *argv: str) -> str:
    """`argv` run in a container of `image` (its first word as the entrypoint), removed after; its stdout."""
    return docker_cli("run", "--rm", "--entrypoint", argv[0], image, *argv[1:]).stdout


def image_text(image: str, path: str) -> str:
    """The text of the file at `path` in `image`."""
    return run_once(image, "cat", path)


def image_sha256(image: str, path: str) -> str:
    """The SHA-256 of the file at `path` in `image`, as its bytes are there."""
    return run_once(image, "sha256sum", path).split()[0]


def copy_from_image(image: str, path: str, dest: str) -> None:
    """Copy `path` out of `image` into `dest` on this machine (a created, never started, container)."""
    cid = docker_cli("create", image).stdout.strip()
    try:
        docker_cli("cp", f"{cid}:{path}", dest)
    finally:
        docker_cli("rm", "-f", cid, check=False)
