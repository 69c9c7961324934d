"""The leader lease on a real PostgreSQL (controller/leader.py): one holder, a takeover after
the expiry, a graceful hand-over at once, and the fence refusing a late action of a holder
that lost the lease even while it still believes it leads."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from podcap.controller.db import Lease, open_db
from podcap.controller.leader import Leadership, LostLease, Solo, open_leader
from tests.pg import new_database
from tests.support import wait_for


@pytest.fixture
def sessions(postgres_url: str, tmp_path):  # type: ignore[no-untyped-def]
    made = open_db(new_database(postgres_url), tmp_path)
    yield made
    made.kw["bind"].dispose()


def test_one_of_two_leads_and_the_other_takes_over_after_the_expiry(sessions) -> None:
    a = Leadership(sessions, ttl_s=1.5, holder="a").start()
    assert a.wait(5)
    b = Leadership(sessions, ttl_s=1.5, holder="b").start()
    try:
        time.sleep(2.0)  # more than a lease: a renews, b never gets it
        assert a.is_leader and not b.is_leader
        first = a.epoch
        a._stop.set()  # a stops renewing as a paused process would (no release)
        a._thread.join()
        began = time.monotonic()
        assert b.wait(5)
        took = time.monotonic() - began
        assert took <= 1.5 + 1.0, took  # the lease ends, b's next round takes it
        assert b.epoch == first + 1  # the fencing token grew
    finally:
        b.close()


def test_a_holder_that_lost_the_lease_is_fenced_even_while_it_believes_it_leads(
        sessions) -> None:
    a = Leadership(sessions, ttl_s=1.5, holder="a").start()
    assert a.wait(5)
    with a.fenced("a write as the leader") as db:
        assert db.scalars(select(Lease)).one().holder == "a"
    a._stop.set()
    a._thread.join()
    a._until = time.monotonic() + 3600  # a's belief, frozen as in a paused process
    b = Leadership(sessions, ttl_s=1.5, holder="b").start()
    try:
        assert b.wait(5)
        assert a.is_leader  # it still believes so...
        with pytest.raises(LostLease):  # ...and the database says no
            a.check("a late member start")
        with pytest.raises(LostLease), a.fenced("a late write"):
            raise AssertionError("must not run")
        assert a.fenced_out == 2
        assert b.check("the new leader's action") == b.epoch
    finally:
        b.close()


def test_a_graceful_close_hands_over_at_once(sessions) -> None:
    a = Leadership(sessions, ttl_s=5.0, holder="a").start()
    assert a.wait(5)
    b = Leadership(sessions, ttl_s=5.0, holder="b").start()
    try:
        a.close()
        began = time.monotonic()
        assert b.wait(5)
        assert time.monotonic() - began < 2.5  # its next renewal round, not the 5 s expiry
    finally:
        b.close()


def test_sqlite_is_one_controller_so_its_leader_always_leads(tmp_path) -> None:
    sessions = open_db(None, tmp_path)
    leader = open_leader(sessions)
    assert isinstance(leader, Solo) and leader.is_leader
    assert leader.check("anything") == 1
    with leader.fenced("a write") as db:
        assert db.scalars(select(Lease)).all() == []
    sessions.kw["bind"].dispose()


def test_the_lease_row_uses_the_databases_clock(sessions) -> None:
    a = Leadership(sessions, ttl_s=2.0, holder="a").start()
    try:
        assert a.wait(5)
        wait_for(lambda: a.terms == 1, timeout=2)
        with sessions() as db:
            row = db.scalars(select(Lease)).one()
        assert abs(row.expires_at - (time.time() + 2.0)) < 2.0
    finally:
        a.close()
