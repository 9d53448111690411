"""Shared by the serving benchmarks: servers on loopback, CPU pinning, the load driver, process RSS, reports.

`python benchmarks/harness.py drive` (a JSON `Load` on stdin, a JSON result on stdout) is the load generator
that serving.py and soak.py start in a process of its own, pinned away from the servers where it can be.
Every request loop here is bounded twice: by a request count and by a deadline.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a file: benchmarks/ heads sys.path and its serving.py would shadow `serving`
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "benchmarks"]
    sys.path.insert(0, str(REPO))

import asyncio  # noqa: E402
import base64  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shlex  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from importlib import metadata  # noqa: E402

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from mnistserve.contracts import atomic_write_bytes, atomic_write_json  # noqa: E402

try:
    import psutil
except ImportError:  # the /proc fallback below covers Linux
    psutil = None

PACKAGES = ("bentoml", "onnxruntime", "onnxruntime-gpu", "numpy", "pillow", "httpx", "uvicorn", "starlette",
            "pydantic", "hypothesis", "schemathesis", "psutil")


# -- machine, versions, command ------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_revision() -> str:
    """`git rev-parse --short HEAD`, with '-dirty' when tracked files differ from it."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def environment(pinning: dict[str, list[int]] | None = None) -> dict:
    """Device, versions, git revision, load and the exact command, for every report."""
    versions = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "device": {"cpu": cpu_model(), "cores": os.cpu_count(), "memory_gib": round(memory_gib, 1),
                   "machine": platform.machine(), "load_average_at_start": [round(v, 2) for v in os.getloadavg()]},
        "pinning": pinning or "none",
        "versions": versions,
        "git_revision": git_revision(),
        "command": "cd " + str(REPO) + " && PYTHONPATH=. BENTOML_DO_NOT_TRACK=true .venv/bin/python "
                   + shlex.join([os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def split_cpus(pin: bool) -> dict[str, list[int]] | None:
    """Servers on the first half of the usable CPUs, the load generator on the rest (None: no pinning)."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return None
    half = len(cpus) // 2
    return {"servers": cpus[:half], "load_generator": cpus[half:]}


def write_report(out_dir: Path, stem: str, data: dict, markdown: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / f"{stem}.json", data)
    atomic_write_bytes(out_dir / f"{stem}.md", markdown.encode())
    print(f"wrote {out_dir / stem}.json and .md")


def require_manifest(exported: Path) -> Path:
    exported = exported.resolve()
    if not (exported / "manifest.json").is_file():
        raise SystemExit(
            f"{exported}/manifest.json not found. Export models first (`mnistserve export --out {exported}`), or "
            "for a quick try: mnistserve train --model cnn --profile smoke --runs-dir /tmp/x/runs && "
            "mnistserve export --runs-dir /tmp/x/runs --out /tmp/x/exported, then --exported /tmp/x/exported")
    return exported


def default_model(exported: Path) -> str:
    return json.loads((exported / "manifest.json").read_text())["default"]


# -- servers -------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    """Descendants of `pid` by scanning /proc (the fallback when psutil is missing)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def tree_pids(pid: int) -> list[int]:
    if psutil is not None:
        try:
            return [pid] + [c.pid for c in psutil.Process(pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
    return [pid] + _children(pid) if Path(f"/proc/{pid}").exists() else []


def rss_mb(pid: int) -> float:
    """Resident set size of one process in MB (0 when it is gone)."""
    if psutil is not None:
        try:
            return psutil.Process(pid).memory_info().rss / 2**20
        except psutil.Error:
            return 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def tree_rss(pid: int) -> dict:
    """{'total_mb': ..., 'processes': {pid: mb}} over `pid` and all its descendants."""
    per = {p: round(rss_mb(p), 2) for p in tree_pids(pid)}
    return {"total_mb": round(sum(per.values()), 2), "processes": {str(p): v for p, v in per.items()}}


def machine_busy_seconds() -> float:
    """CPU-seconds all CPUs spent not idle since boot (/proc/stat), to see what else ran meanwhile."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # guest time is already inside user


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in tree_pids(pid):
        try:
            if psutil is not None:
                t = psutil.Process(p).cpu_times()
                total += t.user + t.system
            else:
                fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except Exception:  # a process that ended between the listing and the read
            continue
    return total


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # the server and its workers share one process group
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


def _pin(cpus: list[int] | None):
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)  # before exec, so every thread and child inherits it


def launch(name: str, argv: list[str], *, env: dict[str, str], log: Path, cpus: list[int] | None, url: str,
           ready: str = "/readyz", timeout: float = 120.0) -> Server:
    """Start a server process (own process group, optionally pinned) and wait until `ready` answers 200."""
    log.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(argv, cwd=REPO, env={**os.environ, **env}, stdout=log.open("wb"),
                               stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_pin(cpus))
    server = Server(name, url, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(url + ready, timeout=2.0).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    server.stop()
    raise RuntimeError(f"{name} was not ready after {timeout:.0f}s:\n{server.log_tail()}")


def start_bentoml(exported: Path, workdir: Path, *, cpus: list[int] | None, env: dict[str, str] | None = None,
                  name: str = "bentoml", timeout: float = 120.0) -> Server:
    """`bentoml serve serving.service:MNISTService` on a free loopback port."""
    port = free_port()
    home = workdir / f"{name}-home"
    home.mkdir(parents=True, exist_ok=True)
    full_env = {"MNISTSERVE_EXPORTED": str(exported), "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true",
                "PYTHONPATH": str(REPO), **(env or {})}
    argv = [sys.executable, "-m", "bentoml", "serve", "serving.service:MNISTService", "--host", "127.0.0.1",
            "--port", str(port)]
    return launch(name, argv, env=full_env, log=workdir / f"{name}.log", cpus=cpus,
                  url=f"http://127.0.0.1:{port}", timeout=timeout)


def start_reference(exported: Path, workdir: Path, *, cpus: list[int] | None, threads: int) -> Server:
    """benchmarks/reference_server.py (Starlette + uvicorn, no BentoML) on a free loopback port."""
    port = free_port()
    argv = [sys.executable, str(REPO / "benchmarks" / "reference_server.py"), "--exported", str(exported),
            "--port", str(port), "--threads", str(threads)]
    return launch("reference", argv, env={"PYTHONPATH": str(REPO)}, log=workdir / "reference.log", cpus=cpus,
                  url=f"http://127.0.0.1:{port}")


def scratch_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


# -- request bodies -------------------------------------------------------------------------------------


def digit_pngs(size: int = 56) -> list[bytes]:
    """Ten PNGs, the digits 0-9 in dark ink on white paper (what a user sends), `size` pixels square."""
    font = ImageFont.load_default(size=int(size * 0.8))
    out = []
    for d in range(10):
        image = Image.new("L", (size, size), 255)
        ImageDraw.Draw(image).text((size // 2, size // 2), str(d), fill=0, font=font, anchor="mm")
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out


@dataclass
class Template:
    """One kind of request the driver sends."""

    path: str
    body: bytes
    content_type: str
    read_batch_size: bool = False  # parse `batch_size` from the JSON answer (adaptive-batching evidence)

    def encode(self) -> dict:
        return {**asdict(self), "body": base64.b64encode(self.body).decode()}

    @classmethod
    def decode(cls, data: dict) -> Template:
        return cls(**{**data, "body": base64.b64decode(data["body"])})


def raw_png_templates(path: str, model: str, *, read_batch_size: bool = False) -> list[Template]:
    """Ten raw `image/png` POSTs to `path?model=...`, one per digit."""
    return [Template(f"{path}?model={model}", png, "image/png", read_batch_size) for png in digit_pngs()]


# -- the load driver (runs in its own process) ----------------------------------------------------------


@dataclass
class Load:
    url: str
    templates: list[dict]  # Template.encode() of each; request i uses templates[i % len(templates)]
    count: int  # measured requests
    concurrency: int
    warmup: int = 0  # requests sent first and not measured
    timeout_s: float = 30.0  # per request
    deadline_s: float = 600.0  # the whole run (warm-up included) stops by itself after this
    watch_pids: list[int] = field(default_factory=list)  # server process trees: CPU use, and RSS samples
    sample_every: int = 0  # measured requests between RSS samples of `watch_pids` (0: none)


def _percentiles(ms: list[float]) -> dict:
    if not ms:
        return {"p50": None, "p90": None, "p99": None, "mean": None, "max": None}
    a = np.asarray(ms)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"p50": round(float(p50), 3), "p90": round(float(p90), 3), "p99": round(float(p99), 3),
            "mean": round(float(a.mean()), 3), "max": round(float(a.max()), 3)}


async def _phase(clients: list[httpx.AsyncClient], templates: list[Template], count: int, deadline: float,
                 on_done=None) -> dict:
    """Send `count` requests from one worker per client; every non-2xx or transport error is a failure."""
    state = {"next": 0, "done": 0}
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    batch_sizes: Counter[int] = Counter()
    examples: list[str] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while state["next"] < count and time.monotonic() < deadline:
            i = state["next"]
            state["next"] += 1
            t = templates[i % len(templates)]
            start = time.perf_counter()
            try:
                r = await client.post(t.path, content=t.body, headers={"content-type": t.content_type})
                key = str(r.status_code)
                if 200 <= r.status_code < 300:
                    latencies.append((time.perf_counter() - start) * 1000)
                    if t.read_batch_size:  # /predict: images in the run that answered; /predict_batch: images sent
                        body = r.json()
                        batch_sizes[int(body.get("batch_size") or len(body.get("predictions", ())))] += 1
                elif len(examples) < 5:
                    examples.append(f"{t.path}: {r.status_code} {r.text[:200]}")
            except httpx.HTTPError as exc:
                key = type(exc).__name__
                if len(examples) < 5:
                    examples.append(f"{t.path}: {key}: {exc}"[:300])
            statuses[key] += 1
            state["done"] += 1
            if on_done is not None:
                on_done(state["done"])

    start = time.perf_counter()
    await asyncio.gather(*(worker(client) for client in clients))
    wall = time.perf_counter() - start
    ok = sum(v for k, v in statuses.items() if k.isdigit() and 200 <= int(k) < 300)
    sent = sum(statuses.values())
    return {
        "sent": sent, "ok": ok, "failed": sent - ok, "wall_s": round(wall, 3),
        "requests_per_second": round(sent / wall, 1) if wall > 0 else None,
        "latency_ms": _percentiles(latencies), "statuses": dict(statuses),
        "stopped_by_deadline": sent < count, "failure_examples": examples,
        "batch_sizes": {str(k): v for k, v in sorted(batch_sizes.items())} or None,
    }


async def drive(load: Load) -> dict:
    """Warm up, then the measured phase; RSS of `watch_pids` trees every `sample_every` requests."""
    templates = [Template.decode(t) for t in load.templates]
    deadline = time.monotonic() + load.deadline_s
    samples: list[dict] = []

    def sample(done: int) -> None:
        samples.append({"requests": done, "t_s": round(time.monotonic() - t0, 2),
                        "rss": {str(p): tree_rss(p) for p in load.watch_pids}})

    def every(done: int) -> None:
        if load.sample_every and done % load.sample_every == 0:
            sample(done)

    async with contextlib.AsyncExitStack() as stack:
        # One client of one connection per worker: a shared pool's bookkeeping grows with its size and made
        # httpx itself the bottleneck at concurrency 32+ (2+ ms of client CPU per request at 64).
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        clients = [await stack.enter_async_context(httpx.AsyncClient(base_url=load.url, timeout=load.timeout_s,
                                                                     limits=one)) for _ in range(load.concurrency)]
        warm = await _phase(clients, templates, load.warmup, deadline) if load.warmup else None
        t0 = time.monotonic()
        if load.sample_every:
            sample(0)
        before = _cpu_now(load.watch_pids)
        result = await _phase(clients, templates, load.count, deadline, on_done=every)
        after = _cpu_now(load.watch_pids)
    wall = result["wall_s"] or float("nan")
    util = {k: round((after[k] - before[k]) / wall, 3) for k in before}
    util["other"] = round(max(util["machine"] - util["servers"] - util["load_generator"], 0.0), 3)
    result["cpu_util"] = util  # CPU-seconds per wall second: 1.0 = one core busy
    result["warmup"] = None if warm is None else {k: warm[k] for k in ("sent", "ok", "failed", "statuses")}
    if load.sample_every:
        result["rss_samples"] = samples
    return result


def _cpu_now(pids: list[int]) -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"servers": sum(tree_cpu_seconds(p) for p in pids), "load_generator": usage.ru_utime + usage.ru_stime,
            "machine": machine_busy_seconds()}


def run_driver(load: Load, cpus: list[int] | None) -> dict:
    """Run the load driver in a process of its own (pinned to `cpus`) and return its result."""
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "drive"], input=json.dumps(asdict(load)),
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          timeout=load.deadline_s + 120, preexec_fn=_pin(cpus))
    if proc.returncode != 0:
        raise RuntimeError(f"the load driver failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def main() -> None:
    if sys.argv[1:] != ["drive"]:
        raise SystemExit("usage: harness.py drive  (a JSON Load on stdin; used by serving.py and soak.py)")
    load = Load(**json.loads(sys.stdin.read()))
    print(json.dumps(asyncio.run(drive(load))))


if __name__ == "__main__":
    main()
