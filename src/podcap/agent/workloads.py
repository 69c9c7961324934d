"""All runtimes of a node as one workload view, with the one rule that decides cap_sniff.

A listing is never older than the request that asked for it: concurrent requests share one
refresh that began after they arrived, so a container started just before a request is always
in its answer, and a burst of requests costs one runtime round.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from podcap.agent.lookup import StartLookup
from podcap.agent.netstate.addresses import Addresses
from podcap.errors import NotFound, Unavailable
from podcap.ids import full_workload_id
from podcap.model import Workload
from podcap.runtime.base import ContainerRuntime, ExitStatus, process_alive

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


# Files every runtime bind-mounts into a container from its own per-container directory.
_RUNTIME_FILES = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf")


def own_container_ids() -> frozenset[str]:
    """Ids of the container (or pod) podcap itself runs in. Our cgroup names it with cgroup
    v1; otherwise the sources of the runtime's bind mounts of /etc/hostname, /etc/hosts and
    /etc/resolv.conf do (``/var/lib/docker/containers/<id>/hostname``, containerd's
    ``sandboxes/<id>/hostname``). Only those mount points count: the host's mount table names
    every running container's rootfs, and an agent on the host is in none of them."""
    found: set[str] = set()
    with contextlib.suppress(OSError):
        found |= _hex_ids(Path("/proc/self/cgroup").read_text())
    with contextlib.suppress(OSError):
        found |= runtime_mount_ids(Path("/proc/self/mountinfo").read_text())
    return frozenset(found)


def runtime_mount_ids(mountinfo: str) -> set[str]:
    """Container ids in the sources (field 4) of mounts on the runtime's per-container files."""
    found: set[str] = set()
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] in _RUNTIME_FILES:
            found |= _hex_ids(fields[3])
    return found


def _hex_ids(text: str) -> set[str]:
    tokens = text.replace("/", " ").replace("-", " ").replace(".", " ").split()
    return {t for t in tokens if len(t) == 64 and all(c in "0123456789abcdef" for c in t)}


class WorkloadView:
    def __init__(self, runtimes: list[ContainerRuntime]) -> None:
        self.runtimes = runtimes
        self._agent_netns = _own_netns()
        self._self_ids = own_container_ids()
        self._lock = threading.Lock()
        self._cache: list[Workload] = []
        self._cache_began = -1.0  # when the refresh behind the cache started
        self._addresses = Addresses()

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
                addresses = self._addresses.of_all(workloads)
                self._cache = [dataclasses.replace(self._assess(w), interfaces=addresses[w.id])
                               for w in workloads]
                self._cache_began = began
            return list(self._cache)

    def get(self, workload_id: str) -> Workload:
        """Fresh from the runtime: a start must see the container as it is now. Only a full
        id (``InvalidArgument`` for anything else): which workload a name or a short id means
        is the controller's decision (controller/resolver.py), made once for every node."""
        wid = full_workload_id(workload_id)
        for runtime in self.runtimes:
            try:
                return self._assess(runtime.get(wid))
            except NotFound:
                continue
        raise NotFound(f"workload {wid} not found")

    def lookup(self, workload_id: str) -> StartLookup:
        """A start's workload (agent/lookup.py): the last listing's entry when it may be
        captured and its process lives on, and the runtime's fresh answer when asked."""
        wid = full_workload_id(workload_id)
        listed = next((w for w in self._cache if w.id == wid), None)  # a list swapped whole
        if listed is None or not listed.cap_sniff or not listed.pid or \
                not process_alive(listed.pid, listed.pid_start):
            listed = None
        return StartLookup(listed, lambda: self.get(wid))

    def exit_status(self, workload_id: str) -> ExitStatus | None:
        """How the container stands now, from the runtime that knows it (None: none does, or
        its runtime cannot tell)."""
        for runtime in self.runtimes:
            ask = getattr(runtime, "exit_status", None)
            if not callable(ask):
                continue
            try:
                status = ask(workload_id)
            except (NotFound, Unavailable):
                continue
            if isinstance(status, ExitStatus):
                return status
        return None

    @property
    def watched(self) -> bool:
        """Every runtime reports its events (Docker): the feed relists when woken."""
        return all(callable(getattr(r, "watch", None)) for r in self.runtimes)

    def watch(self, wake: Callable[[], None], closing: threading.Event) -> None:
        """Each runtime that has an event stream wakes the feed (agent/feed.py) from a
        thread of its own; the others are relisted on a timer."""
        for runtime in self.runtimes:
            watch = getattr(runtime, "watch", None)
            if callable(watch):
                threading.Thread(target=watch, args=(wake, closing), daemon=True,
                                 name=f"podcap-events-{runtime.name}").start()

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
