"""Which node a workload id belongs to: the first that reported it, for as long as it does.

A workload's identity is (node, container). Container ids are random (Docker's and CRI's are
256-bit), so two real nodes never report the same one; when a second node does, it is lying
(a compromised node that learnt a real id) or shares a runtime with the first (a test bed).
Without this rule every start of that container by its id would be refused as ambiguous. So
the node that reported an id first is its home: the id alone resolves there
(controller/resolver.py); the same id from another node is listed under that node, started
there only when the node is named, and counted
(``podcap_agent_messages_dropped_total{why="duplicate_workload"}``). A home is released when
its node answers a list without the id (the container is gone), or leaves the cluster; a node
that does not answer keeps its homes, so a partition hands nothing to another node. When two
nodes first report an id in the same list, the one that joined first keeps it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from podcap.model import AgentInfo, Workload


class WorkloadHomes:
    def __init__(self) -> None:
        self._home: dict[str, str] = {}  # workload id -> agent id
        self._lock = threading.Lock()

    def home(self, workload_id: str) -> str | None:
        """The agent whose workload the id is, once a list has seen it."""
        with self._lock:
            return self._home.get(workload_id)

    def sift(self, answers: Mapping[str, list[Workload]], agents: Mapping[str, AgentInfo]
             ) -> tuple[dict[str, list[Workload]], list[tuple[str, Workload]]]:
        """(each agent's workloads that are its own, (agent id, workload) claimed twice)."""
        order = sorted(answers, key=lambda aid: (agents[aid].joined if aid in agents else 0.0,
                                                 aid))
        reported = {aid: {w.id for w in found} for aid, found in answers.items()}
        kept: dict[str, list[Workload]] = {aid: [] for aid in answers}
        twice: list[tuple[str, Workload]] = []
        with self._lock:
            for wid, home in list(self._home.items()):
                if home not in agents or (home in reported and wid not in reported[home]):
                    del self._home[wid]
            for aid in order:
                for w in answers[aid]:
                    if self._home.setdefault(w.id, aid) == aid:
                        kept[aid].append(w)
                    else:
                        twice.append((aid, w))
        return kept, twice
