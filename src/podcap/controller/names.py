"""What each workload address is called in the pcapng files podcap writes: the controller's view
of every node (``CaptureService.workloads``, as the caller may see it) turned into
``pcap/names.Name`` entries for a writer's ``Namer``.

- A pod's address is ``pod.namespace`` (what a Kubernetes user types: one pod, every container
  in it); a plain Docker container's is its name.
- Only running workloads with an address of their own: a stopped one holds none, and a
  host-network workload reports the node's address, which is not its alone.
- An address two workloads claim under different names is left unnamed (never a name that was
  not true).
- A name is true from the workload's creation (``Name.since_ns``); the earliest of the
  workloads sharing the name (a pod's sandbox and containers) counts. (A Docker container
  stopped and started again may get another address; its start time does not reach the
  controller yet, so its creation stands for it.)
- Every capture names its own workload for its span (start to stop, from its record): a pod
  that is gone by the time of the download is still named if it was captured.
- Service cluster IPs: no runtime tells a node about Kubernetes Services, so podcap reads a
  label convention: a running pod labelled ``service.podcap.io/<service>=<cluster IPv4>`` names
  that address ``<service>.<namespace>.svc`` (what cluster DNS calls it). Only where the
  namespace is trusted (CRI; Docker with --trust-namespace-labels): anyone who may `docker run`
  sets labels.
- The listing is the caller's: a file never names a workload its reader may not see.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from podcap.errors import PodcapError
from podcap.model import Workload
from podcap.pcap.names import Name

if TYPE_CHECKING:
    from podcap.controller.inventory import OwnedCapture
    from podcap.controller.principal import Principal
    from podcap.controller.service import CaptureService


def label(w: Workload) -> str:
    """The name of a workload's address."""
    if w.pod_name and w.namespace:
        return f"{w.pod_name}.{w.namespace}"
    return w.name


SERVICE_LABEL = "service.podcap.io/"


def _claims(w: Workload) -> Iterator[tuple[str, str]]:
    """(address, name) pairs a running workload vouches for: its own, its Services'."""
    if not w.host_network:
        text = label(w)
        for ip in w.ips:
            yield ip, text
    if not w.namespace:
        return
    for key, value in w.labels.items():
        if key.startswith(SERVICE_LABEL) and len(key) > len(SERVICE_LABEL):
            try:
                ip = str(ipaddress.IPv4Address(value))
            except ValueError:
                continue
            yield ip, f"{key[len(SERVICE_LABEL):]}.{w.namespace}.svc"


def names(workloads: list[Workload]) -> list[Name]:
    """The entries for these workloads, by the rules above."""
    found: dict[str, tuple[str, float]] = {}  # address -> (name, since)
    clashes: set[str] = set()
    for w in workloads:
        if not w.running:
            continue
        for ip, text in _claims(w):
            have = found.get(ip)
            if have is None:
                found[ip] = (text, w.created)
            elif have[0] != text:
                clashes.add(ip)
            else:
                found[ip] = (text, min(have[1], w.created))
    return [Name(ip, text, int(since * 1e9)) for ip, (text, since) in found.items()
            if ip not in clashes]


def captured(owned: OwnedCapture) -> list[Name]:
    """A capture's own workload, named from its creation (as a listed workload is: its
    capture's ``start_time`` is taken once tcpdump listens, after its first packets) until the
    capture's stop (its record: true by construction, since a capture ends when its container
    does)."""
    c = owned.capture
    w = dataclasses.replace(c.workload, namespace=owned.namespace)
    since = min(w.created or c.start_time, c.start_time)
    until = None if c.stop_time is None else int(c.stop_time * 1e9)
    return [Name(ip, label(w), int(since * 1e9), until) for ip in w.ips]


def lookup(service: CaptureService, who: Principal) -> Callable[[], list[Name]]:
    """A ``Namer``'s lookup: every node's workloads now and every capture's workload for its
    span (the only history podcap keeps: a pod gone by the time of the download is named if
    it was captured), as ``who`` may see them. A failed listing names nothing from it (the
    file is still written; the next asking may do better)."""
    def ask() -> list[Name]:
        found: list[Name] = []
        try:
            # The Namer takes an answer to hold whatever ran before it was asked (a pod's first
            # packet, then its name): the pushed views may lag by a relist, so every agent
            # looks now first (a command each; asked on a new address, else every 5 s).
            service.inventory.sync()
            found += [n for owned in service.captures(who).items for n in captured(owned)]
            found += names([p.workload for p in service.workloads(who).items])
        except PodcapError:
            pass
        return found
    return ask
