"""reports/deploy/swarm.md from benchmarks/deploy.py's results: the figures the stack counted itself (the replicas'
/metrics and HAProxy's exporter), then what the load generator saw, as a cross-check."""

from __future__ import annotations

from benchmarks import harness as H

EXPLANATION = """\
How the counts are made: before and after each phase (and each second during the rolling update) every replica's
`/metrics` is read with `docker exec` inside its container, and HAProxy's Prometheus exporter (`:8405`, not
published) from inside a replica over the stack's network (benchmarks/swarm_metrics.py). A phase's figures are the
differences, parsed with prometheus_client's parser: `mnistserve_requests_total` by status and per replica,
`mnistserve_inference_seconds` (onnxruntime time) and BentoML's `bentoml_service_request_duration_seconds` for
`/predict` (time inside the replica), quantiles interpolated in their buckets as Prometheus' `histogram_quantile`
does. A replica that leaves mid-phase takes its counters with it: it is counted up to its last scrape (the SIGKILL
victim is scraped just before the kill), so the replicas' sum may fall short of HAProxy's, whose counters outlive
every replica; the last table says by how much. HAProxy retries a request that a replica dropped (connection
refused or closed without an answer, no answer in time, or a 503) on another replica, with the request body
buffered so a POST can be sent again: `/predict` has no side effects (deploy/swarm/haproxy.cfg says why)."""


def rows(report: dict) -> list[tuple[str, dict, str]]:
    """(scenario, its results, a note) for every phase, in the order they ran."""
    t, u, k = report["throughput"], report["rolling_update"], report["sigkill"]
    found = [(f"{n} replica{'s' * (n != '1')}", t[n], "") for n in sorted(t)]
    found.append(("rolling update, every replica (start-first)", u, f"update took {u['update_seconds']} s"))
    found.append(("one replica SIGKILLed", k, f"healthy replacement after {k['replaced_healthy_after_s']} s"))
    return found


def ms(summary: dict) -> str:
    """A histogram's p50 / p99 in ms, or a dash without observations."""
    return f"{summary['p50']:.1f} / {summary['p99']:.1f} ms" if summary["count"] else "-"


def counts(values: dict) -> str:
    """Counts by key as `key: n, ...`."""
    return ", ".join(f"{key}: {n}" for key, n in values.items()) or "none"


def counted(name: str, s: dict) -> str:
    """One row of what the stack counted."""
    m, lb = s["metrics"], s["metrics"]["haproxy"]
    replicas = ", ".join(
        f"{c[:8]}{' (left)' if r['left'] else ''}: {r['requests']}"
        for c, r in m["per_replica"].items()
        if r["requests"] or not r["left"]
    )
    return (
        f"| {name} | {sum(lb['responses'].values())} | {counts(lb['responses'])} | {lb['retry_warnings']} / "
        f"{lb['redispatch_warnings']} | {counts(m['by_status'])} | {replicas} | {ms(m['inference_ms'])} | "
        f"{ms(m['request_ms'])} |"
    )


def seen(name: str, s: dict, note: str) -> str:
    """One row of what the load generator saw."""
    return (
        f"| {name} | {s['requests']} | {s['failed']} | {counts(s['failures'])} | {s['throughput_rps']} req/s "
        f"| {s['p50_ms']} ms | {s['p99_ms']} ms | {note} |"
    )


def agreement(name: str, s: dict) -> str:
    """Whether the load generator, HAProxy and the replicas counted the same requests, and why not."""
    clients, lb, replicas = s["requests"], sum(s["metrics"]["haproxy"]["responses"].values()), s["metrics"]["requests"]
    left = any(r["left"] for r in s["metrics"]["per_replica"].values())
    if clients == lb == replicas:
        return f"- {name}: all three counted {clients}"
    why = " (a replica left mid-phase: what it answered after its last scrape is lost with it)" if left else ""
    return f"- {name}: load generator {clients}, HAProxy {lb}, replicas {replicas}{why}"


def markdown(report: dict, port: int) -> str:
    """The whole report."""
    lines = H.markdown_head(report, "Swarm stack: replicas behind HAProxy (make deploy-bench)", "replicas")
    lines += [
        "",
        f"- stack: deploy/swarm/stack.yml, image `{report['image']}`, load: {report['concurrency']} "
        f"concurrent clients posting a drawn 7 (raw PNG) to HAProxy on 127.0.0.1:{port}, "
        f"{report['seconds']} s per throughput figure; the load generator shares the machine's cores",
        "",
        "## What the stack counted (/metrics)",
        "",
        "| scenario | HAProxy: answers | by class | retries / redispatches | replicas: answers by status "
        "| per replica | inference p50 / p99 | in replica /predict p50 / p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [counted(name, s) for name, s, _ in rows(report)]
    lines += [
        "",
        "## What clients saw (the load generator)",
        "",
        "| scenario | requests | failed | failures | throughput | p50 | p99 | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [seen(name, s, note) for name, s, note in rows(report)]
    lines += ["", "## Do the counts agree?", ""] + [agreement(name, s) for name, s, _ in rows(report)]
    return "\n".join(lines + ["", EXPLANATION]) + "\n"
