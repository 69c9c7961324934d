"""A running workload's addresses with their prefix lengths, as its network namespace has them:
what NeuVector's ``/v1/workload`` shows as ``interfaces`` (``eth0: 172.17.0.3/16``).

The runtimes do not say which interface holds which address, and CRI gives no prefix at all, so
the agent asks the namespace itself: ``ip -j addr`` run in the namespace (the snapshot's runner
and parser, take.py and parse.py: one reading of iproute2's JSON). NeuVector's rule for what to
list: global-scope addresses, loopback left out; a host-network workload's namespace is the
node's, so it lists the node's interfaces, as NeuVector's host-mode workloads do. One run costs
a few milliseconds (2-4 ms measured), so each namespace's answer is kept
``WORKLOAD_ADDRESSES_TTL_S`` (a listing of many containers does not fork per container each
time), the containers of one pod share their namespace's, and the namespaces a listing lacks are
read eight at a time.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from podcap import limits
from podcap.agent.netstate.parse import interfaces
from podcap.agent.netstate.take import IP, _CommandFailed, _json, _run_in
from podcap.model import Workload

log = logging.getLogger("podcap.agent")
_READERS = 8  # namespaces read at once (each an ip process)

Interfaces = tuple[tuple[str, str, int], ...]


def read(netns_fd: int) -> Interfaces:
    """(interface, address, prefix length) of each global address in the namespace."""
    errors: list[str] = []
    rows = interfaces(_json(_run_in(netns_fd, [IP, "-j", "addr", "show"]), "ip addr", errors))
    return tuple((str(i["ifname"]), str(a["address"]), int(a["prefixlen"]))
                 for i in rows if i["ifname"] != "lo"
                 for a in i["addresses"] if a["scope"] == "global" and a["prefixlen"] is not None)


class Addresses:
    """Each namespace's answer, by its inode and holder, for ``WORKLOAD_ADDRESSES_TTL_S``."""

    def __init__(self, ttl: float = limits.WORKLOAD_ADDRESSES_TTL_S) -> None:
        self._ttl = ttl
        self._lock = threading.Lock()
        # By the namespace's inode and the process that holds it: the kernel reuses a gone
        # namespace's inode, and a new container's namespace was shown the old one's addresses.
        self._cache: dict[tuple[int, int, int | None], tuple[float, Interfaces]] = {}

    def of(self, w: Workload) -> Interfaces:
        """The workload's interfaces; () when it is not running or its namespace cannot be read
        (gone meanwhile: its pid now another process's namespace is refused by inode)."""
        if not w.running or w.netns is None or w.pid is None:
            return ()
        now = time.monotonic()
        key = (w.netns, w.pid, w.pid_start)
        with self._lock:
            held = self._cache.get(key)
        if held is not None and now - held[0] < self._ttl:
            return held[1]
        try:
            fd = os.open(f"/proc/{w.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return ()
        try:
            if os.fstat(fd).st_ino != w.netns:
                return ()
            found = read(fd)
        except (_CommandFailed, KeyError, TypeError, ValueError) as exc:
            log.warning("workload %s: addresses unreadable: %s", w.id[:12], exc)
            return ()
        finally:
            os.close(fd)
        with self._lock:
            self._cache = {k: v for k, v in self._cache.items() if now - v[0] < self._ttl}
            self._cache[key] = (now, found)
        return found

    def of_all(self, workloads: list[Workload]) -> dict[str, Interfaces]:
        """Every workload's interfaces by id; each namespace read at most once, misses read
        ``_READERS`` at a time."""
        one: dict[int, Workload] = {}
        for w in workloads:
            if w.running and w.netns is not None:
                one.setdefault(w.netns, w)
        if len(one) > 1:
            with ThreadPoolExecutor(_READERS, thread_name_prefix="podcap-addresses") as pool:
                found = dict(zip(one, pool.map(self.of, one.values()), strict=True))
        else:
            found = {netns: self.of(w) for netns, w in one.items()}
        return {w.id: found.get(w.netns, ()) if w.netns is not None else () for w in workloads}
