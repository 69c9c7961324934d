"""The Kubernetes manifests, checked as far as a machine without a cluster can.

No Kubernetes API server can run on these machines, so nothing here is applied. These tests
stand in for `kubectl apply --dry-run=server`: `kubectl kustomize` renders every overlay, each
object validates against the published Kubernetes schemas (1.30 and the newest that
kubernetes-validate ships, offline), and the policy tests check what a reviewer would. The image
itself is run the way these manifests run it in tests/image.
"""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest

from tests.k8s.manifests import (
    DEPLOY,
    OVERLAYS,
    agent_capabilities,
    container,
    find,
    package_version,
    pod_spec,
    render,
)

SCHEMA_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
WORKLOAD_KINDS = {"Deployment", "DaemonSet", "StatefulSet", "Job", "CronJob"}
# Found by dropping each in turn (the comments in agent-daemonset.yaml say what each is for).
MINIMAL_AGENT_CAPABILITIES = {"SYS_ADMIN", "SYS_PTRACE", "NET_RAW", "SETGID"}


def workloads(overlay: str) -> list[dict]:
    return [o for o in render(overlay) if o["kind"] in WORKLOAD_KINDS]


def all_containers(overlay: str) -> list[tuple[str, dict, bool]]:
    """(owner/name, container, is init container) of every pod template."""
    found = []
    for obj in workloads(overlay):
        spec = pod_spec(obj)
        for c in spec.get("initContainers", []):
            found.append((f"{obj['kind']}/{obj['metadata']['name']}/{c['name']}", c, True))
        for c in spec["containers"]:
            found.append((f"{obj['kind']}/{obj['metadata']['name']}/{c['name']}", c, False))
    return found


# ---- render and schema ---------------------------------------------------------------------

