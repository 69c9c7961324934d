"""controller/resolver.py's ``find`` and ``_one``, fast: a real ``CaptureService`` and
``Inventory`` over stand-in agents (tests/test_fanout.py's ``FakeAgent``), no server, no Docker.
The rule itself (``resolve``) is tests/security/test_resolver.py's; this is the lookup across
nodes around it: who may see what, a named node, nodes that do not answer, a name on two
nodes, and an id that two nodes report. Messages are exact: clients and the audit read them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from podcap.controller import resolver
from podcap.controller.inventory import PlacedWorkload
from podcap.controller.principal import Principal
from podcap.controller.service import CaptureService
from podcap.errors import Hidden, InvalidArgument, NotFound, PodcapError, Unavailable
from podcap.model import Capture, Workload
from tests.test_fanout import ADMIN, FakeAgent, _service

A = "a1b2c3d4e5f6" + "0" * 52
B = "b" * 64
C = "c" * 64
AGENT_A, AGENT_B, AGENT_C = "a" * 16, "b" * 16, "c" * 16
SCOPED = Principal("scoped", "reader", frozenset({"team-x"}))
AMBIGUOUS = ("names workloads on several nodes ({}); use the workload id, or name the node "
             "(f_enforcer on /v1, agent_id on /api)")


def wl(wid: str, name: str, node: str, namespace: str = "team-x") -> Workload:
    """A CRI workload (its namespace is kept: Docker's label would be dropped untrusted)."""
    return Workload(id=wid, name=name, runtime="cri", node=node, state="running", pid=1,
                    namespace=namespace)


class Node(FakeAgent):
    """An agent that lists the workloads it is given (none, one, or several)."""

    def __init__(self, agent_id: str, node: str, *workloads: Workload,
                 down: bool = False) -> None:
        super().__init__(agent_id, node, down=down)
        self.workloads = list(workloads)

    def list_workloads(self) -> list[Workload]:
        self._answer()
        return list(self.workloads)

    def pushed(self) -> tuple[list[Workload], list[Capture]]:
        return list(self.workloads), [self.capture]


@pytest.fixture
def service(tmp_path: Path) -> Iterator:
    made: list[CaptureService] = []

    def make(*agents: FakeAgent) -> CaptureService:
        folder = tmp_path / str(len(made))
        folder.mkdir()
        made.append(_service(folder, *agents))
        return made[-1]

    yield make
    for svc in made:
        svc.close()


def find(svc: CaptureService, wid: str, who: Principal = ADMIN,
         agent_id: str | None = None) -> PlacedWorkload:
    return resolver.find(svc.inventory, who, wid, agent_id)


def refused(svc: CaptureService, wid: str, who: Principal = ADMIN,
            agent_id: str | None = None) -> tuple[type, str]:
    """The error's exact type and message."""
    with pytest.raises(PodcapError) as caught:
        find(svc, wid, who, agent_id)
    return type(caught.value), caught.value.message


def test_full_id_then_short_id_then_name(service) -> None:
    """A full id, a prefix of 12 hex characters or more, else a name: a name that looks like
    another workload's short id never stands in for it."""
    svc = service(Node(AGENT_A, "node-a", wl(A, "web", "node-a"), wl(B, A[:12], "node-a")))
    for typed in (A, A[:12], A[:20], "web"):
        got = find(svc, typed)
        assert (got.workload.id, got.agent_id) == (A, AGENT_A), typed
    assert find(svc, B).workload.name == A[:12]
    assert refused(svc, A[:11]) == (NotFound, f"workload {A[:11]} not found")
    assert refused(svc, "missing") == (NotFound, "workload missing not found")
    assert refused(svc, "no/such")[0] is InvalidArgument  # not a workload id at all


def test_a_hidden_workload_answers_like_a_missing_one(service) -> None:
    """The same message for both; only the type (``Hidden``, for the audit) differs, with the
    caller's name."""
    svc = service(Node(AGENT_A, "node-a", wl(A, "web", "node-a", namespace="team-y")))
    assert find(svc, "web").workload.id == A  # an admin sees every namespace
    for typed in ("web", A, A[:12]):
        with pytest.raises(Hidden) as caught:
            find(svc, typed, SCOPED)
        assert (caught.value.message, caught.value.username) == (f"workload {typed} not found",
                                                                 "scoped")
    assert refused(svc, "web", SCOPED, AGENT_A) == (Hidden, "workload web not found")
    assert refused(svc, "gone", SCOPED) == (NotFound, "workload gone not found")
    assert refused(svc, "gone", SCOPED, AGENT_A) == (NotFound, "workload gone not found")


def test_a_hidden_twin_makes_no_ambiguity(service) -> None:
    """A name shared with a workload the caller cannot see resolves to the one it can, asked
    across nodes or of either node."""
    svc = service(Node(AGENT_A, "node-a", wl(A, "web", "node-a", namespace="team-y")),
                  Node(AGENT_B, "node-b", wl(B, "web", "node-b")))
    assert find(svc, "web", SCOPED).agent_id == AGENT_B
    assert find(svc, "web", SCOPED, AGENT_B).agent_id == AGENT_B
    assert refused(svc, "web", SCOPED, AGENT_A) == (
        InvalidArgument, f"enforcer {AGENT_A} is not the node of workload web")


def test_a_named_node_is_asked_alone(service) -> None:
    """Its own workload first, even when the name is on another node too (no ambiguity) or
    another node does not answer; a workload of another node is refused as not that node's;
    an unknown node is not found."""
    svc = service(Node(AGENT_A, "node-a", wl(A, "web", "node-a")),
                  Node(AGENT_B, "node-b", wl(B, "web", "node-b"), wl(C, "db", "node-b")))
    assert find(svc, "web", agent_id=AGENT_A).workload.id == A
    assert find(svc, "web", agent_id=AGENT_B).workload.id == B
    assert find(svc, C[:12], agent_id=AGENT_B).workload.id == C
    assert refused(svc, "db", agent_id=AGENT_A) == (
        InvalidArgument, f"enforcer {AGENT_A} is not the node of workload db")
    assert refused(svc, C, agent_id=AGENT_A) == (
        InvalidArgument, f"enforcer {AGENT_A} is not the node of workload {C}")
    assert refused(svc, "missing", agent_id=AGENT_A) == (NotFound, "workload missing not found")
    assert refused(svc, "web", agent_id="z" * 16) == (NotFound, f"agent {'z' * 16} not found")
    away = service(Node(AGENT_A, "node-a", wl(A, "web", "node-a")),
                   Node(AGENT_B, "node-b", down=True))
    assert find(away, "web", agent_id=AGENT_A).workload.id == A


def test_a_miss_while_nodes_are_away_names_them(service) -> None:
    """Every node that did not answer, in node order, and only when nothing was found: a
    hit on a node that answered is the answer, a hidden one is a miss like any other."""
    svc = service(Node(AGENT_A, "node-a", wl(A, "web", "node-a", namespace="team-y")),
                  Node(AGENT_C, "node-c", down=True), Node(AGENT_B, "node-b", down=True))
    assert find(svc, "web").workload.id == A
    message = "workload {} not found on the nodes that answered; not answering: node-b, node-c"
    assert refused(svc, "db") == (Unavailable, message.format("db"))
    assert refused(svc, "web", SCOPED) == (Unavailable, message.format("web"))
    assert refused(svc, "db", agent_id=AGENT_A) == (Unavailable, message.format("db"))
    one = service(Node(AGENT_A, "node-a"), Node(AGENT_B, "node-b", down=True))
    assert refused(one, "db") == (Unavailable, "workload db not found on the nodes that "
                                               "answered; not answering: node-b")


def test_a_name_on_two_nodes_is_refused_naming_both(service) -> None:
    """Nodes sorted by name in the message, whatever order they answered in; naming the node
    or the id picks one."""
    svc = service(Node(AGENT_A, "node-z", wl(A, "web", "node-z")),
                  Node(AGENT_B, "node-m", wl(B, "web", "node-m")),
                  Node(AGENT_C, "node-q", wl(C, "db", "node-q")))
    assert refused(svc, "web") == (InvalidArgument, "web " + AMBIGUOUS.format("node-m, node-z"))
    assert find(svc, "web", agent_id=AGENT_B).workload.id == B
    assert find(svc, A).agent_id == AGENT_A
    assert find(svc, "db").agent_id == AGENT_C


def test_the_same_id_on_two_nodes_is_its_home(service) -> None:
    """The node that reported an id first is its home (homes.py), whatever the node order:
    the id, its short form and its name resolve there; naming the other node gets its copy."""
    later = Node(AGENT_A, "node-a")
    first = Node(AGENT_B, "node-b", wl(A, "web", "node-b"))
    svc = service(later, first)
    assert find(svc, "web").agent_id == AGENT_B  # only node-b reports it: its home now
    later.workloads = [wl(A, "web", "node-a")]
    for typed in (A, A[:12], "web"):
        got = find(svc, typed)
        assert (got.agent_id, got.workload.node) == (AGENT_B, "node-b"), typed
    assert find(svc, A, agent_id=AGENT_A).workload.node == "node-a"
    # Three nodes report it in the same first list: the one that joined first keeps it.
    third = Node(AGENT_C, "node-c", wl(A, "web", "node-c"))
    for agent, joined in ((later, 2.0), (first, 3.0), (third, 1.0)):
        agent._info = dataclasses.replace(agent.info(), joined=joined)
    svc = service(later, first, third)
    assert [find(svc, typed).agent_id for typed in (A, "web")] == [AGENT_C, AGENT_C]


def test_an_id_whose_home_the_caller_cannot_see(service) -> None:
    """When the home's copy is hidden from the caller and two others report the id, there is
    no home among what it sees: ambiguous, naming those two."""
    svc = service(Node(AGENT_A, "node-a", wl(A, "web", "node-a", namespace="team-y")),
                  Node(AGENT_B, "node-b", wl(A, "web", "node-b")),
                  Node(AGENT_C, "node-c", wl(A, "web", "node-c")))
    assert find(svc, A).agent_id == AGENT_A  # the home, for a caller who sees it
    assert refused(svc, A, SCOPED) == (InvalidArgument, A + " " + AMBIGUOUS.format(
        "node-b, node-c"))
    hidden_home = service(Node(AGENT_A, "node-a", wl(A, "web", "node-a", namespace="team-y")),
                          Node(AGENT_B, "node-b", wl(A, "web", "node-b")))
    assert find(hidden_home, A, SCOPED).agent_id == AGENT_B  # the only copy it sees


def test_a_name_twice_on_the_named_node_is_ambiguous(service) -> None:
    """CRI container names repeat across pods: with the node named, two of its workloads named
    alike are refused (that node twice in the message). A node that pushes one id twice
    holds it once in its view (views.py keeps a node's workloads by id): it resolves, no
    crash."""
    svc = service(Node(AGENT_A, "node-a", wl(A, "web", "node-a"), wl(B, "web", "node-a")),
                  Node(AGENT_B, "node-b", wl(C, "web", "node-b")))
    assert refused(svc, "web", agent_id=AGENT_A) == (
        InvalidArgument, "web " + AMBIGUOUS.format("node-a, node-a"))
    assert find(svc, "web", agent_id=AGENT_B).workload.id == C
    twice = service(Node(AGENT_A, "node-a", wl(A, "web", "node-a"), wl(A, "web", "node-a")))
    assert find(twice, A, agent_id=AGENT_A).workload.id == A
    assert [p.workload.id for p in twice.workloads(ADMIN).items] == [A]
