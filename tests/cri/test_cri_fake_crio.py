"""CRI-O's shape, against a stand-in CRI server over real gRPC on a unix socket.

CRI-O is not packaged for Debian 12, so it cannot run on the test machine; this fake stands in
for it, and only for what differs from containerd (which the rest of tests/cri runs for real):
with ``drop_infra_ctr`` (CRI-O's default) a sandbox has no process, so its verbose info carries
no pid, and a container's info may not name its sandbox. It also pins down how gRPC errors map.
No containerd needed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from podcap.errors import NotFound, Unavailable
from podcap.runtime.base import netns_inode, proc_start_time
from podcap.runtime.cri import CriRuntime
from podcap.runtime.cri_proto import api_pb2 as pb
from podcap.runtime.cri_proto import api_pb2_grpc as pb_grpc

POD, CTR, BROKEN = "a" * 64, "b" * 64, "c" * 64
META = pb.PodSandboxMetadata(name="api-0", uid="u-1", namespace="shop")


class FakeCrio(pb_grpc.RuntimeServiceServicer):
    """One ready pod without an infra process, one running container (this test's own pid)."""

    def Version(self, request, context):  # noqa: N802 - gRPC method names
        return pb.VersionResponse(runtime_name="cri-o", runtime_version="1.30.0")

    def ListPodSandbox(self, request, context):  # noqa: N802
        return pb.ListPodSandboxResponse(items=[pb.PodSandbox(id=POD, metadata=META)])

    def PodSandboxStatus(self, request, context):  # noqa: N802
        if request.pod_sandbox_id != POD:
            context.abort(grpc.StatusCode.NOT_FOUND, "could not find pod")
        return pb.PodSandboxStatusResponse(
            status=pb.PodSandboxStatus(
                id=POD, metadata=META, state=pb.SANDBOX_READY, created_at=1_700_000_000 * 10**9,
                network=pb.PodSandboxNetworkStatus(ip="10.1.2.3",
                                                   additional_ips=[pb.PodIP(ip="fd00::3")])),
            info={"info": json.dumps({"runtimeSpec": {}})})  # spoofed infra: no pid

    def ListContainers(self, request, context):  # noqa: N802
        ctr = pb.Container(id=CTR, pod_sandbox_id=POD, state=pb.CONTAINER_RUNNING,
                           metadata=pb.ContainerMetadata(name="api"))
        wanted = request.filter
        if (wanted.id and wanted.id != CTR) or (wanted.pod_sandbox_id not in ("", POD)):
            return pb.ListContainersResponse()
        return pb.ListContainersResponse(containers=[ctr])

    def ContainerStatus(self, request, context):  # noqa: N802
        if request.container_id == BROKEN:
            context.abort(grpc.StatusCode.INTERNAL, "storage is on fire")
        if request.container_id != CTR:
            context.abort(grpc.StatusCode.NOT_FOUND, "could not find container")
        return pb.ContainerStatusResponse(
            status=pb.ContainerStatus(id=CTR, metadata=pb.ContainerMetadata(name="api"),
                                      state=pb.CONTAINER_RUNNING,
                                      image=pb.ImageSpec(image="quay.io/shop/api:1")),
            info={"info": json.dumps({"pid": os.getpid()})})  # no sandboxID


@pytest.fixture
def crio(tmp_path: Path) -> Iterator[CriRuntime]:
    socket = tmp_path / "crio.sock"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_RuntimeServiceServicer_to_server(FakeCrio(), server)
    server.add_insecure_port(f"unix://{socket}")
    server.start()
    runtime = CriRuntime(str(socket), node="n1", timeout=3)
    yield runtime
    runtime.close()
    server.stop(0)


def test_pod_without_infra_process_is_entered_through_its_container(crio: CriRuntime) -> None:
    assert crio.version() == "cri-o 1.30.0"
    pod, ctr = sorted(crio.list(), key=lambda w: w.kind, reverse=True)
    assert (pod.kind, pod.id, pod.name, pod.namespace, pod.state) == (
        "pod", POD, "api-0", "shop", "running")
    assert pod.pid == os.getpid() and pod.netns == netns_inode(os.getpid())
    assert pod.pid_start == proc_start_time(os.getpid())
    assert pod.ips == ("10.1.2.3", "fd00::3") and pod.created == 1_700_000_000
    assert pod.labels["io.kubernetes.pod.uid"] == "u-1"
    assert (ctr.kind, ctr.name, ctr.pod_id, ctr.ips, ctr.image) == (
        "container", "api-0_api", POD, pod.ips, "quay.io/shop/api:1")


def test_container_without_sandbox_id_still_finds_its_pod(crio: CriRuntime) -> None:
    ctr = crio.get(CTR)
    assert (ctr.pod_name, ctr.pod_id, ctr.namespace, ctr.ips) == (
        "api-0", POD, "shop", ("10.1.2.3", "fd00::3"))


def test_grpc_errors_become_podcap_errors(crio: CriRuntime) -> None:
    with pytest.raises(NotFound):
        crio.get("d" * 64)
    with pytest.raises(Unavailable, match=r"ContainerStatus .* failed \(INTERNAL\): storage") as e:
        crio.get(BROKEN)
    assert isinstance(e.value.__cause__, grpc.RpcError)
