"""The swarm stack's own counters around each phase of benchmarks/deploy.py: every replica's /metrics and HAProxy's
Prometheus exporter, read with `docker exec` into a replica's container. The replicas are not published (dnsrr on
the overlay network), and neither is HAProxy's stats port: a replica reaches it over that network as tasks.lb:8405.

A replica that leaves during a phase (replaced by a rolling update, or SIGKILLed) takes its counters with it, so
what it answered is counted up to its last scrape: phases where replicas leave are polled every `interval` seconds,
and the SIGKILL phase scrapes its victim just before the kill. HAProxy's counters outlive every replica: they give
the whole count beside the replicas' sum, and the report says by how much the two differ.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading

from testkit import containers
from testkit import prometheus as P

FETCH = "import sys, urllib.request as u; sys.stdout.write(u.urlopen(sys.argv[1], timeout=5).read().decode())"
REPLICA_METRICS = "http://127.0.0.1:3000/metrics"
LB_METRICS = "http://tasks.lb:8405/metrics"  # the task's own address: the service's VIP needs IPVS, absent here


def scrape(container: str, url: str) -> P.Samples | None:
    """`url` fetched from inside `container` and parsed; None when the container or the URL does not answer."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        done = containers.docker_cli("exec", container, "python", "-c", FETCH, url, timeout=20, check=False)
        if done.returncode == 0:
            return P.parse(done.stdout)
    return None


class Watch:
    """Scrapes of a service's replicas and of HAProxy from a phase's start to its end (a `with` block)."""

    def __init__(self, service: str, interval: float | None = None) -> None:
        self.service, self.interval = service, interval
        self.first: dict[str, P.Samples] = {}  # each replica's counters when the phase began
        self.last: dict[str, P.Samples] = {}  # ... at its latest scrape
        self.lb: list[P.Samples] = []
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def replicas(self) -> list[str]:
        """Ids of the service's running containers, ready or not."""
        return containers.docker_cli(
            "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={self.service}"
        ).stdout.split()

    def sample(self, container: str) -> None:
        """Scrape one replica now (the SIGKILL phase's victim, just before the kill)."""
        samples = scrape(container, REPLICA_METRICS)
        if samples is not None:
            with self._lock:
                self.last[container] = samples

    def sample_all(self) -> list[str]:
        """Scrape every running replica; their ids."""
        running = self.replicas()
        for container in running:
            self.sample(container)
        return running

    def _scrape_lb(self, running: list[str]) -> P.Samples:
        for container in running:
            if (samples := scrape(container, LB_METRICS)) is not None:
                return samples
        raise RuntimeError("HAProxy's metrics (tasks.lb:8405) answer from no replica")

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample_all()

    def __enter__(self) -> Watch:
        running = self.sample_all()
        self.first = dict(self.last)
        self.lb.append(self._scrape_lb(running))
        if self.interval:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)
        self.running = self.sample_all()
        self.lb.append(self._scrape_lb(self.running))

    def figures(self) -> dict:
        """The phase's counts and latencies from the replicas' counters, and HAProxy's beside them."""
        gained = {c: P.delta(self.first.get(c, {}), samples) for c, samples in self.last.items()}
        return P.stack_figures(gained, self.running, P.delta(self.lb[0], self.lb[-1]))
