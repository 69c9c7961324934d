"""The controller's view of one node (views.py) when commands and the agent's own updates
cross: what a command did is never undone by an update the agent made before it."""

from __future__ import annotations

import dataclasses

from podcap.model import Capture, CaptureSpec, Status, Workload
from podcap.views import InventoryUpdate, NodeView

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
