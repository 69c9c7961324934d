"""The rules that pick and show a group's members (controller/group_members.py), on hand-made
workloads and rows: fast, no server. tests/groups/test_groups.py runs the same rules through a
real server and real containers."""

from __future__ import annotations

from podcap.controller.db import CaptureGroup, GroupMember
from podcap.controller.group_members import Group, Member, Selector, may_see, split
from podcap.controller.inventory import PlacedWorkload
from podcap.controller.principal import Principal
from podcap.model import CaptureSpec, Workload


def placed(name: str, netns: int | None, agent: str = "a1") -> PlacedWorkload:
    return PlacedWorkload(Workload(id=name + "-id", name=name, runtime="docker", node="n1",
                                   state="running", pid=1, netns=netns, cap_sniff=True,
                                   namespace="shop", pod_name="web-0"), agent)


def group_in(*namespaces: str, skipped: tuple[str, ...] = ()) -> Group:
    members = [Member(GroupMember(group_id="g" * 24, name=f"c{i}", namespace=ns), None)
               for i, ns in enumerate(namespaces)]
    return Group(CaptureGroup(id="g" * 24, owner="root-admin"), Selector.of(namespace="shop"),
                 CaptureSpec(), members,
                 [GroupMember(group_id="g" * 24, name="s", namespace=ns) for ns in skipped])


def test_a_group_spanning_two_namespaces_is_hidden_from_an_operator_of_one() -> None:
    """Every member's namespace must be visible: one visible namespace would show an operator
    of ``a`` the packets (and names) of ``b``."""
    operator_a = Principal("op", "operator", frozenset({"a"}))
    assert may_see(operator_a, group_in("a"))
    assert not may_see(operator_a, group_in("a", "b"))
    assert not may_see(operator_a, group_in("a", skipped=("b",)))  # skipped ones count too
    assert may_see(Principal("op2", "operator", frozenset({"a", "b"})), group_in("a", "b"))


def test_two_containers_sharing_a_netns_the_second_is_skipped_with_its_reason() -> None:
    """A pod's containers share one network namespace: capturing both would write every packet
    twice into the merged file."""
    first, second = placed("app", netns=4026532000), placed("sidecar", netns=4026532000)
    elsewhere = placed("other", netns=4026532000, agent="a2")  # same inode, another node
    capturable, skipped = split([second, elsewhere, first])
    assert [p.workload.name for p in capturable] == ["app", "other"]
    assert [(p.workload.name, why) for p, why in skipped] == [
        ("sidecar", "shares the network namespace of app (same packets)")]
