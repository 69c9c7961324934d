"""Failed logins (controller/throttle.py), counted on a clock the test sets: the free failures,
the doubling back-off, the lockout, the window that forgets, and what each clears. Exact times
and counts, so a changed limit or comparison is seen (`make mutants`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from podcap import limits
from podcap.controller.db import open_db
from podcap.controller.throttle import Throttle, addr_key, user_key
from podcap.errors import ResourceExhausted

T0 = 1_800_000_000.0


class Clock:
    """`time.time()` as the test says; every reader of the wall clock sees it."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    made = Clock()
    monkeypatch.setattr(time, "time", made)
    return made


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker]:
    made = open_db(None, tmp_path)
    yield made
    made.kw["bind"].dispose()


@pytest.fixture
def throttle(sessions: sessionmaker, clock: Clock) -> Throttle:
    return Throttle(sessions)


def fail(throttle: Throttle, times: int, user: str = "bob", source: str = "") -> None:
    for _ in range(times):
        throttle.failed(user, source)


def refusal(throttle: Throttle, user: str = "bob", source: str = "") -> ResourceExhausted:
    with pytest.raises(ResourceExhausted) as info:
        throttle.check(user, source)
    return info.value


def test_the_free_failures_cost_nothing(throttle: Throttle) -> None:
    fail(throttle, limits.LOGIN_USER_FREE_FAILURES)
    throttle.check("bob", "")
    assert throttle.user_states(["bob"]) == {"bob": (False, 5)}


def test_the_first_failure_past_the_free_ones_blocks_for_the_base_back_off(
        throttle: Throttle, clock: Clock) -> None:
    fail(throttle, limits.LOGIN_USER_FREE_FAILURES + 1)
    assert throttle.user_states(["bob"]) == {"bob": (True, 6)}
    err = refusal(throttle)
    assert err.retry_after == limits.LOGIN_BACKOFF_BASE_S == 1.0
    assert str(err) == "too many failed logins for user bob; try again in 2 s"
    # The refused try counted: 7 failures, blocked 2 s from now.
    assert throttle.user_states(["bob"]) == {"bob": (True, 7)}
    clock.now = T0 + 1.5
    assert refusal(throttle).retry_after == 0.5


def test_the_back_off_doubles_up_to_its_maximum(throttle: Throttle, clock: Clock) -> None:
    """After n > 5 failures the user waits 2**(n-6) s, never more than 300 s; it ends exactly
    then (blocked means `blocked_until > now`)."""
    free = limits.LOGIN_USER_FREE_FAILURES
    for n, wait in ((6, 1), (7, 2), (8, 4), (9, 8), (13, 128), (14, 256), (15, 300), (19, 300)):
        clock.now += 10_000  # past any block, inside no window that matters for the count
        throttle.clear_user("bob")
        fail(throttle, n)
        assert refusal(throttle).retry_after == wait, n
        throttle.clear_user("bob")
        fail(throttle, n)
        clock.now += wait
        throttle.check("bob", "")  # not blocked any more
        assert n > free


def test_a_user_is_locked_for_an_hour_after_twenty_failures(throttle: Throttle,
                                                            clock: Clock) -> None:
    fail(throttle, limits.LOGIN_LOCK_FAILURES - 1)
    err = refusal(throttle)  # the 20th failure: told it is locked, while still backed off
    assert err.retry_after == 300.0
    assert str(err).startswith("user bob is locked after 20 failed logins; try again in 6 min")
    # Now locked for an hour.
    err = refusal(throttle)
    assert err.retry_after == limits.LOGIN_LOCK_S == 3600.0
    assert str(err) == ("user bob is locked after 21 failed logins; try again in 61 min, or "
                        "ask an admin to unlock it (podcap user unlock bob)")
    assert throttle.user_states(["bob"]) == {"bob": (True, 21)}
    clock.now = T0 + 60.0
    err = refusal(throttle)
    assert err.retry_after == 3540.0
    assert str(err).startswith("user bob is locked after 22 failed logins; try again in 60 min")
    # A try while locked is a failure too: the hour starts again from it, and ends exactly
    # then, for the admin page as for the login.
    clock.now = T0 + 60.0 + 3600.0
    assert throttle.user_states(["bob"]) == {"bob": (False, 22)}
    throttle.check("bob", "")


def test_the_lock_message_names_the_count_when_the_next_failure_locks(
        throttle: Throttle) -> None:
    """The try that makes the 20th failure is told it is locked, not backed off."""
    fail(throttle, limits.LOGIN_LOCK_FAILURES - 2)  # 18: blocked by back-off
    err = refusal(throttle)  # the 19th: still a back-off
    assert str(err).startswith("too many failed logins for user bob")
    err = refusal(throttle)  # the 20th: the lock
    assert str(err).startswith("user bob is locked after 20 failed logins")


