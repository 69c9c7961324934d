"""The inventory (issue 19) with a real agent on the real Docker engine, over the real wire: a
gateway on loopback (mutual TLS), the agent's ``Uplink`` pushing its feed, and the controller's
``CaptureService`` answering lists from the view. The uplink counts the commands it serves, so
"no list reaches the agent" is counted, not assumed. The two-node bed (Docker + containerd,
partition) is tests/cluster/test_inventory_nodes.py."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from podcap.agent.manager import Agent
from podcap.agent.workloads import WorkloadView
from podcap.controller.principal import Principal
from podcap.controller.service import CaptureService
from podcap.errors import FailedPrecondition, NotFound
from podcap.model import CaptureSpec, Status
from podcap.runtime.docker import DockerRuntime
from podcap.transport.grpc.remote import RemoteAgent
from podcap.transport.grpc.uplink import Uplink
from tests.loopback_gateway import connected, loopback_gateway
from tests.support import netns_addresses, remove_container, run_container, unique, wait_for

ADMIN = Principal("admin", "admin")
NODE = "inventory-node"


@dataclasses.dataclass
class Bed:
    agent: Agent
    uplink: Uplink
    remote: RemoteAgent
    svc: CaptureService

    def names(self) -> set[str]:
        return {p.workload.name for p in self.svc.workloads(ADMIN).items}

    def asked(self, since: Counter[str]) -> Counter[str]:
        return Counter(self.uplink.handled) - since


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    tmp = tmp_path_factory.mktemp("inventory")
    with loopback_gateway(tmp) as gw:
        identity = gw.identity(NODE)
        agent = Agent(tmp / "agent", WorkloadView([DockerRuntime(node=NODE)]), NODE,
                      identity.agent_id).open()
        svc = CaptureService(gw.sessions, gw.registry)
        try:
            with connected(gw, identity, agent, feed=agent.feed) as (remote, uplink):
                wait_for(lambda: remote.view().state().synced, timeout=10,
                         what="the first snapshot")
                yield Bed(agent, uplink, remote, svc)
        finally:
            svc.close()
            agent.close()


def test_a_container_is_listed_within_2_s_and_gone_within_2_s_and_no_list_asks(bed: Bed
                                                                               ) -> None:
    """Dozens of lists while a container comes and goes; the agent serves not one command."""
    before = Counter(bed.uplink.handled)
    box = run_container(unique("inv"), ["sleep", "300"])
    try:
        wait_for(lambda: box.name in bed.names(), timeout=2.0, what="listed")
        box.reload()  # its addresses and their prefixes (/v1/workload's interfaces) follow

        def shown() -> dict[str, list[tuple[str, int]]]:
            by_name: dict[str, list[tuple[str, int]]] = {}
            for w in (p.workload for p in bed.svc.workloads(ADMIN).items):
                for name, address, prefix in w.interfaces if w.name == box.name else ():
                    by_name.setdefault(name, []).append((address, prefix))
            return by_name
        wait_for(shown, timeout=2.0, what="its addresses")
        assert shown() == netns_addresses(box.attrs["State"]["Pid"]) != {}
    finally:
        remove_container(box)
    wait_for(lambda: box.name not in bed.names(), timeout=2.0, what="gone")
    for _ in range(20):
        bed.svc.captures(ADMIN)
    assert bed.asked(before) == Counter()


def test_a_capture_s_end_reaches_the_view_unasked(bed: Bed) -> None:
    """Started: listed at once (the start's answer). Its container exits: the agent ends it,
    and the list shows the end within 2 s with no command but the start."""
    box = run_container(unique("inv-cap"), ["sleep", "300"])
    try:
        wait_for(lambda: box.name in bed.names(), timeout=2.0, what="listed")
        before = Counter(bed.uplink.handled)
        cid = bed.svc.start(ADMIN, box.name, CaptureSpec(duration=60)).capture.id
        assert [o.capture.status for o in bed.svc.captures(ADMIN).items
                if o.capture.id == cid] == [Status.RUNNING]
        box.kill()

        def ended() -> bool:
            return bed.svc.capture(ADMIN, cid).capture.status is not Status.RUNNING
        wait_for(ended, timeout=2.5, what="the capture's end in the view")
        assert bed.svc.capture(ADMIN, cid).capture.reason == "container exited"
        assert bed.asked(before) == Counter(start=1)
    finally:
        remove_container(box)


def test_a_lost_delta_is_seen_and_the_view_repaired_by_a_snapshot(bed: Bed) -> None:
    resyncs = bed.remote.pushed.resyncs
    bed.uplink.drop_deltas = 1
    box = run_container(unique("inv-gap"), ["sleep", "300"])
    try:
        wait_for(lambda: bed.uplink.drop_deltas == 0, timeout=2.0, what="a delta dropped")
        # repaired by the next delta (its number skips one) or the next heartbeat (3 s)
        wait_for(lambda: box.name in bed.names(), timeout=4.0, what="listed after the gap")
        assert bed.remote.pushed.resyncs == resyncs + 1
        mine = {w.id for w in bed.agent.view().state().workloads}
        wait_for(lambda: {p.workload.id for p in bed.svc.workloads(ADMIN).items} == mine,
                 timeout=2.0, what="the view equal to the agent's own")
    finally:
        remove_container(box)


def test_a_start_the_view_is_behind_on_is_refused_by_the_agent(bed: Bed) -> None:
    """The view still lists a container that is gone (its updates held back, as on a slow
    link): the start resolves it from the view, the agent has the last word: 409, nothing
    started, never a capture of another container."""
    box = run_container(unique("inv-race"), ["sleep", "300"])
    try:
        wait_for(lambda: box.name in bed.names(), timeout=2.0, what="listed")
        bed.uplink.hold = True
        remove_container(box)
        with pytest.raises(FailedPrecondition, match="no longer on node inventory-node"):
            bed.svc.start(ADMIN, box.name, CaptureSpec(duration=5))
        assert not [c for c in bed.agent.list_captures() if c.workload.id == box.id]
    finally:
        bed.uplink.release()
        remove_container(box)
    wait_for(lambda: box.name not in bed.names(), timeout=2.0, what="gone once released")


def test_a_start_racing_removal_captures_that_container_or_is_refused(bed: Bed) -> None:
    """The real race, a few times: whatever wins, a capture is of the container named, or the
    start is refused (409: gone since listed; 404: gone before the view had it)."""
    outcomes: Counter[str] = Counter()
    for _ in range(3):
        box = run_container(unique("inv-racing"), ["sleep", "300"])
        try:
            wait_for(lambda b=box: b.name in bed.names(), timeout=2.0, what="listed")
            remover = threading.Thread(target=remove_container, args=(box,))
            remover.start()
            try:
                owned = bed.svc.start(ADMIN, box.id, CaptureSpec(duration=5))
            except (FailedPrecondition, NotFound) as exc:
                outcomes[type(exc).__name__] += 1
            else:
                assert owned.capture.workload.id == box.id
                outcomes["captured"] += 1
            remover.join()
        finally:
            remove_container(box)
    assert sum(outcomes.values()) == 3, outcomes
