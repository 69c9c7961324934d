"""The controller's side of many agents, fast: fan-out deadlines, stale captures, and what a
remote agent may claim. Fakes stand behind the ``AgentTransport`` protocol here for speed; the
same behaviours run against real agents in tests/cluster (partition, identity)."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pytest

from podcap.controller.db import open_db
from podcap.controller.principal import Principal
from podcap.controller.service import CaptureService
from podcap.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable
from podcap.model import AgentInfo, Capture, CaptureSpec, Status, Workload
from podcap.transport.base import AgentHello
from podcap.transport.data.incoming import Uploads
from podcap.transport.grpc import codec
from podcap.transport.grpc.agent_proto import agent_pb2 as pb
from podcap.transport.grpc.remote import RemoteAgent
from podcap.transport.grpc.session import AgentSession
from podcap.transport.rejects import Rejects
from podcap.views import InventoryUpdate, NodeView

ADMIN = Principal("admin", "admin")


class FakeAgent:
    """An agent that answers from memory, after ``delay`` seconds, or not at all."""

    def __init__(self, agent_id: str, node: str, delay: float = 0.0,
                 down: bool = False) -> None:
        self._info = AgentInfo(id=agent_id, node=node, runtimes=("docker",), version="t",
                               started=0.0)
        self.delay, self.down = delay, down
        self._view = NodeView()
        self._pushed: InventoryUpdate | None = None
        self.workload = Workload(id=f"{agent_id}w", name=f"web-{node}", runtime="docker",
                                 node=node, state="running", pid=1, cap_sniff=True)
        self.capture = Capture(id="c" * 31 + agent_id[0], agent_id=agent_id,
                               workload=self.workload, spec=CaptureSpec(), start_time=1.0)

    def _answer(self) -> None:
        if self.down:
            raise Unavailable(f"node {self._info.node} is disconnected")
        time.sleep(self.delay)

    def info(self) -> AgentInfo:
        return dataclasses.replace(self._info, connected=not self.down)

    def list_workloads(self) -> list[Workload]:
        self._answer()
        return [self.workload]

    def list_captures(self) -> list[Capture]:
        self._answer()
        return [self.capture]

    def get_capture(self, capture_id: str) -> Capture:
        self._answer()
        if capture_id != self.capture.id:
            raise NotFound(capture_id)
        return self.capture

    def known_captures(self) -> list[Capture]:
        return [self.capture]

    def view(self) -> NodeView:
        """What this node pushed: its workload and capture as they are now (a snapshot)."""
        workloads, captures = self.pushed()
        update = InventoryUpdate(0, True, tuple(workloads), captures=tuple(captures))
        if update != self._pushed:  # a new snapshot only when something changed
            self._pushed = update
            self._view.apply(update)
        return self._view

    def pushed(self) -> tuple[list[Workload], list[Capture]]:
        """Its inventory (a node away keeps the view it pushed before it went)."""
        return [self.workload], [self.capture]

    def sync(self) -> None:
        self._answer()


class FakeRegistry:
    def __init__(self, *agents: FakeAgent) -> None:
        self._agents = {a.info().id: a for a in agents}
        self.rejects = Rejects()

    def transports(self) -> dict[str, FakeAgent]:
        return dict(self._agents)

    def get(self, agent_id: str) -> FakeAgent:
        if agent_id not in self._agents:
            raise NotFound(f"agent {agent_id} not found")
        return self._agents[agent_id]

    def infos(self) -> list[AgentInfo]:
        return [a.info() for a in self._agents.values()]

    def close(self) -> None:
        pass


def _service(tmp_path: Path, *agents: FakeAgent) -> CaptureService:
    return CaptureService(open_db(None, tmp_path), FakeRegistry(*agents))  # type: ignore[arg-type]


def test_a_list_asks_no_agent_so_a_slow_or_broken_one_cannot_slow_or_fail_it(
        tmp_path: Path) -> None:
    """Lists read the views the agents pushed (views.py): an agent that would take 5 s, or
    raise, is never asked; each node's view is listed."""
    slow, broken = FakeAgent("a" * 16, "node-a", delay=5.0), FakeAgent("b" * 16, "node-b")

    def boom() -> list[Capture]:
        raise ValueError("'bogus' is not a valid Status")

    broken.list_captures = boom  # type: ignore[method-assign]
    broken.list_workloads = boom  # type: ignore[method-assign,assignment]
    broken.get_capture = boom  # type: ignore[method-assign,assignment]
    svc = _service(tmp_path, slow, broken)
    began = time.monotonic()
    workloads, captures = svc.workloads(ADMIN), svc.captures(ADMIN)
    assert svc.capture(ADMIN, broken.capture.id).capture == broken.capture
    assert time.monotonic() - began < 0.5
    assert [p.workload.node for p in workloads.items] == ["node-a", "node-b"]
    assert {o.capture.id for o in captures.items} == {slow.capture.id, broken.capture.id}
    assert workloads.unreachable == captures.unreachable == []