def test_an_address_has_more_free_failures_and_is_never_locked(throttle: Throttle,
                                                               clock: Clock) -> None:
    for i in range(limits.LOGIN_ADDR_FREE_FAILURES):
        throttle.failed(f"u{i}", "10.1.2.3")
    throttle.check("someone", "10.1.2.3")
    throttle.failed("u-last", "10.1.2.3")
    err = refusal(throttle, "someone", "10.1.2.3")
    assert str(err) == "too many failed logins for address 10.1.2.3; try again in 2 s"
    assert err.retry_after == 1.0
    for i in range(100):
        throttle.failed(f"v{i}", "10.1.2.3")
    assert refusal(throttle, "anyone", "10.1.2.3").retry_after == 300.0
    # The users it tried were counted once each, and none is blocked; a try refused for its
    # address alone counts against the address only.
    assert throttle.user_states(["u0", "v99", "someone"]) == {
        "u0": (False, 1), "v99": (False, 1)}


def test_the_user_block_is_named_before_the_address_block(throttle: Throttle) -> None:
    fail(throttle, 25, source="10.9.9.9")  # both the user and the address are blocked
    assert str(refusal(throttle, "bob", "10.9.9.9")).startswith("user bob is locked")
    assert str(refusal(throttle, "eve", "10.9.9.9")).startswith(
        "too many failed logins for address 10.9.9.9")


def test_no_source_address_counts_the_user_only(throttle: Throttle,
                                                sessions: sessionmaker) -> None:
    fail(throttle, 30, user="bob", source="")
    throttle.check("eve", "")  # an empty address is nobody's
    from podcap.controller.db import LoginFailures
    with sessions() as db:
        assert [r.key for r in db.query(LoginFailures)] == ["user:bob"]


def test_failures_past_the_window_start_again(throttle: Throttle, clock: Clock) -> None:
    fail(throttle, 3)
    clock.now = T0 + limits.LOGIN_WINDOW_S  # exactly the window: still counted
    fail(throttle, 1)
    assert throttle.user_states(["bob"]) == {"bob": (False, 4)}
    clock.now = T0 + 2 * limits.LOGIN_WINDOW_S + 0.5  # past it since the last failure
    fail(throttle, 1)
    assert throttle.user_states(["bob"]) == {"bob": (False, 1)}


def test_a_blocked_key_keeps_its_count_past_the_window(throttle: Throttle,
                                                       clock: Clock) -> None:
    fail(throttle, limits.LOGIN_LOCK_FAILURES)  # locked for an hour
    clock.now = T0 + limits.LOGIN_WINDOW_S + 1  # past the window, still locked
    fail(throttle, 1)
    assert throttle.user_states(["bob"]) == {"bob": (True, 21)}


def test_a_good_login_clears_the_user_not_the_address(throttle: Throttle) -> None:
    fail(throttle, 21, source="10.0.0.7")
    throttle.succeeded("bob")
    assert throttle.user_states(["bob"]) == {}
    assert str(refusal(throttle, "carol", "10.0.0.7")).startswith(
        "too many failed logins for address 10.0.0.7")


def test_clear_user_touches_no_other_user(throttle: Throttle) -> None:
    fail(throttle, 7, user="bob")
    fail(throttle, 2, user="eve")
    throttle.clear_user("bob")
    assert throttle.user_states(["bob", "eve"]) == {"eve": (False, 2)}


def test_purge_forgets_only_counts_that_neither_block_nor_grow(
        throttle: Throttle, clock: Clock) -> None:
    fail(throttle, 1, user="old")                          # last failure at T0, not blocked
    fail(throttle, 20, user="locked")                      # blocked until T0 + 3600
    clock.now = T0 + limits.LOGIN_WINDOW_S
    fail(throttle, 1, user="edge")                         # at T0 + 900
    clock.now = T0 + limits.LOGIN_WINDOW_S + 1
    throttle.purge()
    assert set(throttle.user_states(["old", "locked", "edge"])) == {"locked", "edge"}
    clock.now = T0 + 3600 + 1
    throttle.purge()
    assert set(throttle.user_states(["old", "locked", "edge"])) == set()


def test_purge_keeps_a_count_still_in_its_window(throttle: Throttle, clock: Clock) -> None:
    fail(throttle, 2, user="recent")
    clock.now = T0 + limits.LOGIN_WINDOW_S  # last_failure == now - window: kept
    throttle.purge()
    assert throttle.user_states(["recent"]) == {"recent": (False, 2)}


def test_keys_are_cut_to_the_column() -> None:
    assert user_key("bob") == "user:bob"
    assert addr_key("::1") == "addr:::1"
    assert user_key("x" * 200) == "user:" + "x" * 123
    assert addr_key("y" * 200) == "addr:" + "y" * 123
