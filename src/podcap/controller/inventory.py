"""What every node holds, as the controller sees it: workloads with their node, captures with
their owner, read from the views the agents push (views.py), never by asking an agent.

A node that is away contributes its last view, marked stale, and is named with its
``synced_at``. A
workload id belongs to the node that reported it first (homes.py) and a capture id to the agent
the controller placed it on. Another agent reporting a capture id is ignored and counted
(transport/rejects.py), never a second copy in a list, never counted in a quota; another node
reporting a workload id is counted too, and its copy listed under that node, but the id alone
never resolves to it.
"""

from __future__ import annotations

import bisect
import heapq
import threading
import time
from dataclasses import dataclass, field, replace

from podcap import limits
from podcap.controller.agents import AgentRegistry
from podcap.controller.db import CaptureOwner
from podcap.controller.fanout import FanOut, Listing, Unreachable
from podcap.controller.homes import WorkloadHomes
from podcap.controller.owners import Owners
from podcap.controller.quotas import Held
from podcap.model import Capture, Workload
from podcap.transport import rejects
from podcap.views import ViewState


@dataclass(frozen=True)
class PlacedWorkload:
    workload: Workload
    agent_id: str
    stale: bool = False  # its node's last view: the node is away now
    text: str = field(default="", compare=False, repr=False)  # what a search looks in
    # Its JSON as each list renders it, made once (api/): a list of 10,000 is joined from
    # these rather than encoded again for every request (bench figure 11).
    rendered: dict[str, str] = field(default_factory=dict, compare=False, repr=False)


def placed(w: Workload, agent_id: str, stale: bool = False) -> PlacedWorkload:
    """With its searchable text made once: name, image, namespace, pod, node, id, IPs."""
    return PlacedWorkload(w, agent_id, stale, " ".join(
        [w.name, w.image, w.namespace, w.pod_name, w.node, w.container_name, w.id,
         *w.ips]).lower())


@dataclass(frozen=True)
class OwnedCapture:
    capture: Capture
    owner: str
    namespace: str
    stale: bool = False  # last known state: its agent cannot be reached now


@dataclass(frozen=True)
class _Views:
    """Every node's view read at once, and the nodes away (whose views are stale)."""

    states: dict[str, ViewState]
    unreachable: list[Unreachable]
    joined: dict[str, float]  # every agent's join time: the older keeps a workload id (homes.py)

    @property
    def stale(self) -> set[str]:
        return {u.agent_id for u in self.unreachable}