def test_captures_of_an_unreachable_agent_are_its_last_known_state(tmp_path: Path) -> None:
    up, down = FakeAgent("a" * 16, "node-a"), FakeAgent("b" * 16, "node-b", down=True)
    svc = _service(tmp_path, up, down)
    listing = svc.captures(ADMIN)
    stale = {o.capture.id: o.stale for o in listing.items}
    assert stale == {up.capture.id: False, down.capture.id: True}
    assert [u.node for u in listing.unreachable] == ["node-b"]
    assert "disconnected" in listing.unreachable[0].reason
    assert svc.capture(ADMIN, down.capture.id).stale is True


def test_a_name_on_several_nodes_is_ambiguous(tmp_path: Path) -> None:
    a, b = FakeAgent("a" * 16, "node-a"), FakeAgent("b" * 16, "node-b")
    b.workload = dataclasses.replace(b.workload, name=a.workload.name)
    svc = _service(tmp_path, a, b)
    with pytest.raises(InvalidArgument, match="several nodes"):
        svc.workload(ADMIN, a.workload.name)
    assert svc.workload(ADMIN, a.workload.name, "b" * 16).agent_id == "b" * 16
    assert svc.workload(ADMIN, b.workload.id).agent_id == "b" * 16


def test_a_download_is_answered_only_by_the_agent_asked() -> None:
    uploads = Uploads()
    upload = uploads.expect("a" * 16)
    with pytest.raises(PermissionDenied):
        uploads.claim(upload.id, "b" * 16)
    assert uploads.claim(upload.id, "a" * 16) is upload
    with pytest.raises(NotFound):
        uploads.claim(upload.id, "a" * 16)  # once only


def _connected(agent_id: str) -> tuple[RemoteAgent, AgentSession]:
    remote = RemoteAgent(AgentInfo(id=agent_id, node="n", runtimes=(), version="",
                                   started=0.0), Uploads())
    session = AgentSession(cancel=lambda: None)
    remote.attach(session, AgentHello(node="n"))
    return remote, session


def _answer(session: AgentSession, reply: pb.Reply) -> None:
    """Play the agent: answer the next command with ``reply``."""
    def run() -> None:
        message = session.outbox.get(timeout=5)
        assert message is not None
        reply.seq = message.command.seq
        session.on_reply(reply)
    threading.Thread(target=run, daemon=True).start()


def test_an_agent_may_not_speak_for_another_agents_capture() -> None:
    remote, session = _connected("a" * 16)
    other = FakeAgent("b" * 16, "node-b").capture
    _answer(session, pb.Reply(capture=codec.capture_to_pb(other)))
    with pytest.raises(Unavailable, match="sent an invalid capture: .*reported capture"):
        remote.get_capture(other.id)
    mine = dataclasses.replace(other, agent_id="a" * 16, status=Status.STOPPED)
    _answer(session, pb.Reply(capture=codec.capture_to_pb(mine)))
    assert remote.get_capture(mine.id) == mine


def test_an_agent_that_does_not_answer_is_unavailable_naming_its_node() -> None:
    remote, _ = _connected("a" * 16)
    began = time.monotonic()
    with pytest.raises(Unavailable, match="node n: no answer within"):
        remote.list_workloads()
    assert time.monotonic() - began < 2.0
    remote.close()
    with pytest.raises(Unavailable, match="node n is disconnected"):
        remote.list_captures()