@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates(overlay: str, version: str) -> None:
    objects = render(overlay)
    assert {o["kind"] for o in objects} >= {"Namespace", "ServiceAccount", "Deployment",
                                             "Service", "DaemonSet", "Secret"}
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_validator_rejects_a_bad_object() -> None:
    """The check above can fail: a misspelt field and a wrong type are refused."""
    deployment = find(render("sqlite"), "Deployment", "podcap-controller")
    bad = {**deployment, "spec": {**deployment["spec"], "replica": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, SCHEMA_VERSIONS[0], strict=True)
    bad = {**deployment, "spec": {**deployment["spec"], "replicas": "one"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, SCHEMA_VERSIONS[0], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_in_the_podcap_namespace(overlay: str) -> None:
    for obj in render(overlay):
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == "podcap", obj["metadata"]


# ---- what a reviewer checks ----------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_this_version_never_latest(overlay: str) -> None:
    for where, c, _ in all_containers(overlay):
        name, _, tag = c["image"].rpartition(":")
        assert name == "podcap" and tag == package_version(), (where, c["image"])
        assert c.get("imagePullPolicy") == "IfNotPresent", where
    rendered = "\n".join(str(o) for o in render(overlay))
    assert ":latest" not in rendered


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_and_resources_on_every_container(overlay: str) -> None:
    for where, c, init in all_containers(overlay):
        res = c.get("resources", {})
        for part in ("requests", "limits"):
            assert set(res.get(part, {})) == {"cpu", "memory"}, (where, part, res)
        assert _quantity(res["requests"]["memory"]) <= _quantity(res["limits"]["memory"]), where
        assert _quantity(res["requests"]["cpu"]) <= _quantity(res["limits"]["cpu"]), where
        if not init:  # init containers cannot have probes
            assert "readinessProbe" in c and "livenessProbe" in c, where


def test_probes_ask_real_endpoints() -> None:
    ctl = container(find(render("sqlite"), "Deployment", "podcap-controller"), "controller")
    ports = {p["name"]: p["containerPort"] for p in ctl["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = ctl[probe]["httpGet"]
        assert get["path"] == "/healthz" and get["scheme"] == "HTTPS", probe
        assert ports[get["port"]] == 10443, probe
        # The controller checks the Host header; the kubelet would send the pod's IP.
        assert {"name": "Host", "value": "localhost"} in get["httpHeaders"], probe
    agent = container(find(render("sqlite"), "DaemonSet", "podcap-agent"), "agent")
    for probe in ("readinessProbe", "livenessProbe"):
        assert agent[probe]["exec"]["command"] == ["podcap-probe"], probe  # tests/image runs it


def test_no_privileged_container_without_its_reason() -> None:
    """`privileged: true` only with a comment beside it (same line or the line above)."""
    for path in DEPLOY.rglob("*.yaml"):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if re.match(r"\s*privileged:\s*true\b", line):
                above = lines[i - 1].strip() if i else ""
                assert "#" in line or above.startswith("#"), f"{path}:{i + 1} has no reason"
    for overlay in OVERLAYS:
        for where, c, _ in all_containers(overlay):
            assert c.get("securityContext", {}).get("privileged") is not True, where


def test_agent_has_the_minimal_capabilities_and_no_more() -> None:
    """The image test reads the same list (manifests.agent_capabilities): one source."""
    assert set(agent_capabilities()) == MINIMAL_AGENT_CAPABILITIES
    assert len(agent_capabilities()) == len(MINIMAL_AGENT_CAPABILITIES)
    image_test = (Path(__file__).resolve().parent.parent / "image" / "test_image.py").read_text()
    assert "agent_capabilities()" in image_test


def test_agent_daemonset_reaches_every_node_and_its_runtime() -> None:
    ds = find(render("sqlite"), "DaemonSet", "podcap-agent")
    spec = pod_spec(ds)
    assert spec["hostPID"] is True
    assert not spec.get("hostNetwork"), "the agent needs no host network"
    assert {"operator": "Exists"} in spec["tolerations"], "tolerate every taint"
    assert spec["automountServiceAccountToken"] is False
    agent = container(ds, "agent")
    sc = agent["securityContext"]
    assert sc["runAsUser"] == 0 and sc["readOnlyRootFilesystem"] is True
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    # The API refuses allowPrivilegeEscalation: false together with CAP_SYS_ADMIN.
    assert sc.get("allowPrivilegeEscalation") is not False
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in agent["volumeMounts"]}
    env = {e["name"]: e for e in agent["env"]}
    # The runtime socket's directory (a restarted runtime's new socket stays visible).
    assert volumes["cri-socket"]["hostPath"] == {"path": "/run/containerd", "type": "Directory"}
    socket = env["PODCAP_CRI_SOCKET"]["value"]
    assert socket == mounts["cri-socket"] + "/containerd.sock"
    assert env["PODCAP_RUNTIME"]["value"] == "cri"
    # The data dir survives the pod: identity and captures.
    assert volumes["data"]["hostPath"]["path"] == env["PODCAP_DATA_DIR"]["value"] \
        == mounts["data"]
    assert env["PODCAP_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    token = env["PODCAP_JOIN_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token["key"] == "token"
    assert token["name"].startswith("podcap-join-token")
    secrets = {o["metadata"]["name"] for o in render("sqlite") if o["kind"] == "Secret"}
    assert token["name"] in secrets, "the join token's Secret is generated by the base"
    assert "podcap.self" in ds["spec"]["template"]["metadata"]["labels"]


def test_agent_dials_the_controller_service() -> None:
    objects = render("sqlite")
    service = find(objects, "Service", "podcap-controller")
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    assert ports == {"api": 10443, "agents": 10444, "join": 10445, "data": 10446}
    ctl = container(find(objects, "Deployment", "podcap-controller"), "controller")
    assert {p["name"]: p["containerPort"] for p in ctl["ports"]} == ports
    env = {e["name"]: e.get("value") for e in container(
        find(objects, "DaemonSet", "podcap-agent"), "agent")["env"]}
    assert env["PODCAP_CONTROLLER"] == f"podcap-controller:{ports['agents']}"
    ctl = find(objects, "Deployment", "podcap-controller")
    assert service["spec"]["selector"].items() <= \
        ctl["spec"]["template"]["metadata"]["labels"].items()
    names = {p["name"] for p in container(ctl, "controller")["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} == names


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_controller_is_non_root_with_a_read_only_root(overlay: str) -> None:
    ctl = find(render(overlay), "Deployment", "podcap-controller")
    spec = pod_spec(ctl)
    if overlay == "sqlite":  # one controller on SQLite (controller/sqlite_lock.py)
        assert ctl["spec"]["replicas"] == 1 and ctl["spec"]["strategy"]["type"] == "Recreate"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001  # the image's user
    assert spec["automountServiceAccountToken"] is False
    for c in [*spec["initContainers"], *spec["containers"]]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True, c["name"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"] == {"drop": ["ALL"]}, c["name"]
    labels = ctl["spec"]["template"]["metadata"]["labels"]
    assert labels["podcap.self"] == "true", "the agents must refuse the controller's pod"


def test_namespace_pod_security_level() -> None:
    """The agent breaks three baseline rules (hostPID, hostPath, capabilities beyond the
    baseline set), so its namespace is labelled privileged; the reasons are in namespace.yaml."""
    ns = find(render("sqlite"), "Namespace", "podcap")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    agent = find(render("sqlite"), "DaemonSet", "podcap-agent")
    spec = pod_spec(agent)
    baseline_caps = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL",
                     "MKNOD", "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID",
                     "SYS_CHROOT", "NET_RAW"}
    assert spec["hostPID"] and any("hostPath" in v for v in spec["volumes"])
    assert set(agent_capabilities()) - baseline_caps, "baseline would do: lower the label"
    text = (DEPLOY / "base" / "namespace.yaml").read_text()
    assert "hostPID" in text and "baseline" in text


def test_sqlite_overlay_keeps_the_data_on_a_claim() -> None:
    objects = render("sqlite")
    claim = find(objects, "PersistentVolumeClaim", "podcap-controller-data")
    volumes = {v["name"]: v for v in pod_spec(find(objects, "Deployment", "podcap-controller"))
               ["volumes"]}
    assert volumes["data"] == {"name": "data", "persistentVolumeClaim": {
        "claimName": claim["metadata"]["name"]}}
    assert volumes["cluster-ca"]["secret"]["optional"] is True


def test_postgres_overlay_takes_url_and_ca_from_secrets() -> None:
    objects = render("postgres")
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    ctl = find(objects, "Deployment", "podcap-controller")
    env = {e["name"]: e for e in container(ctl, "controller")["env"]}
    ref = env["PODCAP_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "podcap-database", "key": "url"}
    volumes = {v["name"]: v for v in pod_spec(ctl)["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}
    # The replicas share the cluster CA through the database: the Secret is optional.
    assert volumes["cluster-ca"]["secret"] == {"secretName": "podcap-ca", "optional": True,
                                               "defaultMode": 0o440}
    # One API certificate for both replicas.
    assert volumes["api-tls"]["secret"]["secretName"] == "podcap-tls"
    assert env["PODCAP_CERT"]["value"] == "/etc/podcap/tls/tls.crt"
    mounts = {m["name"]: m["mountPath"] for m in container(ctl, "controller")["volumeMounts"]}
    assert mounts["api-tls"] == "/etc/podcap/tls"


def test_postgres_overlay_runs_two_replicas_that_survive_a_drain() -> None:
    """Issue 20: two replicas rolled one at a time, a PodDisruptionBudget, readiness that
    fails without the database, and a headless Service the agents resolve to every replica."""
    objects = render("postgres")
    ctl = find(objects, "Deployment", "podcap-controller")
    assert ctl["spec"]["replicas"] == 2
    assert ctl["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {
        "maxUnavailable": 0, "maxSurge": 1}}
    labels = ctl["spec"]["template"]["metadata"]["labels"]
    pdb = find(objects, "PodDisruptionBudget", "podcap-controller")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    c = container(ctl, "controller")
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"  # the database answers
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"  # a lost database: no restart
    headless = find(objects, "Service", "podcap-controller-agents")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"].items() <= labels.items()
    assert {p["name"]: p["port"] for p in headless["spec"]["ports"]} == {
        "agents": 10444, "join": 10445, "data": 10446}
    env = {e["name"]: e.get("value") for e in container(
        find(objects, "DaemonSet", "podcap-agent"), "agent")["env"]}
    assert env["PODCAP_CONTROLLER"] == "podcap-controller-agents:10444"
    assert env["PODCAP_JOIN_ADDRESS"] == "podcap-controller:10445"
    # The API Service still balances (not headless).
    assert "clusterIP" not in find(objects, "Service", "podcap-controller")["spec"]


def test_readiness_fails_while_the_database_is_away(tmp_path) -> None:
    """What the postgres overlay's readinessProbe asks: /readyz answers 503 when the database
    cannot be reached, /healthz (liveness) still 200, so the pod leaves the Service without
    being restarted."""
    from fastapi.testclient import TestClient
    from sqlalchemy.orm import sessionmaker

    from podcap.api.app import create_app
    from podcap.controller.auth import Auth
    from podcap.controller.db import open_db
    from podcap.controller.service import CaptureService

    sessions = open_db(None, tmp_path)
    auth = Auth(sessions)
    app = create_app(CaptureService(sessions, _NoAgents()), auth)  # type: ignore[arg-type]
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        gone = sessions.kw["bind"].url.set(database=str(tmp_path / "gone" / "no.db"))
        from sqlalchemy import create_engine
        auth.sessions = sessionmaker(create_engine(gone))  # the database is away
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["status"] == "database unavailable"
        assert client.get("/healthz").status_code == 200


class _NoAgents:
    def transports(self) -> dict:
        return {}

    def infos(self) -> list:
        return []

    def close(self) -> None:
        pass


def _quantity(value: str | int) -> float:
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    for unit, factor in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)
