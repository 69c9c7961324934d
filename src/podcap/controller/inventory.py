"""What every node holds, as the controller sees it: workloads with their node, captures with
their owner.

An agent that does not answer contributes its captures' last known state, marked stale. A
workload id belongs to the node that reported it first (homes.py) and a capture id to the agent
the controller placed it on. Another agent reporting a capture id is ignored and counted
(transport/rejects.py), never a second copy in a list, never counted in a quota; another node
reporting a workload id is counted too, and its copy listed under that node, but the id alone
never resolves to it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from podcap.controller.agents import AgentRegistry
from podcap.controller.db import CaptureOwner
from podcap.controller.fanout import FanOut, Listing, Unreachable
from podcap.controller.homes import WorkloadHomes
from podcap.controller.owners import Owners
from podcap.controller.quotas import Held
from podcap.model import Capture, Workload
from podcap.transport import rejects


@dataclass(frozen=True)
class PlacedWorkload:
    workload: Workload
    agent_id: str


@dataclass(frozen=True)
class OwnedCapture:
    capture: Capture
    owner: str
    namespace: str
    stale: bool = False  # last known state: its agent cannot be reached now


class Inventory:
    def __init__(self, agents: AgentRegistry, fanout: FanOut, owners: Owners,
                 trust_namespace_labels: bool = False) -> None:
        self._agents = agents
        self._fanout = fanout
        self._owners = owners
        self._homes = WorkloadHomes()
        self._trust_labels = trust_namespace_labels

    def workloads(self) -> Listing[PlacedWorkload]:
        """Every node's workloads, whoever asks: callers filter by namespace."""
        answers, unreachable = self._fanout.ask(lambda t: t.list_workloads())
        _, twice = self._homes.sift(answers, {a.id: a for a in self._agents.infos()})
        for aid, w in twice:
            self._agents.rejects.drop(aid, w.node, rejects.DUPLICATE_WORKLOAD,
                                      f"workload {w.id[:64]} is another node's")
        return Listing([PlacedWorkload(w, aid) for aid, found in answers.items()
                        for w in map(self.namespaced, found)], unreachable)

    def home(self, workload_id: str) -> str | None:
        """The node (agent id) a workload id resolves to when several report it (homes.py)."""
        return self._homes.home(workload_id)

    def node_workloads(self, agent_id: str) -> list[PlacedWorkload]:
        """The workloads of one node, asked alone (``NotFound``: no such agent)."""
        return [PlacedWorkload(w, agent_id) for w in map(
            self.namespaced, self._agents.get(agent_id).list_workloads())]

    def captures(self, only: str | None = None
                 ) -> tuple[list[tuple[str, OwnedCapture]], list[Unreachable]]:
        """(agent id, capture with its owner) of every agent, or of ``only``."""
        owners = self._owners.all()
        answers, unreachable = self._fanout.ask(lambda t: t.list_captures(), only=only)
        stale = {u.agent_id for u in unreachable}
        for aid in stale:
            answers[aid] = self._agents.get(aid).known_captures()
        every: list[tuple[str, OwnedCapture]] = []
        for aid, captures in answers.items():
            foreign = {c.id for c in captures if c.id in owners
                       and owners[c.id].agent_id != aid}
            if foreign:
                node = next((c.workload.node for c in captures), "")
                self._agents.rejects.drop(aid, node, rejects.NOT_ITS_CAPTURE,
                                          f"capture {min(foreign)} was placed on another node",
                                          len(foreign))
            every += [(aid, self.owned(c, owners.get(c.id), aid in stale))
                      for c in captures if c.id not in foreign]
        return every, unreachable

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
