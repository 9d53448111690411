"""Prometheus text exposition as numbers: one scrape as {series: value} (prometheus_client's own parser), the
difference of two scrapes, what a report takes from them (sums by a label, histogram mean and quantiles), and the
figures of a swarm stack's phase from its replicas' and HAProxy's counters (benchmarks/swarm_metrics.py scrapes)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from prometheus_client.parser import text_string_to_metric_families

Series = tuple[str, tuple[tuple[str, str], ...]]  # (sample name, sorted label pairs)
Samples = dict[Series, float]


def parse(text: str) -> Samples:
    """Every sample of a scrape by name and labels; ValueError when the text is not the exposition format."""
    try:
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
    except ValueError as exc:
        raise ValueError(f"not Prometheus text ({exc}): {text[:80]!r}") from None


def delta(before: Samples, after: Samples) -> Samples:
    """What each series gained from `before` to `after`.

    A series new in `after` counts from zero (its process started in between); one that went down was reset
    (its process restarted), so it too counts from zero. Series gone from `after` are left out: their last
    values are the caller's to keep (a replica that left between two scrapes)."""
    return {
        key: value - before.get(key, 0.0) if value >= before.get(key, 0.0) else value for key, value in after.items()
    }


def merge(scrapes: Iterable[Samples]) -> Samples:
    """Several processes' samples summed series by series (the replicas of one service)."""
    merged: Samples = {}
    for samples in scrapes:
        for key, value in samples.items():
            merged[key] = merged.get(key, 0.0) + value
    return merged


def select(samples: Samples, name: str, **match: str) -> Iterable[tuple[dict[str, str], float]]:
    """The (labels, value) of every sample called `name` whose labels include `match`."""
    for (sample, labels), value in samples.items():
        found = dict(labels)
        if sample == name and all(found.get(k) == v for k, v in match.items()):
            yield found, value


def total(samples: Samples, name: str, **match: str) -> float:
    """The sum of `name` over the series that match."""
    return sum(value for _, value in select(samples, name, **match))


def by_label(samples: Samples, name: str, label: str, **match: str) -> dict[str, float]:
    """`name` summed per value of `label`, zeros left out, ordered by that value."""
    sums: dict[str, float] = {}
    for labels, value in select(samples, name, **match):
        sums[labels.get(label, "")] = sums.get(labels.get(label, ""), 0.0) + value
    return {key: sums[key] for key in sorted(sums) if sums[key]}


def buckets(samples: Samples, histogram: str, **match: str) -> list[tuple[float, float]]:
    """A histogram's cumulative buckets (upper bound, count), summed over the matching series, by bound."""
    counts: dict[float, float] = {}
    for labels, value in select(samples, histogram + "_bucket", **match):
        bound = float(labels["le"])
        counts[bound] = counts.get(bound, 0.0) + value
    return sorted(counts.items())


def quantile(cumulative: list[tuple[float, float]], q: float) -> float | None:
    """Prometheus' histogram_quantile: linear inside the bucket the rank falls in; None without observations.

    A rank in the +Inf bucket answers the highest finite bound, as Prometheus does."""
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    rank = q * cumulative[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in cumulative:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def histogram_summary(samples: Samples, histogram: str, scale: float = 1.0, **match: str) -> dict:
    """Count, mean, p50 and p99 of a histogram's matching series, values multiplied by `scale` (1e3: ms)."""
    count = total(samples, histogram + "_count", **match)
    cumulative = buckets(samples, histogram, **match)

    def scaled(value: float | None) -> float | None:
        return None if value is None else round(value * scale, 3)

    return {
        "count": int(count),
        "mean": scaled(total(samples, histogram + "_sum", **match) / count) if count else None,
        "p50": scaled(quantile(cumulative, 0.5)),
        "p99": scaled(quantile(cumulative, 0.99)),
    }


def ints(values: Mapping[str, float]) -> dict[str, int]:
    """Counter values as the integers they are (the text format writes them as floats)."""
    return {key: int(round(value)) for key, value in values.items()}


def stack_figures(replicas: Mapping[str, Samples], running: Iterable[str], haproxy: Samples) -> dict:
    """A phase's figures: `replicas` maps each replica to what its counters gained (`delta`), `running` are those
    still there at the end, `haproxy` is what HAProxy's exporter gained."""
    merged, running = merge(replicas.values()), set(running)
    return {
        "requests": int(total(merged, "mnistserve_requests_total")),
        "by_status": ints(by_label(merged, "mnistserve_requests_total", "status")),
        "per_replica": {
            c: {"requests": int(total(d, "mnistserve_requests_total")), "left": c not in running}
            for c, d in replicas.items()
        },
        "inference_ms": histogram_summary(merged, "mnistserve_inference_seconds", 1e3),
        "request_ms": histogram_summary(merged, "bentoml_service_request_duration_seconds", 1e3, endpoint="/predict"),
        "haproxy": {
            "responses": ints(by_label(haproxy, "haproxy_frontend_http_responses_total", "code", proxy="http")),
            "per_server": ints(by_label(haproxy, "haproxy_server_http_responses_total", "server", proxy="mnistserve")),
            **{
                key: int(total(haproxy, f"haproxy_backend_{key}_total", proxy="mnistserve"))
                for key in ("retry_warnings", "redispatch_warnings", "connection_errors", "response_errors")
            },
        },
    }
