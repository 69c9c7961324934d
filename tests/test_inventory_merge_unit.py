"""The workload list mended in place (controller/inventory.py) and the homes read again only
for the nodes that changed (controller/homes.py), fast: after every step of random churn, the
list is the one a new ``Inventory`` merges whole, and every id's home is the one the rule
gives when every node is read again (the rule as it was written before, kept here)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path

from podcap import limits
from podcap.controller.db import open_db
from podcap.controller.inventory import Inventory
from podcap.controller.owners import Owners
from podcap.model import Workload
from tests.test_fanout import FakeAgent, FakeRegistry


class Node(FakeAgent):
    def __init__(self, agent_id: str, node: str, joined: float) -> None:
        super().__init__(agent_id, node)
        self._info = self._info.__class__(**{**self._info.__dict__, "joined": joined})
        self.workloads: list[Workload] = []

    def pushed(self) -> tuple[list[Workload], list]:
        return list(self.workloads), []


class ReadAll:
    """homes.py's rule read whole at every list: the reference."""

    def __init__(self) -> None:
        self.home: dict[str, str] = {}

    def sift(self, answers: Mapping[str, list[Workload]], joined: Mapping[str, float]) -> None:
        reported = {aid: {w.id for w in found} for aid, found in answers.items()}
        for wid, home in list(self.home.items()):
            if home not in joined or (home in reported and wid not in reported[home]):
                del self.home[wid]
        for aid in sorted(answers, key=lambda a: (joined[a], a)):
            for w in answers[aid]:
                self.home.setdefault(w.id, aid)


def test_in_place_list_and_homes_equal_reading_everything(tmp_path: Path) -> None:
    rng = random.Random(19)
    nodes = [Node(f"{i:016x}", f"node-{i % 90:03d}", float(rng.randrange(5)))
             for i in range(100)]  # some node names twice: rows alike but for the agent
    ids = [f"{i:064x}" for i in range(400)]  # few: ids reported by two nodes happen

    def workload(node: Node) -> Workload:
        n = rng.randrange(30)  # names and pods repeat across nodes
        return Workload(id=rng.choice(ids), name=f"app-{n}", runtime="cri",
                        node=node._info.node, state="running", pod_name=f"pod-{n % 7}",
                        namespace=f"team-{n % 3}")

    for node in nodes:
        node.workloads = [workload(node) for _ in range(5)]
    registry = FakeRegistry(*nodes)
    owners = Owners(open_db(None, tmp_path))
    inventory = Inventory(registry, owners)  # type: ignore[arg-type]
    reference = ReadAll()
    ways = set()
    for step in range(60):
        many = step % 10 == 9  # now and then more nodes change than are mended in place
        for node in rng.sample(nodes, limits.INVENTORY_MERGE_IN_PLACE_MAX + 5 if many
                               else rng.randrange(1, 12)):
            action = rng.random()
            if action < 0.15:
                node.down = not node.down  # away: its homes are kept, it claims none
            elif action < 0.25 and node.workloads:
                node.workloads.pop(rng.randrange(len(node.workloads)))
            else:
                node.workloads[rng.randrange(len(node.workloads) + 1):] = [workload(node)]
        if step == 30:  # one leaves the cluster: its homes go to whoever reports them
            gone = nodes.pop(rng.randrange(len(nodes)))
            del registry._agents[gone._info.id]
        listed = inventory.workloads().items
        whole = Inventory(registry, owners).workloads().items  # type: ignore[arg-type]
        assert listed == whole, f"step {step}"
        views = inventory.views()
        reference.sift({aid: list(s.workloads) for aid, s in views.states.items()
                        if aid not in views.stale}, views.joined)
        assert {wid: inventory.home(wid) for wid in ids} == \
            {wid: reference.home.get(wid) for wid in ids}, f"step {step}"
        ways.add(many)
    assert ways == {True, False}
