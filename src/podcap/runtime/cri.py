"""Kubernetes nodes: pods and containers of containerd or CRI-O through the CRI ``runtime.v1`` API.

One adapter serves every CRI runtime; only the socket differs. Each pod sandbox is reported as a
workload of kind ``pod`` (capturing it captures the pod's shared network namespace) and each
container as kind ``container`` carrying its pod's name, namespace, IPs and network mode. The
pid comes from the verbose status ``info["info"]`` JSON, which both containerd and CRI-O fill.

Naming: a pod's workload name is the pod name; a container's is ``<pod>_<container>`` ("_"
cannot occur in Kubernetes names, so the split is unambiguous, and the name stays safe in a file
name). ``pod_id`` is the sandbox id, i.e. the workload id of the pod.
"""

from __future__ import annotations

import json
import os
from typing import Any

import grpc

from podcap.errors import NotFound, Unavailable
from podcap.ids import full_workload_id
from podcap.model import Workload
from podcap.runtime.base import ExitStatus, netns_inode, proc_start_time

try:
    from podcap.runtime.cri_proto import api_pb2 as pb
    from podcap.runtime.cri_proto import api_pb2_grpc as pb_grpc
except ImportError as exc:  # generated files are not committed
    raise ImportError("the CRI gRPC stubs are missing: run `make proto` (or `make setup`)") from exc

