"""An agent's sessions with every controller replica (issue 20): one ``Uplink`` each.

Any replica may be asked to start, stop, download or follow on any node, so every agent keeps
a session with every replica, and each replica holds every node's pushed inventory. Where the
replicas are comes from ``--controller``: a list ``HOST:PORT,HOST:PORT``, or a name that
resolves to one address per replica (a headless Service in Kubernetes), or both. Names are
resolved again every ``CONTROLLER_RESOLVE_S``: a replica that appears gets a session, one
whose address is gone has its session closed; a failed look-up changes nothing. A name is
taken in one address family (IPv4 when it has any, else IPv6), so ``localhost`` is one
controller, not two.

Each uplink is a whole session of its own (its own snapshot and deltas from the one feed, its
own commands and uploads): a replica that dies costs the others nothing.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable

from podcap import limits
from podcap.transport.base import AgentTransport
from podcap.transport.grpc.join import Identity
from podcap.transport.grpc.uplink import Uplink
from podcap.views import Feed

log = logging.getLogger("podcap.agent.uplink")

Resolver = Callable[[str], list[str]]


def resolve_name(host: str) -> list[str]:
    """``host``'s addresses, one family (IPv4 first), in a stable order; [] when unknown."""
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    v4 = sorted({str(a[4][0]) for a in found if a[0] == socket.AF_INET})
    v6 = sorted({str(a[4][0]) for a in found if a[0] == socket.AF_INET6})
    return v4 or v6


def targets(spec: str, resolve: Resolver = resolve_name) -> list[str] | None:
    """The ``HOST:PORT`` of every replica ``spec`` names; None when a name did not resolve
    (the caller keeps what it has)."""
    found: list[str] = []
    for entry in (e.strip() for e in spec.split(",")):
        if not entry:
            continue
        host, _, port = entry.rpartition(":")
        host = host.strip("[]")
        try:
            ipaddress.ip_address(host)
            addresses = [host]
        except ValueError:
            addresses = resolve(host)
            if not addresses:
                return None
        for address in addresses:
            target = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
            if target not in found:
                found.append(target)
    return found


class Uplinks:
    """Keeps one ``Uplink`` per replica that ``spec`` names, for as long as the agent runs."""

    def __init__(self, transport: AgentTransport, spec: str, identity: Identity,
                 feed: Feed | None = None, resolve: Resolver = resolve_name,
                 every_s: float = limits.CONTROLLER_RESOLVE_S) -> None:
        self.transport = transport
        self.spec = spec
        self.identity = identity
        self.feed = feed
        self._resolve = resolve
        self._every = every_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.uplinks: dict[str, Uplink] = {}
        self._threads: dict[str, threading.Thread] = {}

    def run(self) -> None:
        """Until ``stop()``: resolve, start and end sessions; then end them all."""
        first = True
        while not self._stop.is_set():
            wanted = targets(self.spec, self._resolve)
            if wanted is None and first:
                wanted = [e.strip() for e in self.spec.split(",") if e.strip()]  # gRPC's DNS
            if wanted:
                self._converge(wanted)
            first = False
            self._stop.wait(self._every)
        with self._lock:
            ups = list(self.uplinks.values())
        for up in ups:
            up.stop()
        for thread in list(self._threads.values()):
            thread.join(timeout=5)

    def stop(self) -> None:
        self._stop.set()

    def _converge(self, wanted: list[str]) -> None:
        with self._lock:
            for address in [a for a in self.uplinks if a not in wanted]:
                log.info("controller %s is no longer named by %s: its session ends", address,
                         self.spec)
                self.uplinks.pop(address).stop()
                self._threads.pop(address, None)
            for address in wanted:
                if address in self.uplinks:
                    continue
                up = Uplink(self.transport, address, self.identity, feed=self.feed)
                thread = threading.Thread(target=up.run, name=f"podcap-uplink-{address}",
                                          daemon=True)
                self.uplinks[address] = up
                self._threads[address] = thread
                thread.start()
                if len(wanted) > 1:
                    log.info("keeping a session with controller %s (%d replicas)", address,
                             len(wanted))
