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
from collections.abc import Collection, Mapping, Sequence

from podcap.model import Workload


class WorkloadHomes:
    def __init__(self) -> None:
        self._home: dict[str, str] = {}  # workload id -> agent id
        self._held: dict[str, set[str]] = {}  # agent id -> the ids whose home it is
        self._reported: dict[str, frozenset[str]] = {}  # agent id -> the ids it last reported
        self._lock = threading.Lock()

    def home(self, workload_id: str) -> str | None:
        """The agent whose workload the id is, once a list has seen it."""
        with self._lock:
            return self._home.get(workload_id)

    def sift(self, answers: Mapping[str, Sequence[Workload]], joined: Mapping[str, float],
             changed: Collection[str] | None = None) -> list[tuple[str, Workload]]:
        """The (agent id, workload) claimed twice, among the agents looked at. ``answers``:
        the workloads of every agent that answers now; ``joined``: every agent there is, with
        its join time; ``changed``: the agents whose answers (or whether they answer) changed
        since the last call, None for all. Only those are read again, and those that report
        an id just given up (a list at 500 nodes read all 10,000 ids for every change, bench
        figure 11); the homes are the same as reading them all."""
        with self._lock:
            released: set[str] = set()
            for aid in [a for a in self._held if a not in joined]:  # left the cluster
                released |= self._held.pop(aid)
            for aid in [a for a in self._reported if a not in joined]:
                del self._reported[aid]
            look = set(answers) if changed is None else {a for a in changed if a in answers}
            for aid in look:
                ids = self._reported[aid] = frozenset(w.id for w in answers[aid])
                held = self._held.get(aid)
                if held:
                    released |= held - ids
                    held &= ids
            for wid in released:
                self._home.pop(wid, None)
            again = {a for a in answers if a not in look and a in self._reported
                     and not released.isdisjoint(self._reported[a])} if released else set()
            twice: list[tuple[str, Workload]] = []
            for aid in sorted(look | again, key=lambda a: (joined.get(a, 0.0), a)):
                found = answers[aid] if aid in look else \
                    [w for w in answers[aid] if w.id in released]
                for w in found:
                    if self._home.setdefault(w.id, aid) == aid:
                        self._held.setdefault(aid, set()).add(w.id)
                    else:
                        twice.append((aid, w))
        return twice
