"""The metrics overlay (deploy/kubernetes/overlays/metrics): the controller's metrics listener
behind a token, and a ServiceMonitor for the Prometheus operator.

The ServiceMonitor is a custom resource: no published Kubernetes schema knows it, so it lives
in its own overlay (the sqlite and postgres overlays stay free of CRDs and keep validating in
test_manifests.py) and its wiring is checked here by what must line up: the Service port it
names, the container port behind it, the Secret its token comes from and the one the
controller reads.
"""

from __future__ import annotations

import kubernetes_validate
import pytest

from tests.k8s.manifests import OVERLAYS, container, find, render

SCHEMA_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
CRD_KINDS = {"ServiceMonitor"}


def objects() -> tuple[dict, ...]:
    return render("metrics")


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_every_builtin_object_validates(version: str) -> None:
    for obj in objects():
        if obj["kind"] not in CRD_KINDS:
            kubernetes_validate.validate(obj, version, strict=True)


def test_it_is_the_sqlite_overlay_plus_the_metrics_parts() -> None:
    base = {(o["kind"], o["metadata"]["name"]): o for o in render("sqlite")}
    here = {(o["kind"], o["metadata"]["name"]): o for o in objects()}
    assert set(here) - set(base) == {("ServiceMonitor", "podcap-controller")}
    assert set(base) <= set(here)
    changed = {key for key in base if base[key] != here[key]}
    assert changed == {("Deployment", "podcap-controller"), ("Service", "podcap-controller")}
    for overlay in OVERLAYS:  # the overlays without the operator hold no custom resource
        assert not {o["kind"] for o in render(overlay)} & CRD_KINDS, overlay


def test_service_monitor_reaches_the_token_guarded_listener() -> None:
    objs = objects()
    monitor = find(objs, "ServiceMonitor", "podcap-controller")
    service = find(objs, "Service", "podcap-controller")
    ctl = container(find(objs, "Deployment", "podcap-controller"), "controller")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == "podcap"
    assert set(monitor["spec"]) == {"selector", "endpoints"}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= \
        service["metadata"]["labels"].items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["scheme"] == "http"
    port = next(p for p in service["spec"]["ports"] if p["name"] == endpoint["port"])
    container_port = next(p for p in ctl["ports"] if p["name"] == port["targetPort"])
    env = {e["name"]: e for e in ctl["env"]}
    host, _, listen_port = env["PODCAP_METRICS_LISTEN"]["value"].rpartition(":")
    assert int(listen_port) == container_port["containerPort"] == port["port"] == 9464
    # Off loopback the controller refuses to listen without a token: it must always have one,
    # from the very Secret the ServiceMonitor sends.
    assert host not in ("127.0.0.1", "localhost", "::1")
    token_ref = env["PODCAP_METRICS_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token_ref.get("optional") is not True, token_ref
    auth = endpoint["authorization"]
    assert auth["type"] == "Bearer"
    assert auth["credentials"] == {"name": token_ref["name"], "key": token_ref["key"]}


def test_the_other_overlays_keep_metrics_on_the_api_port_only() -> None:
    """Without the metrics overlay nothing listens beyond the API, agents and join ports."""
    for overlay in OVERLAYS:
        ctl = container(find(render(overlay), "Deployment", "podcap-controller"), "controller")
        assert "PODCAP_METRICS_LISTEN" not in {e["name"] for e in ctl["env"]}, overlay
        assert {p["containerPort"] for p in ctl["ports"]} == {10443, 10444, 10445, 10446}, \
            overlay
