"""What a capture group is made of: its selector, its members, and the rules that pick them
(controller/groups.py runs the groups).

- A **selector** names workloads (the resolver's rule: id, short id, name), a namespace, a
  Kubernetes label selector (controller/selector.py), or a combination: every part given must hold.
- **Candidates** are running containers: pod sandboxes are not members (their containers are).
- Of containers that share one network namespace on a node (a pod's containers) only the first
  is captured: the others would add the same packets again; they are skipped with that reason,
  as is a container the agent cannot capture (host network, podcap's own).
- A group is **seen** by whoever may see every namespace its members live in (the owner always
  could: it matched only what it saw).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from podcap import limits
from podcap.controller.db import CaptureGroup, GroupMember
from podcap.controller.fanout import Unreachable
from podcap.controller.inventory import OwnedCapture, PlacedWorkload
from podcap.controller.principal import Principal
from podcap.controller.resolver import resolve
from podcap.controller.selector import LabelSelector, parse
from podcap.errors import InvalidArgument
from podcap.ids import workload_id
from podcap.model import CaptureSpec, Status
from podcap.pcap import pcapng

_GROUP_ID = re.compile(r"[0-9a-f]{24}")


def group_id(value: str) -> str:
    if not isinstance(value, str) or not _GROUP_ID.fullmatch(value):
        raise InvalidArgument(f"invalid capture group id {str(value)[:40]!r}: expected 24 "
                              "lowercase hex characters")
    return value


@dataclass(frozen=True)
class Selector:
    """What a group captures. Every part given must hold; at least one part is needed."""

    workloads: tuple[str, ...] = ()
    namespace: str = ""
    labels: str = ""
    parsed: LabelSelector | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, workloads: list[str] | tuple[str, ...] = (), namespace: str = "",
           labels: str = "") -> Selector:
        if not (workloads or namespace or labels.strip()):
            raise InvalidArgument("a capture group needs a selector: workloads, a namespace, "
                                  "a label selector (app=web,tier!=db), or a combination")
        if len(workloads) > limits.GROUP_WORKLOADS_MAX:
            raise InvalidArgument(f"{len(workloads)} workloads named; the maximum is "
                                  f"{limits.GROUP_WORKLOADS_MAX}")
        names = tuple(workload_id(w) for w in workloads)
        if namespace and not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", namespace):
            raise InvalidArgument(f"namespace {namespace[:70]!r} is not a Kubernetes "
                                  "namespace name (lowercase letters, digits, '-')")
        parsed = parse(labels) if labels.strip() else None
        return cls(names, namespace, labels.strip(), parsed)

    @classmethod
    def from_json(cls, text: str) -> Selector:
        data = json.loads(text)
        return cls.of(data.get("workloads", []), data.get("namespace", ""),
                      data.get("labels", ""))

    def to_dict(self) -> dict[str, object]:
        return {"workloads": list(self.workloads), "namespace": self.namespace,
                "labels": self.labels}

    def __str__(self) -> str:
        parts = []
        if self.workloads:
            parts.append("workloads " + ",".join(self.workloads))
        if self.namespace:
            parts.append(f"namespace {self.namespace}")
        if self.labels:
            parts.append(f"labels {self.labels}")
        return "; ".join(parts)

    def matches(self, placed: PlacedWorkload) -> bool:
        w = placed.workload
        if self.namespace and w.namespace != self.namespace:
            return False
        if self.parsed is not None and not self.parsed.matches(w.labels):
            return False
        return not self.workloads or any(resolve(q, [(w, None)]) for q in self.workloads)


@dataclass(frozen=True)
class Member:
    """A container of a group: its capture as it is now (``None`` when skipped or gone)."""

    row: GroupMember
    capture: OwnedCapture | None

    @property
    def if_name(self) -> str:
        r = self.row
        if r.pod:
            return f"{r.namespace}/{r.pod}/{r.container or r.name}"
        return r.name

    @property
    def if_description(self) -> str:
        r = self.row
        return pcapng.describe(r.node, r.namespace, r.pod, r.container or r.name)


@dataclass(frozen=True)
class Group:
    row: CaptureGroup
    selector: Selector
    spec: CaptureSpec
    members: list[Member]  # captured, in the order they joined
    skipped: list[GroupMember]
    unreachable: list[Unreachable] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.row.id

    @property
    def status(self) -> str:
        return str(Status.RUNNING) if self.row.stopped is None else str(Status.STOPPED)

    @property
    def deadline(self) -> float | None:
        return self.row.created + self.spec.duration if self.spec.duration else None


def candidate(p: PlacedWorkload) -> bool:
    """Running containers only; pod sandboxes are represented by their containers."""
    return p.workload.kind != "pod" and p.workload.state == "running"


def netns_of(placed: list[PlacedWorkload], taken: set[tuple[str, str]]) -> dict[
        tuple[str, int], str]:
    """(agent, netns) -> name of the member already capturing that namespace."""
    return {(p.agent_id, p.workload.netns): p.workload.name for p in placed
            if (p.agent_id, p.workload.id) in taken and p.workload.netns is not None}


def split(placed: list[PlacedWorkload], seen: dict[tuple[str, int], str] | None = None
           ) -> tuple[list[PlacedWorkload], list[tuple[PlacedWorkload, str]]]:
    """(to capture, skipped with the reason). One capture per network namespace and node."""
    seen = dict(seen or {})
    capturable: list[PlacedWorkload] = []
    skipped: list[tuple[PlacedWorkload, str]] = []
    for p in sorted(placed, key=lambda p: (p.workload.namespace, p.workload.pod_name,
                                           p.workload.name)):
        w = p.workload
        if not w.cap_sniff:
            skipped.append((p, w.cap_sniff_reason or "cannot be captured"))
            continue
        key = (p.agent_id, w.netns) if w.netns is not None else None
        if key is not None and key in seen:
            skipped.append((p, f"shares the network namespace of {seen[key]} (same packets)"))
            continue
        if key is not None:
            seen[key] = w.name
        capturable.append(p)
    return capturable, skipped


COULD_NOT_START = "could not start: "  # a member's reason that a later round retries
STARTING = "starting"  # a member claimed by the leader, its start on the way (group_joins.py)


def retryable(m: GroupMember, now: float) -> bool:
    """A member whose start failed (a quota, a node away, a full disk: things that pass) is
    tried again every ``GROUP_RETRY_S`` while its container still matches."""
    return (not m.capture_id and m.reason.startswith(COULD_NOT_START)
            and now - m.joined >= limits.GROUP_RETRY_S)


def member_row(gid: str, p: PlacedWorkload, cid: str, reason: str, now: float) -> GroupMember:
    w = p.workload
    return GroupMember(group_id=gid, workload_id=w.id, agent_id=p.agent_id, capture_id=cid,
                       name=w.name[:255], node=w.node[:253], namespace=w.namespace,
                       pod=w.pod_name[:253], container=(w.container_name or "")[:253],
                       reason=reason[:1024], joined=now)


def may_see(who: Principal, group: Group) -> bool:
    if who.username == group.row.owner or who.sees_every_namespace:
        return True
    spaces = {m.row.namespace for m in group.members} | {s.namespace for s in group.skipped}
    return bool(spaces) and all(who.can_see(ns) for ns in spaces)
