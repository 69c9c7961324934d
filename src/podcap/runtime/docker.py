"""Docker Engine adapter: containers through the docker SDK, facts only."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import docker
import docker.errors
import requests.exceptions

from podcap.errors import NotFound, Unavailable
from podcap.ids import full_workload_id
from podcap.model import Workload
from podcap.runtime.base import ExitStatus, netns_inode, proc_start_time, process_alive

log = logging.getLogger("podcap.runtime")

_POD_NAME = "io.kubernetes.pod.name"
_POD_NAMESPACE = "io.kubernetes.pod.namespace"
_POD_UID = "io.kubernetes.pod.uid"
_CONTAINER_NAME = "io.kubernetes.container.name"


class DockerRuntime:
    name = "docker"

    def __init__(self, socket_url: str = "unix:///var/run/docker.sock", node: str = "") -> None:
        self._node = node
        # Running containers as last inspected. A cached entry stays valid while its pid lives
        # with the same start time: a restart or exit always changes that.
        self._inspected: dict[str, Workload] = {}
        try:
            self._client = docker.DockerClient(base_url=socket_url, timeout=10)
        except docker.errors.DockerException as exc:
            raise Unavailable(f"cannot reach Docker at {socket_url}: {exc}") from exc

    def list(self) -> list[Workload]:
        """One /containers/json call; an inspection only for running containers not seen
        before (summaries lack the pid), so a node with 100 containers costs one request."""
        try:
            summaries = self._client.api.containers(all=True)
            workloads = [self._running(s["Id"]) if s.get("State") == "running"
                         else self._summary_workload(s) for s in summaries]
        except NotFound:
            return self.list()  # a container vanished between list and inspect; list again
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise Unavailable(f"Docker engine error: {exc}") from exc
        alive = {s["Id"] for s in summaries}
        for gone in set(self._inspected) - alive:
            del self._inspected[gone]
        return workloads

    def _running(self, workload_id: str) -> Workload:
        cached = self._inspected.get(workload_id)
        if cached is not None and cached.pid and process_alive(cached.pid, cached.pid_start):
            return cached
        return self._workload(self._inspect(workload_id))

    def get(self, workload_id: str) -> Workload:
        """By full id only. Docker's inspect also takes a name or any unique id prefix, and
        looks for a name before a prefix, so a container may even be *named* like another's
        id: the answer must carry exactly the id asked for."""
        wid = full_workload_id(workload_id)
        try:
            attrs = self._inspect(wid)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise Unavailable(f"Docker engine error: {exc}") from exc
        if attrs.get("Id") != wid:
            raise NotFound(f"workload {wid} not found")
        return self._workload(attrs)

    def watch(self, wake: Callable[[], None], closing: threading.Event) -> None:
        """Until ``closing``: ``wake()`` at each container event Docker reports (start, die,
        destroy, rename…), so the agent's feed relists at once instead of polling the engine
        (a list cost Docker 77 ms of CPU in bench figure 6). A broken stream is opened again
        after a second; once it is open again, a wake covers what happened while it was not
        (a restarted engine's containers come back before its stream does: without it they
        were listed only at the next periodic relist, 30 s later)."""
        while not closing.is_set():
            try:
                events = self._client.events(decode=True, filters={"type": "container"})
                wake()
                for _ in events:
                    wake()
                    if closing.is_set():
                        return
            except (docker.errors.DockerException, requests.exceptions.RequestException,
                    OSError) as exc:
                log.debug("docker events: %s", exc)
            wake()
            closing.wait(1.0)

    def exit_status(self, workload_id: str) -> ExitStatus:
        """From ``inspect``: ``State.ExitCode``, and ``OOMKilled`` when the kernel's OOM killer
        ended it (Docker's ``oom`` event comes before ``die``; the state keeps both)."""
        try:
            state = self._inspect(full_workload_id(workload_id)).get("State") or {}
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise Unavailable(f"Docker engine error: {exc}") from exc
        return ExitStatus(running=bool(state.get("Running")), pid=state.get("Pid") or None,
                          exit_code=state.get("ExitCode"),
                          reason="OOMKilled" if state.get("OOMKilled") else
                          ("Error" if state.get("ExitCode") else ""))

    def close(self) -> None:
        self._client.close()

    def _inspect(self, workload_id: str) -> dict[str, Any]:
        try:
            return self._client.api.inspect_container(workload_id)
        except docker.errors.NotFound as exc:
            raise NotFound(f"workload {workload_id} not found") from exc

    def _workload(self, attrs: dict[str, Any]) -> Workload:
        workload = self._facts(attrs)
        if workload.pid:
            self._inspected[workload.id] = workload
        return workload

    def _facts(self, attrs: dict[str, Any]) -> Workload:
        """An inspection: everything, the pid and namespace included when running."""
        state = attrs.get("State") or {}
        config = attrs.get("Config") or {}
        status = state.get("Status", "")
        pid = (state.get("Pid") or None) if status == "running" else None
        return self._common(
            id=attrs["Id"], name=attrs.get("Name", ""), image=config.get("Image", ""),
            state=status, labels=config.get("Labels") or {},
            mode=(attrs.get("HostConfig") or {}).get("NetworkMode", ""),
            networks=(attrs.get("NetworkSettings") or {}).get("Networks") or {},
            created=_timestamp(attrs.get("Created", "")),
            pid=pid, pid_start=proc_start_time(pid) if pid else None,
            netns=netns_inode(pid) if pid else None)

    def _summary_workload(self, summary: dict[str, Any]) -> Workload:
        """A /containers/json entry: enough for a container that is not running."""
        return self._common(
            id=summary["Id"], name=(summary.get("Names") or [""])[0],
            image=summary.get("Image", ""), state=summary.get("State", ""),
            labels=summary.get("Labels") or {},
            mode=(summary.get("HostConfig") or {}).get("NetworkMode", ""),
            networks=(summary.get("NetworkSettings") or {}).get("Networks") or {},
            created=float(summary.get("Created", 0)))

    def _common(self, *, id: str, name: str, labels: dict[str, str], mode: str,
                networks: dict[str, Any], **facts: Any) -> Workload:
        return Workload(
            id=id, name=name.lstrip("/"), runtime=self.name, node=self._node,
            network_mode=mode, host_network=mode == "host",
            ips=tuple(n["IPAddress"] for n in networks.values() if n.get("IPAddress")),
            labels=dict(labels),
            pod_name=labels.get(_POD_NAME, ""),
            pod_id=labels.get(_POD_UID, ""),
            namespace=labels.get(_POD_NAMESPACE, ""),
            container_name=labels.get(_CONTAINER_NAME, ""),
            **facts)


def _timestamp(text: str) -> float:
    if not text:
        return 0.0
    try:  # Docker gives nanoseconds; fromisoformat takes at most microseconds.
        head, _, frac = text.rstrip("Z").partition(".")
        return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00").timestamp()
    except ValueError:
        return 0.0
