"""TorchServe on an exported model: the archive (.mar) made in a scratch directory, one worker, pinned like the rest.

Everything TorchServe writes (archive, config, logs, its pid file, the worker's socket) stays under `work`;
`stop_torchserve` ends the CLI, the JVM and the Python worker together (one process group) and waits for all three.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from string import Template

import httpx

from mnistserve.contracts import atomic_write_json, read_json
from testkit.servers import REPO, Server, free_port, launch

HERE = Path(__file__).resolve().parent
INSTALL = (
    "pip install -e '.[bench]' (torchserve, torch-model-archiver) and a Java runtime "
    "(apt-get install -y default-jre-headless)"
)


def tool(name: str) -> str:
    """A console script of this virtualenv (torchserve, torch-model-archiver), or SystemExit saying how to get it."""
    path = Path(sys.executable).parent / name
    if not path.is_file():
        raise SystemExit(f"{name} is not installed in {path.parent}: {INSTALL}")
    return str(path)


def java_version() -> str | None:
    """The first line of `java -version`, or None when no Java runtime is on PATH."""
    java = shutil.which("java")
    if java is None:
        return None
    proc = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    lines = (proc.stderr or proc.stdout).splitlines()
    return lines[0].strip() if lines else "unknown"


def one_model_export(exported: Path, model: str, out: Path) -> Path:
    """A copy of `exported` holding only `model`: its ONNX file and a manifest naming just it (and no comparison)."""
    manifest = read_json(exported / "manifest.json")
    if model not in manifest["models"]:
        raise SystemExit(
            f"model {model!r} is not in {exported}/manifest.json; choose one of {sorted(manifest['models'])}"
        )
    entry = manifest["models"][model]
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(exported / entry["file"], out / entry["file"])
    trimmed = {k: v for k, v in manifest.items() if k not in ("comparison", "plots")}
    atomic_write_json(out / "manifest.json", {**trimmed, "models": {model: entry}, "default": model})
    return out / entry["file"]


def make_archive(exported: Path, model: str, work: Path) -> Path:
    """`<model>.mar` in `work/model-store`: the ONNX file, the one-model manifest, the handler, model-config.yaml."""
    onnx = one_model_export(exported, model, work / "export")
    store = work / "model-store"
    store.mkdir(parents=True, exist_ok=True)
    argv = [
        tool("torch-model-archiver"),
        "--model-name",
        model,
        "--version",
        "1.0",
        "--serialized-file",
        str(onnx),
        "--handler",
        str(HERE / "handler.py"),
        "--extra-files",
        str(work / "export" / "manifest.json"),
        "--config-file",
        str(HERE / "model-config.yaml"),
        "--export-path",
        str(store),
        "--force",
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"torch-model-archiver failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return store / f"{model}.mar"


def write_config(work: Path, store: Path, port: int, management_port: int, queue: int) -> Path:
    """config.properties from the template: loopback addresses on free ports, the settings it explains."""
    text = Template((HERE / "config.properties").read_text()).substitute(
        inference_port=port,
        management_port=management_port,
        metrics_port=free_port(),
        grpc_inference_port=free_port(),
        grpc_management_port=free_port(),
        model_store=store,
        job_queue_size=queue,
    )
    path = work / "config.properties"
    path.write_text(text)
    return path


def wait_for_workers(server: Server, management_url: str, model: str, timeout: float) -> None:
    """Wait until every worker of `model` is READY: /ping answers 200 before the Python worker has loaded it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"torchserve exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            workers = httpx.get(f"{management_url}/models/{model}", timeout=5).json()[0]["workers"]
            if workers and all(w["status"] == "READY" for w in workers):
                return
        except (httpx.HTTPError, ValueError, KeyError, IndexError):
            pass  # not answering yet, or no worker listed yet
        time.sleep(0.25)
    stop_torchserve(server)
    raise RuntimeError(f"torchserve's worker for {model} was not READY after {timeout:.0f}s:\n{server.log_tail()}")


def start_torchserve(
    exported: Path,
    model: str,
    work: Path,
    *,
    cpus: list[int] | None,
    threads: int,
    queue: int = 1024,
    timeout: float = 180.0,
) -> Server:
    """`torchserve --foreground` serving `model` of `exported` on a loopback port, returned once its worker is READY."""
    if java_version() is None:
        raise SystemExit(f"no Java runtime on PATH: TorchServe's frontend needs one; {INSTALL}")
    work.mkdir(parents=True, exist_ok=True)
    mar = make_archive(exported, model, work)
    port, management_port = free_port(), free_port()
    config = write_config(work, mar.parent, port, management_port, queue)
    tmp, logs = work / "tmp", work / "logs"
    tmp.mkdir(exist_ok=True)
    # TEMP and TMPDIR: TorchServe's pid file and the worker's Unix socket (fixed names) go here, so two runs on one
    # machine cannot collide; PYTHONPATH: the handler imports serving/ and benchmarks/ from this checkout.
    env = {
        "TEMP": str(tmp),
        "TMPDIR": str(tmp),
        "LOG_LOCATION": str(logs),
        "METRICS_LOCATION": str(logs),
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
        "MNISTSERVE_ORT_THREADS": str(threads),
    }
    argv = [
        tool("torchserve"),
        "--foreground",
        "--ts-config",
        str(config),
        "--model-store",
        str(mar.parent),
        "--models",
        f"{model}={mar.name}",
        "--no-config-snapshots",
        "--disable-token-auth",
        "--log-config",
        str(HERE / "log4j2.xml"),
    ]
    server = launch(
        "torchserve",
        argv,
        env=env,
        log=work / "torchserve.log",
        url=f"http://127.0.0.1:{port}",
        cpus=cpus,
        ready="/ping",
        timeout=timeout,
    )
    wait_for_workers(server, f"http://127.0.0.1:{management_port}", model, timeout)
    return server


def stop_torchserve(server: Server, timeout: float = 30.0) -> None:
    """Stop the CLI and wait until the JVM and the worker (same process group) are gone too: SIGKILL if they linger."""
    server.stop()
    deadline = time.monotonic() + timeout
    while _group_alive(server.process.pid):
        if time.monotonic() > deadline:
            os.killpg(server.process.pid, signal.SIGKILL)
            time.sleep(0.5)
            break
        time.sleep(0.2)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)  # signal 0: only asks whether any process of the group exists
        return True
    except ProcessLookupError:
        return False
