"""The controller's view of one node (views.py) when commands and the agent's own updates
cross: what a command did is never undone by an update the agent made before it; and the
counters-only deltas the feed sends for running captures."""

from __future__ import annotations

import dataclasses

from podcap.agent.feed import InventoryFeed
from podcap.model import Capture, CaptureSpec, Stats, Status, Workload
from podcap.views import Counters, InventoryUpdate, NodeView

WORKLOAD = Workload(id="a" * 64, name="web", runtime="docker", node="n", kind="container")


def capture(cid: str, status: Status = Status.RUNNING) -> Capture:
    return Capture(id=cid, agent_id="c" * 16, workload=WORKLOAD, spec=CaptureSpec(),
                   status=status)


def listed(view: NodeView) -> list[str]:
    return [c.id for c in view.state().captures]


def test_a_deleted_capture_is_not_listed_again_by_an_update_older_than_the_delete() -> None:
    view = NodeView()
    one, two = "1" * 32, "2" * 32
    assert view.apply(InventoryUpdate(1, True, captures=(capture(one), capture(two))))
    view.forget(one)  # DELETE answered; the agent's next look has not happened yet
    assert view.apply(InventoryUpdate(2, False, captures=(capture(one), capture(two))))
    assert listed(view) == [two]  # made before the delete: the zombie stays out
    assert view.apply(InventoryUpdate(3, True, captures=(capture(one),)))
    assert listed(view) == []  # a snapshot made before the delete, too
    assert view.apply(InventoryUpdate(4, False, captures_gone=(one,)))
    assert listed(view) == [] and not view._forgotten  # said gone: nothing left to remember


def test_a_stop_answered_after_the_remove_does_not_list_it_again() -> None:
    view = NodeView()
    one = "1" * 32
    assert view.apply(InventoryUpdate(1, True, captures=(capture(one),)))
    view.forget(one)
    view.observe(capture(one, Status.STOPPED))  # a stop that crossed the remove
    assert listed(view) == []


def test_a_snapshot_without_a_deleted_capture_ends_its_memory() -> None:
    view = NodeView()
    one = "1" * 32
    assert view.apply(InventoryUpdate(1, True, captures=(capture(one),)))
    view.forget(one)
    assert view.apply(InventoryUpdate(5, True))
    assert not view._forgotten


def test_an_ended_capture_never_runs_again() -> None:
    view = NodeView()
    one = "1" * 32
    assert view.apply(InventoryUpdate(1, True, captures=(capture(one),)))
    view.observe(dataclasses.replace(capture(one), status=Status.STOPPED))  # the stop's answer
    assert view.apply(InventoryUpdate(2, False, captures=(capture(one),)))  # older: running
    assert [c.status for c in view.state().captures] == [Status.STOPPED]


def test_counters_move_a_running_capture_and_never_an_ended_one() -> None:
    view = NodeView()
    one, two = "1" * 32, "2" * 32
    assert view.apply(InventoryUpdate(1, True, captures=(capture(one), capture(two))))
    view.observe(dataclasses.replace(capture(two, Status.STOPPED), stats=Stats(captured=9)))
    assert view.apply(InventoryUpdate(2, False, counters=(
        Counters(one, Stats(captured=5, bytes=400), 2), Counters(two, Stats(captured=3), 1),
        Counters("3" * 32, Stats(captured=1), 1))))  # older numbers for the stopped one
    held = {c.id: c for c in view.state().captures}
    assert (held[one].stats, held[one].files) == (Stats(captured=5, bytes=400), 2)
    assert held[one].status is Status.RUNNING and held[one].workload == WORKLOAD
    assert held[two].stats == Stats(captured=9)  # its final numbers stand
    assert set(held) == {one, two}  # counters of a capture the view does not hold list nothing


def test_the_feed_sends_counters_alone_when_only_they_moved() -> None:
    now = {"c": capture("1" * 32)}
    feed = InventoryFeed(lambda: [], lambda: list(now.values()))
    got: list[InventoryUpdate] = []
    feed.subscribe(got.append)
    now["c"] = dataclasses.replace(now["c"], stats=Stats(captured=7), files=1)
    feed._counted.clear()  # its second has passed
    feed.tick()
    assert got[-1].counters == (Counters("1" * 32, Stats(captured=7), 1),)
    assert got[-1].captures == ()
    now["c"] = dataclasses.replace(now["c"], status=Status.STOPPED, stats=Stats(captured=8))
    feed.tick()  # a status change goes whole and at once, within the second
    assert got[-1].captures == (now["c"],) and got[-1].counters == ()
