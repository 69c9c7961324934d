"""podcap's image, run the way Kubernetes runs it (deploy/kubernetes), on the Docker engine.

No Kubernetes can run here, so each pod becomes one container with the same settings: the
controller as the Deployment runs it (user 10001, read-only root, no capabilities, no new
privileges, its data dir on a volume, the manifest's environment, reachable as
`podcap-controller` as through the Service), and the agent as the DaemonSet runs it (root,
the host's PID namespace, ALL dropped and exactly the DaemonSet's capabilities added, Docker's
default seccomp profile, read-only root, its data dir on a volume, the runtime's socket
mounted). Here the runtime is the Docker engine instead of the node's CRI socket.

The agent joins with a real token, a third container serving HTTP is captured through the
controller's API, and the pcap holds its packets; podcap's own containers are refused.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import httpx
import pytest

from tests.k8s.manifests import (
    ROOT,
    agent_capabilities,
    agent_daemonset,
    container,
    controller_deployment,
    plain_env,
)
from tests.support import (
    ARTIFACTS,
    WebPair,
    docker_client,
    read_pcap,
    tcp_flows,
    unique,
    wait_for,
    web_pair,
)

SELF = "podcap's own container"


@pytest.fixture(scope="session")
def image() -> str:
    """podcap:<version>, built (or found current) by the script behind `make image`."""
    script = ROOT / "scripts" / "build-image.sh"
    started = time.monotonic()
    out = subprocess.run([str(script)], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"build-image.sh failed:\n{out.stdout}\n{out.stderr}"
    tag = subprocess.run([str(script), "--print-tag"], capture_output=True, text=True,
                         check=True).stdout.strip()
    print(f"image {tag} ready in {time.monotonic() - started:.1f} s {out.stdout.strip()}")
    return tag


@dataclass
class Pods:
    controller: docker.models.containers.Container
    agent: docker.models.containers.Container
    url: str
    token: str
    node: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=False, timeout=30,
                            headers={"X-Auth-Token": self.token})


def _mount(volume: str, path: str) -> dict:
    return {volume: {"bind": path, "mode": "rw"}}


@contextlib.contextmanager
def _resources() -> Iterator[dict]:
    """Names of what a test creates; all removed afterwards by exact name."""
    made: dict[str, list] = {"containers": [], "volumes": [], "networks": []}
    client = docker_client()
    try:
        yield made
    finally:
        for c in made["containers"]:
            with contextlib.suppress(docker.errors.APIError):
                ARTIFACTS.mkdir(exist_ok=True)
                (ARTIFACTS / f"{c.name}.log").write_bytes(c.logs())
            with contextlib.suppress(docker.errors.NotFound):
                c.remove(force=True)
        for name in made["volumes"]:
            with contextlib.suppress(docker.errors.NotFound):
                client.volumes.get(name).remove(force=True)
        for name in made["networks"]:
            with contextlib.suppress(docker.errors.NotFound):
                client.networks.get(name).remove()


@pytest.fixture(scope="module")
def pods(image: str) -> Iterator[Pods]:
    client = docker_client()
    password = secrets.token_urlsafe(12)
    with _resources() as made:
        net = unique("img-net")
        client.networks.create(net, driver="bridge")
        made["networks"].append(net)

        # The controller, as the Deployment runs it.
        ctl_env = plain_env(controller_deployment(), "controller")
        ctl_name, ctl_vol = unique("img-ctl"), unique("img-ctl-data")
        client.volumes.create(ctl_vol)
        made["volumes"].append(ctl_vol)
        ctl = client.containers.create(
            image, container(controller_deployment(), "controller")["args"], name=ctl_name,
            user="10001:10001", read_only=True, cap_drop=["ALL"],
            security_opt=["no-new-privileges"], tmpfs={"/tmp": "size=64m"},
            volumes=_mount(ctl_vol, ctl_env["PODCAP_DATA_DIR"]),
            environment={**ctl_env, "PODCAP_ADMIN_PASSWORD": password},
            labels=dict(controller_deployment()["spec"]["template"]["metadata"]["labels"]),
            ports={"10443/tcp": ("127.0.0.1", None)}, network=net)
        made["containers"].append(ctl)
        # Reached by the Service's name, as the agents reach it in Kubernetes.
        client.networks.get(net).disconnect(ctl)
        client.networks.get(net).connect(ctl, aliases=["podcap-controller"])
        ctl.start()
        ctl.reload()
        port = ctl.attrs["NetworkSettings"]["Ports"]["10443/tcp"][0]["HostPort"]
        url = f"https://127.0.0.1:{port}"
        wait_for(lambda: _healthy(url, ctl), timeout=60, interval=0.3, what="controller health")
        r = httpx.post(url + "/v1/auth", verify=False, json={
            "password": {"username": "admin", "password": password}})
        r.raise_for_status()
        token = r.json()["token"]["token"]
        r = httpx.post(url + "/api/agent-tokens", verify=False, json={"ttl_s": 600, "uses": 1},
                       headers={"X-Auth-Token": token})
        assert r.status_code == 201, r.text
        join_token = r.json()["token"]

        # The agent, as the DaemonSet runs it; the Docker engine stands for the CRI socket.
        agent_env = plain_env(agent_daemonset(), "agent")
        agent_env.pop("PODCAP_CRI_SOCKET")
        node = unique("img-node")
        agent_name, agent_vol = unique("img-agent"), unique("img-agent-data")
        client.volumes.create(agent_vol)
        made["volumes"].append(agent_vol)
        agent = client.containers.create(
            image, container(agent_daemonset(), "agent")["args"], name=agent_name,
            user="0:0", pid_mode="host", read_only=True, cap_drop=["ALL"],
            cap_add=agent_capabilities(), tmpfs={"/tmp": "size=64m"},
            volumes={**_mount(agent_vol, agent_env["PODCAP_DATA_DIR"]),
                     "/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}},
            environment={**agent_env, "PODCAP_RUNTIME": "docker", "PODCAP_NODE_NAME": node,
                         "PODCAP_JOIN_TOKEN": join_token},
            network=net)
        made["containers"].append(agent)
        agent.start()
        pods = Pods(ctl, agent, url, token, node)
        wait_for(lambda: _connected(pods, agent), timeout=60, interval=0.3,
                 what="the agent to join and connect")
        yield pods


def _healthy(url: str, ctl) -> bool:
    ctl.reload()
    assert ctl.status in ("created", "running"), ctl.logs().decode(errors="replace")
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url + "/healthz", verify=False, timeout=2).status_code == 200
    return False


def _connected(pods: Pods, agent) -> bool:
    agent.reload()
    assert agent.status in ("created", "running"), agent.logs().decode(errors="replace")
    with pods.client() as c:
        agents = c.get("/api/agents").json()["agents"]
    return any(a["node"] == pods.node and a["connected"] for a in agents)


@pytest.fixture(scope="module")
def pair(pods: Pods) -> Iterator[WebPair]:
    with web_pair("img") as p:
        yield p


def test_agent_captures_a_container_through_the_controller(pods: Pods, pair: WebPair) -> None:
    with pods.client() as c:
        wl = c.get(f"/v1/workload/{pair.web.id}").json()["workload"]
        assert wl["host_name"] == pods.node and wl["cap_sniff"] is True, wl
        r = c.post("/v1/sniffer", params={"f_workload": pair.web.id},
                   json={"sniffer": {"filter": "tcp port 80", "duration": 60}})
        assert r.status_code == 200, r.text
        cid = r.json()["result"]["id"]
        time.sleep(2.5)  # the client fetches five times a second
        r = c.patch(f"/v1/sniffer/stop/{cid}")
        assert r.status_code == 200, r.text
        sniffer = c.get(f"/v1/sniffer/{cid}").json()["sniffer"]
        assert sniffer["status"] == "stopped", sniffer
        r = c.get(f"/api/captures/{cid}/pcap")
        assert r.status_code == 200, r.text
    linktype, packets = read_pcap(r.content)
    assert linktype == 276  # LINUX_SLL2: tcpdump -i any
    flows = tcp_flows(packets)
    assert {(pair.client_ip, pair.web_ip), (pair.web_ip, pair.client_ip)} <= flows, flows
    assert len(packets) >= 20


def test_podcap_own_containers_are_refused(pods: Pods) -> None:
    """The controller by its label (podcap.self=true, as on its pod); the agent by the
    runtime's bind mounts of /etc/hostname and friends, which name its own container."""
    assert "podcap.self" not in (pods.agent.labels or {})
    with pods.client() as c:
        for target in (pods.controller, pods.agent):
            wl = c.get(f"/v1/workload/{target.id}").json()["workload"]
            assert wl["cap_sniff"] is False and wl["cap_sniff_reason"] == SELF, wl
            r = c.post("/v1/sniffer", params={"f_workload": target.id}, json={"sniffer": {}})
            assert r.status_code == 400, r.text
            assert SELF in r.json()["message"], r.text