_CONTAINER_STATES = {
    pb.CONTAINER_CREATED: "created",
    pb.CONTAINER_RUNNING: "running",
    pb.CONTAINER_EXITED: "exited",
    pb.CONTAINER_UNKNOWN: "unknown",
}
_NETWORK_MODES = {pb.POD: "pod", pb.CONTAINER: "container", pb.NODE: "node", pb.TARGET: "target"}
_UID_LABEL = "io.kubernetes.pod.uid"
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class CriRuntime:
    """A ``ContainerRuntime`` over one CRI socket (containerd, CRI-O, k3s)."""

    name = "cri"

    def __init__(self, socket: str, node: str, timeout: float = 5.0) -> None:
        self.socket = socket.removeprefix("unix://")
        self.node = node
        self.timeout = timeout
        self._channel = grpc.insecure_channel(f"unix://{self.socket}")
        self._stub = pb_grpc.RuntimeServiceStub(self._channel)

    def version(self) -> str:
        """``"<runtime> <version>"``; raises ``Unavailable`` when nothing speaks CRI here —
        Docker's own containerd, for one, listens on the usual socket without the CRI plugin."""
        resp = self._call("Version", pb.VersionRequest(version="v1"))
        return f"{resp.runtime_name} {resp.runtime_version}"

    def list(self) -> list[Workload]:
        pods: dict[str, Workload] = {}
        for sandbox in self._call("ListPodSandbox", pb.ListPodSandboxRequest()).items:
            try:
                pods[sandbox.id] = self._pod(sandbox.id)
            except NotFound:
                continue  # removed between the list and the status call
        workloads = list(pods.values())
        for container in self._call("ListContainers", pb.ListContainersRequest()).containers:
            try:
                workloads.append(self._container(container.id, pods.get(container.pod_sandbox_id)))
            except NotFound:
                continue
        return workloads

    def get(self, workload_id: str) -> Workload:
        """By full id only: containerd resolves any unique prefix, even one character, which
        would let a typo select some container. A full id (64 characters) is a prefix of no
        other id, and the CRI looks up no names."""
        workload_id = full_workload_id(workload_id)
        try:
            return self._container(workload_id, None)
        except NotFound:
            pass
        try:
            return self._pod(workload_id)
        except NotFound:
            raise NotFound(
                f"no CRI container or pod {workload_id!r} on node {self.node}") from None

    def exit_status(self, workload_id: str) -> ExitStatus:
        """``ContainerStatus``: its state, ``exit_code`` and ``reason`` (``OOMKilled``,
        ``Error``, ``Completed``)."""
        resp = self._call("ContainerStatus",
                          pb.ContainerStatusRequest(container_id=full_workload_id(workload_id)),
                          what=f"container {workload_id!r}")
        status = resp.status
        running = status.state == pb.CONTAINER_RUNNING
        return ExitStatus(running=running, pid=None,
                          exit_code=None if running else status.exit_code, reason=status.reason)

    def close(self) -> None:
        self._channel.close()

    # ---- one pod, one container ---------------------------------------------------------

    def _pod(self, sandbox_id: str) -> Workload:
        resp = self._call("PodSandboxStatus",
                          pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=True),
                          what=f"pod {sandbox_id!r}")
        status, info = resp.status, _info(resp.info)
        ready = status.state == pb.SANDBOX_READY
        pid = (_pid(info) or self._member_pid(status.id)) if ready else None
        netns = netns_inode(pid) if pid else None
        mode = status.linux.namespaces.options.network
        network = status.network
        labels = dict(status.labels)
        if status.metadata.uid:
            labels.setdefault(_UID_LABEL, status.metadata.uid)
        return Workload(
            id=status.id, name=status.metadata.name, runtime=self.name, node=self.node,
            kind="pod", image=str(info.get("image", "")),
            state="running" if ready else "exited",
            pid=pid, pid_start=proc_start_time(pid) if pid else None, netns=netns,
            network_mode=_NETWORK_MODES.get(mode, str(mode)),
            host_network=mode == pb.NODE or _is_host_netns(netns),
            ips=tuple(ip for ip in (network.ip, *(a.ip for a in network.additional_ips)) if ip),
            labels=labels, pod_name=status.metadata.name, pod_id=status.id,
            namespace=status.metadata.namespace,
            created=status.created_at / 1e9,
        )

    def _container(self, container_id: str, pod: Workload | None) -> Workload:
        resp = self._call("ContainerStatus",
                          pb.ContainerStatusRequest(container_id=container_id, verbose=True),
                          what=f"container {container_id!r}")
        status, info = resp.status, _info(resp.info)
        if pod is None:
            sandbox_id = str(info.get("sandboxID") or "") or self._sandbox_of(status.id)
            try:
                pod = self._pod(sandbox_id) if sandbox_id else None
            except NotFound:
                pod = None  # the sandbox went first; report the container without pod facts
        state = _CONTAINER_STATES.get(status.state, "unknown")
        pid = _pid(info) if state == "running" else None
        netns = netns_inode(pid) if pid else None
        name = status.metadata.name
        return Workload(
            id=status.id, name=f"{pod.pod_name}_{name}" if pod else name, runtime=self.name,
            node=self.node, kind="container",
            image=status.image.image or status.image_ref, state=state,
            pid=pid, pid_start=proc_start_time(pid) if pid else None, netns=netns,
            network_mode=pod.network_mode if pod else "",
            host_network=(pod.host_network if pod else False) or _is_host_netns(netns),
            ips=pod.ips if pod else (),
            # The pod's labels are the container's too (as Kubernetes selects them): app=…,
            # podcap.self=true on podcap's own pod.
            labels={**(pod.labels if pod else {}), **status.labels},
            pod_name=pod.pod_name if pod else "", pod_id=pod.id if pod else "",
            namespace=pod.namespace if pod else "", container_name=name,
            created=status.created_at / 1e9,
        )

    def _member_pid(self, sandbox_id: str) -> int | None:
        """A pid in the pod's namespace when the sandbox reports none: CRI-O drops the infra
        container by default (``drop_infra_ctr``), so only the pod's containers have processes."""
        running = pb.ContainerFilter(pod_sandbox_id=sandbox_id, state=pb.ContainerStateValue(
            state=pb.CONTAINER_RUNNING))
        for container in self._call("ListContainers",
                                    pb.ListContainersRequest(filter=running)).containers:
            try:
                resp = self._call("ContainerStatus", pb.ContainerStatusRequest(
                    container_id=container.id, verbose=True))
            except NotFound:
                continue
            pid = _pid(_info(resp.info))
            if pid:
                return pid
        return None

    def _sandbox_of(self, container_id: str) -> str:
        """The pod of a container whose verbose info does not name it."""
        listed = self._call("ListContainers", pb.ListContainersRequest(
            filter=pb.ContainerFilter(id=container_id))).containers
        return listed[0].pod_sandbox_id if listed else ""

    def _call(self, method: str, request: Any, what: str = "") -> Any:
        """One RPC with a deadline; gRPC errors become podcap's own."""
        try:
            return getattr(self._stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
            details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            if code == grpc.StatusCode.NOT_FOUND:
                raise NotFound(f"no CRI {what or 'object'} on node {self.node}: {details}") from exc
            if code in _UNREACHABLE:
                raise Unavailable(
                    f"the CRI runtime at {self.socket} cannot be reached: {details}") from exc
            if code == grpc.StatusCode.UNIMPLEMENTED:
                raise Unavailable(
                    f"{self.socket} does not serve the CRI runtime.v1 API: {details}") from exc
            raise Unavailable(
                f"CRI {method} at {self.socket} failed ({code.name}): {details}") from exc


def _info(info: Any) -> dict[str, Any]:
    """The verbose ``info["info"]`` JSON; absent or malformed means no extra facts."""
    try:
        value = json.loads(info.get("info", "") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _pid(info: dict[str, Any]) -> int | None:
    pid = info.get("pid")
    return pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None


def _is_host_netns(netns: int | None) -> bool:
    """True when the workload's namespace is the node's own: capturing it would capture the
    whole node, whatever the runtime claims about the pod. The node's is pid 1's; where pid 1
    is shielded (some sandboxes deny it even to root), the agent's own, which runs there."""
    if netns is None:
        return False
    return netns == (netns_inode(1) or netns_inode(os.getpid()))
