"""The CRI adapter and the runtime factory against a real containerd with real pods."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest

from podcap.config import Settings
from podcap.errors import InvalidArgument, NotFound, Unavailable
from podcap.runtime.base import netns_inode
from podcap.runtime.cri import CriRuntime
from podcap.runtime.cri_proto import api_pb2 as pb
from podcap.runtime.factory import open_runtimes
from tests.cri.cri_testbed import Pods
from tests.support import wait_for

pytestmark = pytest.mark.cri
HOST_NETNS = netns_inode(os.getpid())  # the tests run in the node's network namespace
DOCKER_CONTAINERD = "/var/run/docker/containerd/containerd.sock"  # containerd without CRI


@pytest.fixture
def cri(pods: Pods):
    runtime = CriRuntime(str(pods.bed.socket), node="node-a")
    yield runtime
    runtime.close()


def sandbox_netns(pods: Pods, sandbox_id: str) -> int:
    """Inode of the network namespace containerd made for the sandbox: the path in the
    sandbox's OCI runtime spec (verbose PodSandboxStatus), independent of any process."""
    import json
    resp = pods.bed.runtime.PodSandboxStatus(
        pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=True), timeout=10)
    spec = json.loads(resp.info["info"])["runtimeSpec"]
    (path,) = [ns["path"] for ns in spec["linux"]["namespaces"] if ns["type"] == "network"]
    return os.stat(path).st_ino


def test_two_pods_talk_http(pods: Pods) -> None:
    log = pods.bed.dir / "logs" / "client" / "client.log"
    # wget -O - copies each page to stdout, which the CRI writes to the container's log
    wait_for(lambda: log.exists() and log.read_text().count(" stdout ") >= 3,
             timeout=10, what="three HTTP answers in the client pod's log")
    assert "wget:" not in log.read_text()  # no "wget: can't connect" and the like


def test_lists_pods_with_name_namespace_ip_and_pid(pods: Pods, cri: CriRuntime) -> None:
    by_id = {w.id: w for w in cri.list()}
    for pod in (pods.web, pods.client):
        wl = by_id[pod.sandbox_id]
        assert (wl.kind, wl.runtime, wl.node, wl.state) == ("pod", "cri", "node-a", "running")
        assert (wl.name, wl.pod_name, wl.namespace, wl.pod_id) == (
            pod.name, pod.name, "podcap-test", pod.sandbox_id)
        assert wl.ips == (pod.ip,) and pod.ip.startswith("10.88.77.")
        assert wl.pid and wl.pid_start and wl.netns == netns_inode(wl.pid)
        # The pod's own namespace, as containerd created it (not derived from any pid): a pid
        # of the wrong pod has a network namespace too, but not this one.
        assert wl.netns == sandbox_netns(pods, pod.sandbox_id)
        assert wl.network_mode == "pod" and not wl.host_network
        assert wl.netns != HOST_NETNS
        assert wl.labels["app"] == pod.name
        assert wl.labels["io.kubernetes.pod.uid"] == pod.config.metadata.uid
        assert not wl.cap_sniff and wl.cap_sniff_reason == ""  # the agent decides, not us


def test_lists_containers_in_their_pods_namespace(pods: Pods, cri: CriRuntime) -> None:
    by_id = {w.id: w for w in cri.list()}
    for pod in (pods.web, pods.client):
        ctr, sandbox = by_id[pod.container_id], by_id[pod.sandbox_id]
        assert (ctr.kind, ctr.state, ctr.container_name) == ("container", "running", pod.name)
        assert ctr.name == f"{pod.name}_{pod.name}"
        assert (ctr.pod_name, ctr.pod_id, ctr.namespace) == (pod.name, pod.sandbox_id,
                                                             "podcap-test")
        assert ctr.ips == (pod.ip,) and ctr.image.endswith("podcap-test/busybox:1")
        assert ctr.pid and ctr.pid != sandbox.pid and ctr.pid_start
        assert ctr.netns == sandbox.netns == sandbox_netns(pods, pod.sandbox_id)  # one per pod
        cgroup = Path(f"/proc/{ctr.pid}/cgroup").read_text()
        assert pod.container_id in cgroup  # the pid really is that container's


