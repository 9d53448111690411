"""Shared by the serving benchmarks: CPU split, the load driver, the reference server, report metadata.

Servers, ports, process-tree RSS/CPU and digit images come from `testkit`, which the tests share.
`python -m benchmarks.harness drive` (a JSON `Load` on stdin, a JSON result on stdout) is the load generator
that throughput.py, soak.py and floor.py start in a process of its own, pinned away from the servers where it can be.
Every request loop here is bounded twice: by a request count and by a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np

from mnistserve.contracts import atomic_write_bytes, atomic_write_json, read_json, sha256_file
from mnistserve.provenance import git_revision, versions
from testkit import containers
from testkit.digits import digit_pngs
from testkit.processes import machine_busy_seconds, tree_cpu_seconds, tree_rss
from testkit.servers import REPO, Server, free_port, launch, pin

PACKAGES = (
    "bentoml",
    "onnxruntime",
    "onnxruntime-gpu",
    "numpy",
    "pillow",
    "httpx",
    "uvicorn",
    "starlette",
    "pydantic",
    "hypothesis",
    "schemathesis",
    "psutil",
)


# -- machine, versions, command ------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measured(exported: Path) -> dict:
    """Which export a report measured: its run, the manifest's checksum and every model file's SHA-256."""
    manifest_path = exported / "manifest.json"
    manifest = read_json(manifest_path)
    return {
        "exported": os.path.relpath(exported, REPO) if exported.is_relative_to(REPO) else str(exported),
        "run_id": manifest.get("run_id"),
        "export_git_revision": manifest.get("git_revision"),
        "manifest_sha256": sha256_file(manifest_path),
        "models": {name: entry["sha256"] for name, entry in manifest["models"].items()},
    }


def measured_image(image: str) -> dict:
    """Which image a report measured (its ID) and the export it carries: its manifest's run and checksum and every
    model file's SHA-256, read inside the image."""
    info = containers.inspect_image(image)
    if info is None:
        raise SystemExit(f"no image {image}: run `make container` first")
    path = containers.image_env(info)["MNISTSERVE_EXPORTED"] + "/manifest.json"
    manifest = json.loads(containers.image_text(image, path))
    return {
        "exported": f"{image}:{path}",
        "image": image,
        "image_id": info["Id"],
        "repo_digests": info.get("RepoDigests") or [],
        "run_id": manifest.get("run_id"),
        "export_git_revision": manifest.get("git_revision"),
        "manifest_sha256": containers.image_sha256(image, path),
        "models": {name: entry["sha256"] for name, entry in manifest["models"].items()},
    }


def environment(pinning: dict[str, list[int]] | None = None, exported: Path | None = None) -> dict:
    """Device, versions, git revision, load, the exact command and (given `exported`) the models measured."""
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        **({"measured": measured(exported)} if exported is not None else {}),
        "device": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "memory_gib": round(memory_gib, 1),
            "machine": platform.machine(),
            "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        },
        "pinning": pinning or "none",
        "versions": versions(PACKAGES),
        "git_revision": git_revision(),
        "command": command(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def command() -> str:
    """The exact command line of this run, as `python -m benchmarks.<name> ...` from the repository root."""
    main = sys.modules["__main__"].__spec__
    script = ["-m", main.name] if main is not None else [os.path.relpath(sys.argv[0], REPO)]
    return f"cd {REPO} && BENTOML_DO_NOT_TRACK=true .venv/bin/python " + shlex.join([*script, *sys.argv[1:]])


def markdown_head(report: dict, title: str, servers: str = "servers") -> list[str]:
    """A report's title and its command, device, pinning, revision and versions lines."""
    pin, device = report["pinning"], report["device"]
    return [
        f"# {title}",
        "",
        f"- command: `{report['command']}`",
        f"- device: {device['cpu']}, {device['cores']} cores, {device['memory_gib']} GiB; "
        f"load average at start {device['load_average_at_start']}",
        "- pinning: "
        + (
            "none"
            if pin == "none"
            else f"{servers} on CPUs {pin['servers']}, load generator on CPUs {pin['load_generator']}"
        ),
        f"- git revision: {report['git_revision']}; started {report['started']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
        *measured_lines(report),
    ]


def measured_lines(report: dict) -> list[str]:
    """The Markdown line naming the export a report measured (none for reports that measured no export)."""
    m = report.get("measured")
    if not m:
        return []
    models = ", ".join(f"{name} {sha[:12]}" for name, sha in m["models"].items())
    lines = [
        f"- measured: `{m['exported']}` of run {m['run_id']} (manifest sha256 {m['manifest_sha256'][:12]}); "
        f"model files sha256: {models}"
    ]
    if "image_id" in m:  # only measured_image names an image
        lines.append(f"- image: `{m['image']}` {m['image_id']}" + "".join(f", {d}" for d in m["repo_digests"]))
    return lines


def split_cpus(enabled: bool) -> dict[str, list[int]] | None:
    """Servers on the first half of the usable CPUs, the load generator on the rest (None: no pinning)."""
    cpus = sorted(os.sched_getaffinity(0))
    if not enabled or len(cpus) < 2:
        return None
    half = len(cpus) // 2
    return {"servers": cpus[:half], "load_generator": cpus[half:]}


def write_report(out_dir: Path, stem: str, data: dict, markdown: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / f"{stem}.json", data)
    atomic_write_bytes(out_dir / f"{stem}.md", markdown.encode())
    print(f"wrote {out_dir / stem}.json and .md")


def exported_report(
    doc: str, stem: str, out: Path, score: Callable[[Path], dict], markdown: Callable[[dict], str]
) -> None:
    """A benchmark's command line that scores an export: --exported and --out, then `score`'s results with the
    environment as out/stem.json, and `markdown` of them as out/stem.md (printed too)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--exported", type=Path, default=REPO / "exported")
    ap.add_argument("--out", type=Path, default=out)
    args = ap.parse_args()
    exported = require_manifest(args.exported)
    report = {"environment": environment(exported=exported), "results": score(exported)}
    write_report(args.out, stem, report, markdown(report))
    print(markdown(report))


def run_chunked(served, x: np.ndarray, chunk: int = 512) -> np.ndarray:
    """A served model's logits for many frames, `chunk` at a time: the large models' activations for thousands of
    images at once would be GBs."""
    return np.concatenate([served.run(x[i : i + chunk])[0] for i in range(0, len(x), chunk)])


def require_manifest(exported: Path) -> Path:
    exported = exported.resolve()
    if not (exported / "manifest.json").is_file():
        raise SystemExit(
            f"{exported}/manifest.json not found. Export models first (`mnistserve export --out {exported}`), or "
            "for a quick try: mnistserve train --model cnn --profile smoke --runs-dir /tmp/x/runs && "
            "mnistserve export --runs-dir /tmp/x/runs --out /tmp/x/exported, then --exported /tmp/x/exported"
        )
    return exported


def default_model(exported: Path) -> str:
    return json.loads((exported / "manifest.json").read_text())["default"]


def start_reference(
    exported: Path,
    workdir: Path,
    *,
    cpus: list[int] | None,
    threads: int,
    env: dict[str, str] | None = None,
    name: str = "reference",
) -> Server:
    """benchmarks/reference_server.py (Starlette + uvicorn, no BentoML) on a free loopback port."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "benchmarks.reference_server",
        "--exported",
        str(exported),
        "--port",
        str(port),
        "--threads",
        str(threads),
    ]
    return launch(name, argv, env=env or {}, log=workdir / f"{name}.log", cpus=cpus, url=f"http://127.0.0.1:{port}")


