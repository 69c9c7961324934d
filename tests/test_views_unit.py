"""The controller's view of one node (views.py) when commands and the agent's own updates
cross: what a command did is never undone by an update the agent made before it; and the
counters-only deltas the feed sends for running captures."""

from __future__ import annotations

import dataclasses

from podcap import limits
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


def wl(n: int) -> Workload:
    return dataclasses.replace(WORKLOAD, id=f"{n:064d}", name=f"w{n}")


def test_a_view_waits_for_a_snapshot_and_refuses_a_delta_out_of_turn() -> None:
    view = NodeView()
    before = view.state()
    assert not before.synced and before.synced_at == 0 and view.seq is None
    assert before.version > 0 and before.workloads_version == before.version
    assert not view.apply(InventoryUpdate(1, False, (wl(1),)))  # no snapshot yet
    assert view.gaps == 0 and view.updates == 0  # not a gap: nothing was followed
    assert view.apply(InventoryUpdate(4, True, (wl(1), wl(2))))
    state = view.state()
    assert state.synced and state.synced_at > 0 and view.seq == 4 and view.updates == 1
    assert [w.id for w in state.workloads] == [wl(1).id, wl(2).id]
    assert not view.apply(InventoryUpdate(6, False, (wl(3),)))  # 5 was lost
    assert view.gaps == 1 and view.seq is None and not view.state().synced
    assert not view.apply(InventoryUpdate(7, False, (wl(3),)))  # still waiting: not a new gap
    assert view.gaps == 1
    assert [w.id for w in view.state().workloads] == [wl(1).id, wl(2).id]  # untouched
    assert view.apply(InventoryUpdate(7, True, (wl(2), wl(3))))
    assert view.apply(InventoryUpdate(8, False, (dataclasses.replace(wl(3), name="new"),),
                                      (wl(2).id, wl(9).id)))
    assert [(w.id, w.name) for w in view.state().workloads] == [(wl(3).id, "new")]
    assert view.updates == 3 and view.gaps == 1 and view.seq == 8
    assert not view.apply(InventoryUpdate(10, False))
    assert view.gaps == 2


def test_the_workloads_version_moves_with_workloads_only_and_the_version_with_anything() -> None:
    view = NodeView()
    assert view.apply(InventoryUpdate(1, True, (wl(1),), captures=(capture("1" * 32),)))
    state = view.state()
    assert view.state() is state  # made once per change, shared by readers
    assert view.apply(InventoryUpdate(2, False, counters=(Counters("1" * 32, Stats(1), 1),)))
    counted = view.state()
    assert counted is not state and counted.version > state.version
    assert counted.workloads_version == state.workloads_version  # counters move every second
    assert view.apply(InventoryUpdate(3, False, workloads_gone=(wl(1).id,)))
    assert view.state().workloads_version > state.workloads_version
    gone = view.state()
    assert view.apply(InventoryUpdate(4, False, (wl(2),)))
    assert view.state().workloads_version > gone.workloads_version
    for poke in (view.touch, view.unsynced, lambda: view.forget("1" * 32)):
        held = view.state()
        poke()
        assert view.state() is not held and view.state().version > held.version
    assert not view.state().synced  # unsynced: the next session begins with a snapshot
    assert not view.apply(InventoryUpdate(5, False))


def test_commands_answers_are_held_and_read_back() -> None:
    view = NodeView()
    one, two = "1" * 32, "2" * 32
    assert view.apply(InventoryUpdate(1, True, captures=(capture(one),)))
    before = view.state()
    view.observe(capture(two))  # a start's answer, before any update names it
    assert view.capture(two) == capture(two) and view.capture("3" * 32) is None
    assert view.state().version > before.version and set(listed(view)) == {one, two}
    view.observe(capture(one, Status.STOPPED))
    assert view.capture(one) is not None and view.capture(one).status is Status.STOPPED
    view.observe(capture(one))  # an older answer (a status read before the stop)
    assert view.capture(one).status is Status.STOPPED
    view.forget("9" * 32)  # not held: remembered, lists unchanged
    assert set(listed(view)) == {one, two}
    assert view.apply(InventoryUpdate(1, True, captures=(capture(one),)))  # a new snapshot
    assert view.capture(one).status is Status.STOPPED  # an ended one never runs again
    assert listed(view) == [one]
    assert view.apply(InventoryUpdate(2, False, captures_gone=(one,)))
    assert listed(view) == []


def test_deleted_captures_are_remembered_up_to_a_bound() -> None:
    view = NodeView()
    for n in range(limits.VIEW_FORGOTTEN_MAX + 2):
        view.forget(f"{n:032d}")
    assert len(view._forgotten) == limits.VIEW_FORGOTTEN_MAX
    assert f"{0:032d}" not in view._forgotten and f"{1:032d}" not in view._forgotten
    assert f"{limits.VIEW_FORGOTTEN_MAX + 1:032d}" in view._forgotten
    view.observe(capture(f"{limits.VIEW_FORGOTTEN_MAX:032d}"))
    assert listed(view) == []  # still remembered: not listed again
    view.observe(capture(f"{0:032d}"))
    assert listed(view) == [f"{0:032d}"]  # dropped past the bound: a late answer lists it