def test_get_by_id_and_unknown_id(pods: Pods, cri: CriRuntime) -> None:
    listed = {w.id: w for w in cri.list()}
    for ident in (pods.web.container_id, pods.web.sandbox_id):
        assert cri.get(ident) == listed[ident]
        for prefix in (ident[:12], ident[:3]):  # containerd alone would resolve a prefix
            with pytest.raises(InvalidArgument, match="full workload id"):
                cri.get(prefix)  # short ids are the controller's to resolve
    with pytest.raises(NotFound, match="no CRI container or pod"):
        cri.get("0" * 64)
    with pytest.raises(InvalidArgument):
        cri.get("")


def test_host_network_pod_is_reported_as_such(pods: Pods, cri: CriRuntime) -> None:
    for ident in (pods.hostnet.sandbox_id, pods.hostnet.container_id):
        wl = cri.get(ident)
        assert wl.host_network and wl.network_mode == "node" and wl.ips == ()
        assert wl.netns == HOST_NETNS


def test_stopped_and_removed_pod(pods: Pods, cri: CriRuntime) -> None:
    pod = pods.bed.run_pod("short", ["sleep", "3600"])
    pods.bed.runtime.StopContainer(pb.StopContainerRequest(container_id=pod.container_id,
                                                           timeout=0), timeout=10)
    ctr = cri.get(pod.container_id)
    assert (ctr.state, ctr.pid, ctr.netns) == ("exited", None, None)
    assert cri.get(pod.sandbox_id).state == "running"
    pods.bed.remove_pod(pod.sandbox_id)
    for ident in (pod.container_id, pod.sandbox_id):
        with pytest.raises(NotFound):
            cri.get(ident)
    assert not {pod.container_id, pod.sandbox_id} & {w.id for w in cri.list()}


def test_unreachable_socket_is_unavailable(tmp_path: Path) -> None:
    runtime = CriRuntime(str(tmp_path / "none.sock"), node="n", timeout=2)
    with pytest.raises(Unavailable, match="cannot be reached") as info:
        runtime.list()
    assert isinstance(info.value.__cause__, grpc.RpcError)
    runtime.close()


def test_factory_cri_and_unknown_name(pods: Pods) -> None:
    [runtime] = open_runtimes(Settings(runtime="cri", cri_socket=str(pods.bed.socket)))
    try:
        assert runtime.name == "cri"
        assert pods.web.sandbox_id in {w.id for w in runtime.list()}
    finally:
        runtime.close()
    with pytest.raises(InvalidArgument, match="use one of docker, cri, auto"):
        open_runtimes(Settings(runtime="kubernetes"))
    with pytest.raises(Unavailable, match="none.sock"):
        open_runtimes(Settings(runtime="cri", cri_socket="/nonexistent/none.sock"))


def test_factory_auto_picks_only_sockets_that_answer_cri(
        pods: Pods, caplog: pytest.LogCaptureFixture) -> None:
    """Docker's own containerd answers gRPC but has no CRI plugin: auto must skip it."""
    caplog.set_level("INFO", logger="podcap.runtime")
    runtimes = []
    for socket in (str(pods.bed.socket), DOCKER_CONTAINERD):
        if not os.path.exists(socket):
            continue
        found = open_runtimes(Settings(runtime="auto", cri_socket=socket))
        runtimes += found
        cri_sockets = [r.socket for r in found if r.name == "cri"]
        assert cri_sockets == ([str(pods.bed.socket)] if socket != DOCKER_CONTAINERD else [])
    for runtime in runtimes:
        runtime.close()
    assert "using CRI containerd" in caplog.text and str(pods.bed.socket) in caplog.text
    if os.path.exists(DOCKER_CONTAINERD):
        assert f"not using {DOCKER_CONTAINERD}" in caplog.text


def test_a_pod_labelled_podcap_self_is_refused_with_its_containers(pods: Pods) -> None:
    """What the manifests do for the controller's pod: the label is on the pod only."""
    from podcap.agent.workloads import SELF, WorkloadView

    own = pods.bed.run_pod("own", ["sleep", "3600"], pod_labels={"podcap.self": "true"})
    view = WorkloadView([CriRuntime(str(pods.bed.socket), node="n")])
    try:
        for wid in (own.sandbox_id, own.container_id):
            workload = view.get(wid)
            assert workload.labels["podcap.self"] == "true"
            assert not workload.cap_sniff and workload.cap_sniff_reason == SELF
        assert view.get(pods.web.container_id).cap_sniff  # an unlabelled pod is capturable
    finally:
        view.close()
        pods.bed.remove_pod(own.sandbox_id)