def scratch_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


# -- request bodies -------------------------------------------------------------------------------------


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
    return {
        "p50": round(float(p50), 3),
        "p90": round(float(p90), 3),
        "p99": round(float(p99), 3),
        "mean": round(float(a.mean()), 3),
        "max": round(float(a.max()), 3),
    }


async def _phase(
    clients: list[httpx.AsyncClient], templates: list[Template], count: int, deadline: float, on_done=None
) -> dict:
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
        "sent": sent,
        "ok": ok,
        "failed": sent - ok,
        "wall_s": round(wall, 3),
        "requests_per_second": round(sent / wall, 1) if wall > 0 else None,
        "latency_ms": _percentiles(latencies),
        "statuses": dict(statuses),
        "stopped_by_deadline": sent < count,
        "failure_examples": examples,
        "batch_sizes": {str(k): v for k, v in sorted(batch_sizes.items())} or None,
    }


async def drive(load: Load) -> dict:
    """Warm up, then the measured phase; RSS of `watch_pids` trees every `sample_every` requests."""
    templates = [Template.decode(t) for t in load.templates]
    deadline = time.monotonic() + load.deadline_s
    samples: list[dict] = []

    def sample(done: int) -> None:
        samples.append(
            {
                "requests": done,
                "t_s": round(time.monotonic() - t0, 2),
                "rss": {str(p): tree_rss(p) for p in load.watch_pids},
            }
        )

    def every(done: int) -> None:
        if load.sample_every and done % load.sample_every == 0:
            sample(done)

    async with contextlib.AsyncExitStack() as stack:
        # One client of one connection per worker: a shared pool's bookkeeping grows with its size and made
        # httpx itself the bottleneck at concurrency 32+ (2+ ms of client CPU per request at 64).
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=load.url, timeout=load.timeout_s, limits=one))
            for _ in range(load.concurrency)
        ]
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
    return {
        "servers": sum(tree_cpu_seconds(p) for p in pids),
        "load_generator": usage.ru_utime + usage.ru_stime,
        "machine": machine_busy_seconds(),
    }


def run_driver(load: Load, cpus: list[int] | None) -> dict:
    """Run the load driver in a process of its own (pinned to `cpus`) and return its result."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.harness", "drive"],
        input=json.dumps(asdict(load)),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=load.deadline_s + 120,
        preexec_fn=pin(cpus),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the load driver failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def main() -> None:
    if sys.argv[1:] != ["drive"]:
        raise SystemExit(
            "usage: python -m benchmarks.harness drive  (a JSON Load on stdin; used by throughput.py, "
            "soak.py and floor.py)"
        )
    load = Load(**json.loads(sys.stdin.read()))
    print(json.dumps(asyncio.run(drive(load))))


if __name__ == "__main__":
    main()
