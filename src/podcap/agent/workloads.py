"""All runtimes of a node as one workload view, with the one rule that decides cap_sniff.

A listing is never older than the request that asked for it: concurrent requests share one
refresh that began after they arrived, so a container started just before a request is always
in its answer, and a burst of requests costs one runtime round.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from pathlib import Path

from podcap.errors import NotFound, Unavailable
from podcap.model import Workload
from podcap.runtime.base import ContainerRuntime

log = logging.getLogger("podcap.agent")

HOST_NETWORK = "host network"
NOT_RUNNING = "not running"
SELF = "podcap's own container"


def assess(workload: Workload, agent_netns: int | None, self_ids: frozenset[str]) -> Workload:
    """Decide whether a capture may start, with the reason a user sees when not."""
    reason = ""
    if workload.id in self_ids or workload.labels.get("podcap.self") == "true":
        reason = SELF
    elif not workload.running:
        reason = NOT_RUNNING
    elif workload.host_network or (agent_netns is not None and workload.netns == agent_netns):
        reason = HOST_NETWORK
    return dataclasses.replace(workload, cap_sniff=not reason, cap_sniff_reason=reason)


def own_container_ids() -> frozenset[str]:
    """Ids of the container podcap itself runs in, read from our cgroup and mount table (both
    name the container id on Docker and containerd)."""
    found: set[str] = set()
    for path in ("/proc/self/cgroup", "/proc/self/mountinfo"):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        for token in text.replace("/", " ").replace("-", " ").replace(".", " ").split():
            if len(token) == 64 and all(c in "0123456789abcdef" for c in token):
                found.add(token)
    return frozenset(found)


class WorkloadView:
    def __init__(self, runtimes: list[ContainerRuntime]) -> None:
        self.runtimes = runtimes
        self._agent_netns = _own_netns()
        self._self_ids = own_container_ids()
        self._lock = threading.Lock()
        self._cache: list[Workload] = []
        self._cache_began = -1.0  # when the refresh behind the cache started

    def list(self) -> list[Workload]:
        asked = time.monotonic()
        with self._lock:
            if self._cache_began < asked:
                began = time.monotonic()
                workloads: list[Workload] = []
                for runtime in self.runtimes:
                    try:
                        workloads += runtime.list()
                    except Unavailable as exc:
                        log.warning("runtime %s unavailable: %s", runtime.name, exc.message)
                self._cache = [self._assess(w) for w in workloads]
                self._cache_began = began
            return list(self._cache)

    def get(self, workload_id: str) -> Workload:
        """Fresh from the runtime: a start must see the container as it is now."""
        for runtime in self.runtimes:
            try:
                return self._assess(runtime.get(workload_id))
            except NotFound:
                continue
        # Not an id: a unique name (or pod name) is accepted too, as users type names.
        matches = [w for w in self.list() if workload_id in (w.name, w.id[:12])]
        if len(matches) == 1:
            return matches[0]
        raise NotFound(f"workload {workload_id} not found")

    def _assess(self, workload: Workload) -> Workload:
        return assess(workload, self._agent_netns, self._self_ids)

    def close(self) -> None:
        for runtime in self.runtimes:
            runtime.close()


def _own_netns() -> int | None:
    try:
        return os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return None
