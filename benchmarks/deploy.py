"""The swarm stack of deploy/swarm/ under load: throughput with 1 and 2 replicas, a rolling update of every replica
at concurrency 16 (goal: zero failed requests), and one replica killed with SIGKILL (what clients see, and how fast
swarm replaces it). Load goes to HAProxy on 127.0.0.1 only. The figures come from the stack's own counters, every
replica's /metrics and HAProxy's exporter (benchmarks/swarm_metrics.py), with the load generator's beside them.
Initialises a swarm when none is active and leaves it afterwards; removes the stack it deployed, also when it fails.
Usage:  python -m benchmarks.deploy [--seconds 20] [--concurrency 16] [--out reports/deploy]   (make deploy-bench)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from benchmarks import harness as H
from benchmarks.deploy_report import markdown
from benchmarks.swarm_metrics import Watch
from mnistserve.settings import Deploy
from testkit import containers
from testkit.digits import draw_seven, encode
from testkit.servers import REPO

STACK, SERVICE = "mnistbench", "mnistbench_mnistserve"
PORT = Deploy.from_env().lb_port
URL = f"http://127.0.0.1:{PORT}"
SEVEN = encode(draw_seven())


def docker(*argv: str, check: bool = True) -> str:
    return containers.docker_cli(*argv, timeout=300, check=check).stdout.strip()


class Load:
    """POST /predict (a drawn 7, raw PNG) from `concurrency` clients until stopped; every answer recorded."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency, self.results, self._stop = concurrency, [], threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _client(self, http: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                r = await http.post("/predict", content=SEVEN, headers={"Content-Type": "image/png"})
                outcome = "ok" if r.status_code == 200 and r.json()["digit"] == 7 else f"http {r.status_code}"
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            self.results.append((start, time.monotonic() - start, outcome))

    async def _main(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=URL, timeout=30, limits=limits) as http:
            await asyncio.gather(*(self._client(http) for _ in range(self.concurrency)))

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        self.stopped = time.monotonic()

    def summary(self) -> dict:
        ok = [d for _, d, o in self.results if o == "ok"]
        failed = Counter(o for _, _, o in self.results if o != "ok")
        seconds = self.stopped - self.started
        return {
            "seconds": round(seconds, 1),
            "requests": len(self.results),
            "ok": len(ok),
            "failed": sum(failed.values()),
            "failures": dict(failed),
            "throughput_rps": round(len(ok) / seconds, 1),
            "p50_ms": round(statistics.median(ok) * 1e3, 1) if ok else None,
            "p99_ms": round(sorted(ok)[int(0.99 * (len(ok) - 1))] * 1e3, 1) if ok else None,
        }


def healthy_replicas() -> list[str]:
    """Ids of the service's containers whose health check passes."""
    return docker(
        "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={SERVICE}", "--filter", "health=healthy"
    ).split()


def wait_replicas(n: int, timeout: float = 120) -> float:
    """Seconds until `n` replicas are healthy and the load balancer answers /readyz, plus 2 s for its checks."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if len(healthy_replicas()) == n:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(URL + "/readyz", timeout=2).status_code == 200:
                    time.sleep(2)
                    return time.monotonic() - start
        time.sleep(0.25)
    raise TimeoutError(f"{n} healthy replicas not reached in {timeout} s: {docker('service', 'ps', SERVICE)}")


def deploy(replicas: int) -> None:
    env = {**os.environ, "MNISTSERVE_REPLICAS": str(replicas), "MNISTSERVE_LB_PORT": str(PORT)}
    subprocess.run(
        [containers.docker(), "stack", "deploy", "-c", "deploy/swarm/stack.yml", STACK],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )


def throughput(concurrency: int, seconds: float) -> dict:
    """Steady load for `seconds`: what clients saw and what the stack counted."""
    with Watch(SERVICE) as watch, Load(concurrency) as load:
        time.sleep(seconds)
    return {**load.summary(), "metrics": watch.figures()}


def rolling_update(concurrency: int) -> dict:
    """`docker service update --force` (every replica replaced, start-first) under load."""
    # Polled each second: every replica leaves during the update, and its counters with it.
    with Watch(SERVICE, interval=1.0) as watch, Load(concurrency) as load:
        time.sleep(3)
        start = time.monotonic()
        docker("service", "update", "--force", "--detach=false", "--quiet", SERVICE)
        took = time.monotonic() - start
        time.sleep(3)
    return {"update_seconds": round(took, 1), **load.summary(), "metrics": watch.figures()}


def sigkill(concurrency: int, replicas: int) -> dict:
    """One replica's container killed with SIGKILL under load: failures seen, time until swarm has it back."""
    with Watch(SERVICE) as watch, Load(concurrency) as load:
        time.sleep(3)
        victim = healthy_replicas()[0]
        watch.sample(victim)  # its counters die with it: what it answers after this scrape goes uncounted there
        killed = time.monotonic()
        docker("kill", "-s", "KILL", victim)
        while victim in healthy_replicas() or len(healthy_replicas()) < replicas:
            assert time.monotonic() - killed < 120, "no replacement within 120 s"
            time.sleep(0.2)
        replaced = time.monotonic() - killed
        time.sleep(3)
    failed_at = [round(t - killed, 2) for t, _, o in load.results if o != "ok"]
    return {
        "replaced_healthy_after_s": round(replaced, 1),
        "failed_between_s": [min(failed_at), max(failed_at)] if failed_at else None,
        **load.summary(),
        "metrics": watch.figures(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "deploy")
    args = parser.parse_args()
    if not containers.engine_answers() or containers.inspect_image() is None:
        raise SystemExit("no Docker engine or no image: run `make container` first")
    joined = docker("info", "-f", "{{.Swarm.LocalNodeState}}") == "active"
    if not joined:
        docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    report = {
        **H.environment(),
        "measured": H.measured_image(containers.IMAGE),  # the image's ID and its models' checksums
        "image": containers.IMAGE,
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "throughput": {},
    }
    try:
        for n in (1, 2):
            deploy(n)
            wait_replicas(n)
            report["throughput"][str(n)] = throughput(args.concurrency, args.seconds)
            print(n, report["throughput"][str(n)], flush=True)
        report["rolling_update"] = rolling_update(args.concurrency)
        print("rolling update", report["rolling_update"], flush=True)
        wait_replicas(2)
        report["sigkill"] = sigkill(args.concurrency, 2)
        print("sigkill", report["sigkill"], flush=True)
    finally:
        docker("stack", "rm", STACK, check=False)
        if not joined:
            time.sleep(5)  # the stack's network goes first
            docker("swarm", "leave", "--force", check=False)
    H.write_report(args.out, "swarm", report, markdown(report, PORT))
    print(markdown(report, PORT))


if __name__ == "__main__":
    main()
