"""deploy/: the Kubernetes manifests against the Kubernetes API schema (offline, `kubernetes-validate`'s bundled
schemas, strict: an unknown field fails) and a few cross-references a schema cannot see; the Grafana dashboard's
queries parse as PromQL and ask only for series that `serving.metrics` exposes, by labels they carry."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import kubernetes_validate
import promql_parser
import pytest
import yaml

from benchmarks import harness as H
from serving import metrics
from testkit.servers import REPO

K8S = REPO / "deploy" / "k8s"
DASHBOARD = REPO / "deploy" / "grafana" / "mnistserve.json"
KUBERNETES = "1.30"  # the oldest version the manifests are for (preStop `sleep` is there from 1.30 on)
MANIFESTS = sorted(K8S.glob("*.yaml"))
LABELS = {*metrics.LABELS, "status", "le"}  # what the dashboard may group by


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def resources() -> dict[str, dict]:
    """Every manifest document by kind (one of each kind here)."""
    found = [doc for path in MANIFESTS for doc in documents(path)]
    by_kind = {doc["kind"]: doc for doc in found}
    assert len(by_kind) == len(found), "one resource of each kind"
    return by_kind


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid_against_the_kubernetes_schema(path):
    for doc in documents(path):
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


@pytest.mark.parametrize(
    "break_it",
    [
        lambda d: d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"].update(pat="/readyz"),
        lambda d: d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].update(cpu=["2"]),
        lambda d: d["spec"].pop("selector"),
    ],
    ids=["misspelt-field", "wrong-type", "missing-required"],
)
def test_a_broken_copy_fails_validation(break_it):
    deployment = copy.deepcopy(resources()["Deployment"])
    break_it(deployment)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def test_manifests_refer_to_each_other():
    """What the schema cannot check: selectors, port names, volumes, the autoscaler's target, the hardening."""
    r = resources()
    assert set(r) >= {"Deployment", "Service", "HorizontalPodAutoscaler"}
    deployment, pod = r["Deployment"], r["Deployment"]["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert r["Service"]["spec"]["selector"].items() <= pod_labels.items()
    [container] = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 3000}  # BentoML's port
    assert {p["targetPort"] for p in r["Service"]["spec"]["ports"]} <= set(ports) | set(ports.values())
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    assert {m["name"] for m in container["volumeMounts"]} == {v["name"] for v in pod["spec"]["volumes"]}
    home = {e["name"]: e.get("value") for e in container["env"]}["BENTOML_HOME"]
    assert home in {m["mountPath"] for m in container["volumeMounts"]}  # BentoML writes its home at start
    assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) and container["resources"]["limits"]
    target = r["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    if "PodDisruptionBudget" in r:
        assert r["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


# -- the Grafana dashboard ---------------------------------------------------------------------------------


def queries() -> list[str]:
    """Every PromQL expression of the dashboard (panels and template variables), Grafana's macros filled in."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


def parse(expr: str):
    """A dashboard expression as PromQL: `label_values(...)` is Grafana's, the metric inside it is PromQL."""
    if expr.startswith("label_values("):
        expr = expr.removeprefix("label_values(").split(",")[0]
    return promql_parser.parse(expr.replace("$__rate_interval", "5m").replace("$model", ".*"))


def used(expr: str) -> tuple[set[str], set[str]]:
    """The series names an expression reads and the labels it groups by."""
    names: set[str] = set()
    grouping: set[str] = set()

    def visit(node) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name)
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            grouping.update(node.modifier.labels)

    promql_parser.walk(parse(expr), visit)
    return names, grouping


def test_dashboard_queries_only_series_that_serving_metrics_exposes():
    exprs = queries()
    assert exprs
    names, grouping = set(), set()
    for expr in exprs:
        n, g = used(expr)
        names |= n
        grouping |= g
    assert names <= metrics.metric_names(), f"not in serving/metrics.py: {sorted(names - metrics.metric_names())}"
    assert {"mnistserve_requests_total", "mnistserve_inference_seconds_bucket", "mnistserve_batch_size_bucket"} <= names
    assert grouping <= LABELS, f"no such label: {sorted(grouping - LABELS)}"


def test_dashboard_check_catches_a_misspelt_metric_and_bad_promql():
    assert used("sum(rate(mnistserve_request_total[5m]))")[0] - metrics.metric_names() == {"mnistserve_request_total"}
    with pytest.raises(ValueError):
        parse("sum by (model (rate(mnistserve_requests_total[5m]))")


def test_a_container_report_names_the_image_and_its_models_checksums():
    """The swarm and container reports' head: the image's ID and, read from the image, its models' SHA-256."""
    models = {"cnn": "031786aa8e66" + "0" * 52, "vit": "2041776d1e37" + "1" * 52}
    report = {
        "command": "python -m benchmarks.deploy",
        "device": {"cpu": "a CPU", "cores": 2, "memory_gib": 23.5, "load_average_at_start": [1.0, 1.0, 1.0]},
        "pinning": "none",
        "git_revision": "0123456789ab",
        "started": "2026-12-04T17:00:00Z",
        "versions": {"python": "3.11.7"},
        "measured": {
            "exported": "mnistserve:latest:/home/bentoml/bento/src/exported/manifest.json",
            "image": "mnistserve:latest",
            "image_id": "sha256:" + "c" * 64,
            "repo_digests": [],
            "run_id": "20261204T170000Z-cpu-1",
            "export_git_revision": "0123456789ab",
            "manifest_sha256": "d" * 64,
            "models": models,
        },
    }
    head = "\n".join(H.markdown_head(report, "Swarm stack", "replicas"))
    assert f"- image: `mnistserve:latest` sha256:{'c' * 64}" in head
    assert all(f"{name} {sha[:12]}" in head for name, sha in models.items()), head
    assert "run 20261204T170000Z-cpu-1" in head and "manifest sha256 dddddddddddd" in head
