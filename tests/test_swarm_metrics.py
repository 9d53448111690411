"""The swarm benchmark's figures from /metrics (testkit.prometheus) on scrapes captured from a live stack:
one replica's /metrics before and after 4 s of load, and HAProxy's exporter around the same load (trimmed to the
series the benchmark reads). In that load HAProxy's replica1 was this replica, so both sides must count 81."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from testkit import prometheus as P

SAMPLES = Path(__file__).parent / "samples"


def scrape(name: str) -> P.Samples:
    return P.parse((SAMPLES / f"{name}.prom").read_text())


def test_parse_reads_every_series_of_a_replica_scrape():
    after = scrape("replica-after")
    assert P.by_label(after, "mnistserve_requests_total", "status") == {"200": 91.0, "400": 1.0, "404": 1.0}
    assert P.total(after, "mnistserve_requests_total", model="none") == 1.0  # the 404 of an unknown model
    assert P.total(after, "bentoml_service_request_total", endpoint="/predict", http_response_code="200") == 91.0
    assert P.buckets(after, "mnistserve_inference_seconds")[-1] == (math.inf, 91.0)


def test_delta_is_what_a_phase_added():
    gained = P.delta(scrape("replica-before"), scrape("replica-after"))
    # the 400 and the 404 came before the phase: not its figures
    assert P.by_label(gained, "mnistserve_requests_total", "status") == {"200": 81.0}
    assert P.total(gained, "mnistserve_inference_seconds_count") == 81.0


def test_delta_counts_a_new_or_reset_series_from_zero():
    before = {("c_total", (("a", "x"),)): 10.0, ("c_total", (("a", "y"),)): 3.0}
    after = {("c_total", (("a", "x"),)): 4.0, ("c_total", (("a", "y"),)): 5.0, ("c_total", (("a", "z"),)): 2.0}
    assert P.delta(before, after) == {
        ("c_total", (("a", "x"),)): 4.0,
        ("c_total", (("a", "y"),)): 2.0,
        ("c_total", (("a", "z"),)): 2.0,
    }


def test_quantiles_interpolate_inside_buckets_as_prometheus_does():
    gained = P.delta(scrape("replica-before"), scrape("replica-after"))
    summary = P.histogram_summary(gained, "mnistserve_inference_seconds", 1e3)
    # rank 40.5 of 81 lies in (1 ms: 1, 2.5 ms: 42]; rank 80.19 in (50 ms: 80, 100 ms: 81]
    assert summary["count"] == 81
    assert summary["p50"] == pytest.approx(1 + 1.5 * 39.5 / 41, abs=1e-3)
    assert summary["p99"] == pytest.approx(50 + 50 * 0.19, abs=1e-3)
    assert P.quantile([(0.1, 0.0), (0.2, 10.0), (math.inf, 10.0)], 0.5) == pytest.approx(0.15)
    assert P.quantile([(0.1, 0.0), (math.inf, 4.0)], 0.5) == 0.1  # in +Inf: the highest finite bound
    assert P.quantile([(0.1, 0.0), (math.inf, 0.0)], 0.5) is None


def test_stack_figures_from_a_replica_and_haproxy():
    replica = P.delta(scrape("replica-before"), scrape("replica-after"))
    gone = P.delta({}, {("mnistserve_requests_total", (("model", "cnn"), ("status", "503"), ("version", "v"))): 7.0})
    haproxy = P.delta(scrape("haproxy-before"), scrape("haproxy-after"))
    figures = P.stack_figures({"9c3ac6927a17": replica, "deadbeef0000": gone}, ["9c3ac6927a17"], haproxy)
    assert figures["requests"] == 88 and figures["by_status"] == {"200": 81, "503": 7}
    assert figures["per_replica"] == {
        "9c3ac6927a17": {"requests": 81, "left": False},
        "deadbeef0000": {"requests": 7, "left": True},
    }
    assert figures["haproxy"]["responses"] == {"2xx": 147}  # the stats frontend's own answers left out
    assert figures["haproxy"]["per_server"] == {"replica1": 81, "replica2": 66}
    assert figures["haproxy"]["retry_warnings"] == 0 and figures["haproxy"]["connection_errors"] == 0
    assert figures["inference_ms"]["count"] == 81 and figures["request_ms"]["count"] == 81


@pytest.mark.parametrize("text", ["<html>Bad Gateway</html>", 'foo{a="b" 1'])
def test_text_that_is_not_prometheus_is_refused_by_name(text):
    with pytest.raises(ValueError, match="not Prometheus text"):
        P.parse(text)