class Inventory:
    def __init__(self, agents: AgentRegistry, owners: Owners,
                 trust_namespace_labels: bool = False, fanout: FanOut | None = None) -> None:
        self._agents = agents
        self._fanout = fanout
        self._owners = owners
        self._homes = WorkloadHomes()
        self._trust_labels = trust_namespace_labels
        self._lock = threading.Lock()
        self._placed: tuple[tuple[object, ...], list[PlacedWorkload]] | None = None
        self._parts: dict[str, tuple[tuple[int, bool], list[PlacedWorkload]]] = {}

    def views(self, only: str | None = None) -> _Views:
        """Each agent's view (or ``only`` that one's), never asking one. A node that is away,
        or whose inventory has not arrived since it connected, is named with why and when its
        view was last right; its view is still listed, stale."""
        states: dict[str, ViewState] = {}
        away: list[Unreachable] = []
        joined: dict[str, float] = {}
        for aid, t in self._agents.transports().items():
            if only not in (None, aid):
                continue
            info, state = t.info(), t.view().state()
            states[aid], joined[aid] = state, info.joined
            if not info.connected:
                ago = f"; last seen {time.time() - info.last_seen:.0f} s ago" \
                    if info.last_seen else ""
                away.append(Unreachable(aid, info.node, f"node {info.node} is disconnected{ago}",
                                        state.synced_at))
            elif not state.synced:
                why = getattr(getattr(t, "pushed", None), "refused", "") \
                    or "its inventory has not arrived yet"
                away.append(Unreachable(aid, info.node, f"node {info.node}: {why}",
                                        state.synced_at))
        return _Views(states, sorted(away, key=lambda u: u.node), joined)

    def sync(self) -> None:
        """Every connected agent asked to look now, each within the fan-out deadline: when a
        start names what no view holds (a container started a moment ago). Lists never ask."""
        if self._fanout is not None:
            self._fanout.ask(lambda t: t.sync())

    def token(self) -> str:
        """Moves whenever a workload list could change: a view's workloads, a node coming or
        going (counters, which move every second, do not move it)."""
        views = self.views()
        return f"{max((s.workloads_version for s in views.states.values()), default=0)}." \
               f"{len(views.states)}.{len(views.unreachable)}"

    def workloads(self) -> Listing[PlacedWorkload]:
        """Every node's workloads, whoever asks (callers filter by namespace), sorted by
        namespace, pod and name. A node's part is made again only when its workloads changed,
        and the whole merged (and the homes and duplicates decided) only when a part did:
        between changes a list costs a filter, no sort; after a few changes, the parts that
        changed leave the list and come back in their places (``_merge``)."""
        views = self.views()
        stale = views.stale
        key = tuple(sorted((aid, s.workloads_version, aid in stale)
                           for aid, s in views.states.items()))
        with self._lock:
            if self._placed is None or self._placed[0] != key:
                self._placed = (key, self._merge(views, stale))
            return Listing(self._placed[1], views.unreachable)

    def _merge(self, views: _Views, stale: set[str]) -> list[PlacedWorkload]:
        """At 500 nodes a dozen change every second (churn): merging the 10,000 rows again
        for each took 30-130 ms (bench figure 11's p99), so when few parts changed their
        rows are taken out and put back in place instead (a few ms); many at once (a
        controller's start) are merged whole."""
        old, parts = self._parts, {}
        for aid, state in views.states.items():
            mark = (state.workloads_version, aid in stale)
            part = old.get(aid)
            if part is None or part[0] != mark:
                part = (mark, sorted((placed(self.namespaced(w), aid, aid in stale)
                                      for w in state.workloads), key=_order))
            parts[aid] = part
        changed = {aid for aid in parts.keys() | old.keys() if parts.get(aid) is not old.get(aid)}
        first = self._placed is None
        self._parts = parts
        answers = {aid: s.workloads for aid, s in views.states.items() if aid not in stale}
        for aid, w in self._homes.sift(answers, views.joined, None if first else changed):
            self._agents.rejects.drop(aid, w.node, rejects.DUPLICATE_WORKLOAD,
                                      f"workload {w.id[:64]} is another node's")
        if first or len(changed) > limits.INVENTORY_MERGE_IN_PLACE_MAX:
            return list(heapq.merge(*(rows for _, rows in parts.values()), key=_order))
        assert self._placed is not None
        rows = [p for p in self._placed[1] if p.agent_id not in changed]
        for aid in changed & parts.keys():
            for p in parts[aid][1]:
                bisect.insort(rows, p, key=_order)
        return rows

    def home(self, workload_id: str) -> str | None:
        """The node (agent id) a workload id resolves to when several report it (homes.py)."""
        return self._homes.home(workload_id)

    def node_workloads(self, agent_id: str) -> list[PlacedWorkload]:
        """The workloads of one node, from its view (``NotFound``: no such agent)."""
        t = self._agents.get(agent_id)
        return [placed(self.namespaced(w), agent_id, not t.info().connected)
                for w in t.view().state().workloads]

    def captures(self, only: str | None = None
                 ) -> tuple[list[tuple[str, OwnedCapture]], list[Unreachable]]:
        """(agent id, capture with its owner) of every agent, or of ``only``, from the views."""
        owners = self._owners.all()
        views = self.views(only)
        stale = views.stale
        every: list[tuple[str, OwnedCapture]] = []
        for aid, state in views.states.items():
            captures = state.captures
            foreign = {c.id for c in captures if c.id in owners
                       and owners[c.id].agent_id != aid}
            if foreign:
                node = next((c.workload.node for c in captures), "")
                self._agents.rejects.drop(aid, node, rejects.NOT_ITS_CAPTURE,
                                          f"capture {min(foreign)} was placed on another node",
                                          len(foreign))
            every += [(aid, self.owned(c, owners.get(c.id), aid in stale))
                      for c in captures if c.id not in foreign]
        return every, views.unreachable

    def held(self) -> list[Held]:
        """Every capture of every agent (last known state for those away), as quotas see it."""
        every, _ = self.captures()
        return [Held(o.owner, o.namespace, aid, o.capture.spec, str(o.capture.status),
                     o.capture.stats.bytes, placed=bool(o.owner)) for aid, o in every]

    def namespaced(self, w: Workload) -> Workload:
        """On Docker the namespace is a label anyone who may `docker run` sets: kept only
        with --trust-namespace-labels. CRI's comes from the pod sandbox, set by the kubelet."""
        if w.runtime == "docker" and w.namespace and not self._trust_labels:
            return replace(w, namespace="")
        return w

    def owned(self, capture: Capture, row: CaptureOwner | None,
              stale: bool = False) -> OwnedCapture:
        if row is None:
            return OwnedCapture(capture, "", self.namespaced(capture.workload).namespace, stale)
        return OwnedCapture(capture, row.owner, row.namespace, stale)


def _order(p: PlacedWorkload) -> tuple[str, str, str, str, str]:
    """Namespace, pod, name; then node and agent, so that whichever way a list was made
    (merged whole or in place) two alike are in the same order."""
    return p.workload.namespace, p.workload.pod_name, p.workload.name, p.workload.node, \
        p.agent_id