def test_controller_runs_as_non_root(pods: Pods) -> None:
    pods.controller.reload()
    pid = pods.controller.attrs["State"]["Pid"]
    uids = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith("Uid:"))
    assert uids.split()[1:] == ["10001"] * 4, uids
    # What the kubelet's probe asks: /healthz on the pod's address, Host: localhost.
    ip = next(iter(pods.controller.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
    r = httpx.get(f"https://{ip}:10443/healthz", verify=False, headers={"Host": "localhost"})
    assert r.status_code == 200, r.text


def test_agent_exec_probe(pods: Pods) -> None:
    """The DaemonSet's probe command, run in the agent container: passes, and fails with the
    reason when the runtime socket does not answer."""
    command = container(agent_daemonset(), "agent")["livenessProbe"]["exec"]["command"]
    code, out = pods.agent.exec_run(command)
    assert code == 0, out
    code, out = pods.agent.exec_run(command, environment={
        "PODCAP_DOCKER_SOCKET": "unix:///run/none.sock"})
    assert code == 1 and b"runtime socket /run/none.sock does not answer" in out, out


@pytest.mark.parametrize("role", ["controller", "agent", "serve"])
def test_one_image_three_roles(image: str, role: str) -> None:
    out = docker_client().containers.run(image, [role, "--help"], remove=True)
    assert b"Usage: podcap " + role.encode() in out
