"""Failed logins (controller/throttle.py), counted on a clock the test sets: per (user, address)
pair and per address, the free failures, the doubling back-off, the pair's lock, tries while
blocked (refused, never counted), the window that forgets, and what each clears. Exact times,
counts and messages, so a changed limit or comparison is seen (`make mutants`).

What only a server shows (HTTP 429 and Retry-After, the audit, the offline unlock, PostgreSQL)
is in tests/security/test_accounts.py and test_accounts_edge.py; this is the rule itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from podcap import limits
from podcap.controller.db import LoginFailures, open_db
from podcap.controller.throttle import Throttle, _legacy_user_key, addr_key, pair_key
from podcap.errors import ResourceExhausted

T0 = 1_800_000_000.0
A = "10.0.0.1"


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


def fail(throttle: Throttle, times: int, user: str = "bob", source: str = A) -> None:
    """Failures counted without asking `check` first: as if spaced so that each came after the
    block before it had ended (how a patient guesser gets there)."""
    for _ in range(times):
        throttle.failed(user, source)


def attempt(throttle: Throttle, user: str = "bob", source: str = A) -> ResourceExhausted | None:
    """One wrong password as `Auth.login` handles it: refused while blocked, else counted."""
    try:
        throttle.check(user, source)
    except ResourceExhausted as exc:
        return exc
    throttle.failed(user, source)
    return None


def refusal(throttle: Throttle, user: str = "bob", source: str = A) -> ResourceExhausted:
    with pytest.raises(ResourceExhausted) as info:
        throttle.check(user, source)
    return info.value


def row(sessions: sessionmaker, key: str) -> tuple[int, float, float] | None:
    """(failures, last_failure, blocked_until) of a key, None if it has no row."""
    with sessions() as db:
        found = db.get(LoginFailures, key)
        return None if found is None else (found.failures, found.last_failure,
                                           found.blocked_until)


def keys(sessions: sessionmaker) -> list[str]:
    with sessions() as db:
        return sorted(db.scalars(select(LoginFailures.key)))


def add_row(sessions: sessionmaker, key: str, failures: int, last_failure: float = T0,
            blocked_until: float = 0.0) -> None:
    with sessions() as db, db.begin():
        db.add(LoginFailures(key=key, failures=failures, last_failure=last_failure,
                             blocked_until=blocked_until))


def backed_off(user: str, source: str, seconds: int) -> str:
    return f"too many failed logins for user {user} from address {source}; try again in " \
        f"{seconds} s"


def locked(user: str, source: str, failures: int, minutes: int) -> str:
    return (f"user {user} is locked from address {source} after {failures} failed logins; "
            f"try again in {minutes} min, from another address, or ask an admin to unlock it "
            f"(podcap user unlock {user}; on the server's host without logging in: podcap "
            f"user unlock {user} --data-dir DIR)")


# ---- the pair ------------------------------------------------------------------------------

def test_the_free_failures_of_a_pair_cost_nothing(throttle: Throttle,
                                                  sessions: sessionmaker) -> None:
    assert limits.LOGIN_USER_FREE_FAILURES == 5
    for _ in range(5):
        assert attempt(throttle) is None
    throttle.check("bob", A)
    assert row(sessions, pair_key("bob", A)) == (5, T0, 0.0)
    assert row(sessions, addr_key(A)) == (5, T0, 0.0)
    assert throttle.user_states(["bob"]) == {"bob": (False, 5)}


def test_the_first_failure_past_the_free_ones_blocks_the_pair_for_the_base_back_off(
        throttle: Throttle, sessions: sessionmaker, clock: Clock) -> None:
    fail(throttle, 6)
    assert row(sessions, pair_key("bob", A)) == (6, T0, T0 + 1.0)
    assert row(sessions, addr_key(A)) == (6, T0, 0.0)  # 6 of the address's 20 free ones
    assert throttle.user_states(["bob"]) == {"bob": (True, 6)}
    err = refusal(throttle)
    assert err.retry_after == limits.LOGIN_BACKOFF_BASE_S == 1.0
    assert str(err) == "too many failed logins for user bob from address 10.0.0.1; try " \
        "again in 2 s"
    clock.now = T0 + 0.5
    err = refusal(throttle)
    assert (err.retry_after, str(err)) == (0.5, backed_off("bob", A, 1))
    clock.now = T0 + 1.0  # blocked means blocked_until > now: it ends exactly then
    throttle.check("bob", A)
    assert throttle.user_states(["bob"]) == {"bob": (False, 6)}


@pytest.mark.parametrize(("failures", "wait"), [
    (6, 1), (7, 2), (8, 4), (9, 8), (13, 128), (14, 256), (15, 300), (19, 300)])
def test_the_pair_back_off_doubles_up_to_its_maximum(throttle: Throttle, clock: Clock,
                                                     sessions: sessionmaker, failures: int,
                                                     wait: int) -> None:
    """After n > 5 failures the pair waits 2**(n-6) s, never more than 300 s; it ends exactly
    then."""
    assert limits.LOGIN_BACKOFF_MAX_S == 300.0
    fail(throttle, failures)
    assert row(sessions, pair_key("bob", A)) == (failures, T0, T0 + wait)
    err = refusal(throttle)
    assert (err.retry_after, str(err)) == (wait, backed_off("bob", A, wait + 1))
    clock.now = T0 + wait - 0.25
    assert refusal(throttle).retry_after == 0.25
    clock.now = T0 + wait
    throttle.check("bob", A)


def test_a_pair_is_locked_at_twenty_failures_for_an_hour(throttle: Throttle, clock: Clock,
                                                         sessions: sessionmaker) -> None:
    assert limits.LOGIN_LOCK_FAILURES == 20 and limits.LOGIN_LOCK_S == 3600.0
    fail(throttle, 19)  # one short of the lock: the longest back-off
    err = refusal(throttle)
    assert (err.retry_after, str(err)) == (300.0, backed_off("bob", A, 301))
    clock.now = T0 + 300  # the back-off is over; the 20th failure locks the pair
    assert attempt(throttle) is None
    assert row(sessions, pair_key("bob", A)) == (20, T0 + 300, T0 + 300 + 3600)
    err = refusal(throttle)
    assert err.retry_after == 3600.0
    assert str(err) == (
        "user bob is locked from address 10.0.0.1 after 20 failed logins; try again in 61 "
        "min, from another address, or ask an admin to unlock it (podcap user unlock bob; on "
        "the server's host without logging in: podcap user unlock bob --data-dir DIR)")
    assert throttle.user_states(["bob"]) == {"bob": (True, 20)}
    clock.now = T0 + 300 + 60
    err = refusal(throttle)
    assert (err.retry_after, str(err)) == (3540.0, locked("bob", A, 20, 60))
    clock.now = T0 + 300 + 3600 - 30
    err = refusal(throttle)
    assert (err.retry_after, str(err)) == (30.0, locked("bob", A, 20, 1))
    clock.now = T0 + 300 + 3600  # ends exactly then, for the admin page as for the login
    assert throttle.user_states(["bob"]) == {"bob": (False, 20)}
    throttle.check("bob", A)


def test_tries_while_blocked_are_refused_and_not_counted(throttle: Throttle, clock: Clock,
                                                         sessions: sessionmaker) -> None:
    """Issue 24: each try while locked reset the hour, so a knock an hour kept its owner out."""
    fail(throttle, 6)
    for _ in range(5):
        clock.now += 0.125
        assert str(attempt(throttle)) == backed_off("bob", A, 1)
    assert row(sessions, pair_key("bob", A)) == (6, T0, T0 + 1.0)
    assert row(sessions, addr_key(A)) == (6, T0, 0.0)
    fail(throttle, 14)  # locked: 20 failures
    clock.now = T0 + 1000
    for _ in range(30):
        clock.now += 60
        assert "is locked from address" in str(attempt(throttle))
    assert row(sessions, pair_key("bob", A)) == (20, T0 + 0.625, T0 + 0.625 + 3600)
    assert row(sessions, addr_key(A)) == (20, T0 + 0.625, 0.0)
    clock.now = T0 + 0.625 + 3600  # the lock ends when it said it would
    throttle.check("bob", A)


def test_the_same_user_from_another_address_is_not_blocked(throttle: Throttle,
                                                           sessions: sessionmaker) -> None:
    fail(throttle, 20)  # bob locked from A
    throttle.check("bob", "10.0.0.2")
    throttle.check("bob", "")
    throttle.check("eve", A)  # the address's 20 failures are its free ones
    assert row(sessions, pair_key("bob", "10.0.0.2")) is None
    assert throttle.user_states(["bob", "eve"]) == {"bob": (True, 20)}


# ---- the address ---------------------------------------------------------------------------

def test_an_address_has_more_free_failures_and_a_back_off_of_its_own(
        throttle: Throttle, clock: Clock, sessions: sessionmaker) -> None:
    assert limits.LOGIN_ADDR_FREE_FAILURES == 20
    for i in range(20):
        assert attempt(throttle, f"u{i}", "10.1.2.3") is None
    throttle.check("someone", "10.1.2.3")
    assert row(sessions, addr_key("10.1.2.3")) == (20, T0, 0.0)
    assert attempt(throttle, "u-last", "10.1.2.3") is None
    err = refusal(throttle, "someone", "10.1.2.3")
    assert str(err) == "too many failed logins for address 10.1.2.3; try again in 2 s"
    assert err.retry_after == 1.0
    assert row(sessions, addr_key("10.1.2.3")) == (21, T0, T0 + 1.0)
    # Refused, not counted, for every name tried from it.
    for i in range(3):
        assert str(attempt(throttle, f"v{i}", "10.1.2.3")) == str(err)
    assert row(sessions, addr_key("10.1.2.3")) == (21, T0, T0 + 1.0)
    # Each user it tried was counted once, none is blocked; the refused ones were not counted.
    assert throttle.user_states(["u0", "u-last", "v0", "someone"]) == {
        "u0": (False, 1), "u-last": (False, 1)}
    clock.now = T0 + 1.0
    throttle.check("someone", "10.1.2.3")


@pytest.mark.parametrize(("failures", "wait"), [
    (21, 1), (22, 2), (23, 4), (29, 256), (30, 300), (45, 300)])
def test_the_address_back_off_doubles_up_to_its_maximum(
        throttle: Throttle, sessions: sessionmaker, failures: int, wait: int) -> None:
    for i in range(failures):
        throttle.failed(f"u{i}", "10.1.2.3")
    assert row(sessions, addr_key("10.1.2.3")) == (failures, T0, T0 + wait)
    err = refusal(throttle, "x", "10.1.2.3")
    assert (err.retry_after, str(err)) == (
        wait, f"too many failed logins for address 10.1.2.3; try again in {wait + 1} s")


def test_an_address_is_never_locked_however_often_it_fails(throttle: Throttle,
                                                           sessions: sessionmaker) -> None:
    """Thousands of failures: still the longest back-off (2 ** 5000 would overflow a float)."""
    add_row(sessions, addr_key("198.51.100.9"), 5000, T0 - 1, T0 - 1)
    throttle.failed("someone", "198.51.100.9")
    assert row(sessions, addr_key("198.51.100.9")) == (5001, T0, T0 + 300)
    err = refusal(throttle, "someone-else", "198.51.100.9")
    assert (err.retry_after, str(err)) == (
        300.0, "too many failed logins for address 198.51.100.9; try again in 301 s")


def test_the_pair_block_is_named_before_the_address_block(throttle: Throttle, clock: Clock,
                                                          sessions: sessionmaker) -> None:
    fail(throttle, 21, source="10.9.9.9")  # the pair locked, the address backed off 1 s
    err = refusal(throttle, "bob", "10.9.9.9")
    assert (err.retry_after, str(err)) == (3600.0, locked("bob", "10.9.9.9", 21, 61))
    err = refusal(throttle, "eve", "10.9.9.9")
    assert (err.retry_after, str(err)) == (
        1.0, "too many failed logins for address 10.9.9.9; try again in 2 s")
    # Named first even when the address's block is the longer one.
    add_row(sessions, pair_key("carol", "10.8.8.8"), 6, T0, T0 + 1.0)
    add_row(sessions, addr_key("10.8.8.8"), 30, T0, T0 + 300.0)
    err = refusal(throttle, "carol", "10.8.8.8")
    assert (err.retry_after, str(err)) == (1.0, backed_off("carol", "10.8.8.8", 2))
    clock.now = T0 + 1.0  # the pair's block is over, the address's is not
    err = refusal(throttle, "carol", "10.8.8.8")
    assert (err.retry_after, str(err)) == (
        299.0, "too many failed logins for address 10.8.8.8; try again in 300 s")


def test_an_empty_source_counts_the_pair_only(throttle: Throttle,
                                              sessions: sessionmaker) -> None:
    fail(throttle, 6, source="")
    assert keys(sessions) == ["pair:bob "]
    err = refusal(throttle, "bob", "")
    assert (err.retry_after, str(err)) == (1.0, backed_off("bob", "(unknown)", 2))
    fail(throttle, 14, source="")
    assert keys(sessions) == ["pair:bob "]
    assert row(sessions, "pair:bob ") == (20, T0, T0 + 3600)
    assert str(refusal(throttle, "bob", "")) == locked("bob", "(unknown)", 20, 61)
    throttle.check("eve", "")  # an empty address is nobody's
    throttle.check("bob", A)


# ---- the window ----------------------------------------------------------------------------

def test_failures_past_the_window_start_again(throttle: Throttle, clock: Clock,
                                              sessions: sessionmaker) -> None:
    assert limits.LOGIN_WINDOW_S == 900.0
    fail(throttle, 3)
    clock.now = T0 + 900  # exactly the window since the last failure: still counted
    fail(throttle, 1)
    assert row(sessions, pair_key("bob", A)) == (4, T0 + 900, 0.0)
    assert row(sessions, addr_key(A)) == (4, T0 + 900, 0.0)
    clock.now = T0 + 1800.5  # past it since the last failure: forgotten
    fail(throttle, 1)
    assert row(sessions, pair_key("bob", A)) == (1, T0 + 1800.5, 0.0)
    assert row(sessions, addr_key(A)) == (1, T0 + 1800.5, 0.0)


def test_the_count_that_forgets_is_the_one_of_its_own_key(throttle: Throttle, clock: Clock,
                                                          sessions: sessionmaker) -> None:
    fail(throttle, 5, user="bob")
    clock.now = T0 + 600
    fail(throttle, 5, user="eve")  # the address's last failure is now T0 + 600
    clock.now = T0 + 901
    fail(throttle, 1, user="bob")
    assert row(sessions, pair_key("bob", A)) == (1, T0 + 901, 0.0)
    assert row(sessions, addr_key(A)) == (11, T0 + 901, 0.0)


def test_a_blocked_key_keeps_its_count_past_the_window(throttle: Throttle, clock: Clock,
                                                       sessions: sessionmaker) -> None:
    """Only a lock outlasts the window. A failure that is counted while it lasts (two tries
    that passed `check` together) adds to the count, and the lock runs from it."""
    fail(throttle, 20)  # locked until T0 + 3600
    clock.now = T0 + 901
    fail(throttle, 1)
    assert row(sessions, pair_key("bob", A)) == (21, T0 + 901, T0 + 901 + 3600)
    assert row(sessions, addr_key(A)) == (1, T0 + 901, 0.0)  # the address was not blocked
    clock.now = T0 + 901 + 3600 + 1  # the lock is over and the window past: forgotten
    assert attempt(throttle) is None
    # (blocked_until is never lowered: the old end, now past, stays.)
    assert row(sessions, pair_key("bob", A)) == (1, T0 + 4502, T0 + 4501)


# ---- what clears what ----------------------------------------------------------------------

def test_a_good_login_clears_its_pair_only(throttle: Throttle, sessions: sessionmaker) -> None:
    fail(throttle, 7, source="10.0.0.7")
    fail(throttle, 3, source="10.0.0.8")
    fail(throttle, 14, user="eve", source="10.0.0.7")  # the address: 21 failures, blocked
    throttle.succeeded("bob", "10.0.0.7")
    assert row(sessions, pair_key("bob", "10.0.0.7")) is None
    assert row(sessions, pair_key("bob", "10.0.0.8")) == (3, T0, 0.0)
    assert row(sessions, pair_key("eve", "10.0.0.7")) == (14, T0, T0 + 256)
    assert row(sessions, addr_key("10.0.0.7")) == (21, T0, T0 + 1)
    assert throttle.user_states(["bob"]) == {"bob": (False, 3)}
    assert str(refusal(throttle, "carol", "10.0.0.7")) == \
        "too many failed logins for address 10.0.0.7; try again in 2 s"


def test_clear_user_clears_every_pair_of_the_user_and_no_other_user(
        throttle: Throttle, sessions: sessionmaker) -> None:
    fail(throttle, 20, user="bob", source="10.0.0.1")
    fail(throttle, 3, user="bob", source="10.0.0.2")
    fail(throttle, 1, user="bob", source="")
    add_row(sessions, _legacy_user_key("bob"), 21, T0, T0 + 3600)  # from before issue 24
    fail(throttle, 2, user="bobby", source="10.0.0.1")  # "bob" is a prefix of its name
    add_row(sessions, _legacy_user_key("bobby"), 3)
    fail(throttle, 2, user="eve", source="10.0.0.2")
    fail(throttle, 1, user="b_b", source="10.0.0.3")  # LIKE's wildcards are not wild here
    fail(throttle, 1, user="b%", source="10.0.0.3")
    assert throttle.user_states(["b_b", "b%"]) == {"b_b": (False, 1), "b%": (False, 1)}
    assert throttle.clear_user("b_b") == 1
    assert throttle.clear_user("b%") == 1
    assert throttle.clear_user("bob") == 4
    assert keys(sessions) == [
        "addr:10.0.0.1", "addr:10.0.0.2", "addr:10.0.0.3", "pair:bobby 10.0.0.1",
        "pair:eve 10.0.0.2", "user:bobby"]
    assert row(sessions, addr_key("10.0.0.1")) == (22, T0, T0 + 2)  # addresses are kept
    throttle.check("bob", "10.0.0.2")
    assert throttle.clear_user("bob") == 0
    assert throttle.user_states(["bobby", "eve"]) == {"bobby": (False, 2), "eve": (False, 2)}


def test_user_states_sums_a_users_pairs(throttle: Throttle, clock: Clock,
                                        sessions: sessionmaker) -> None:
    assert throttle.user_states([]) == {}
    fail(throttle, 6, user="bob", source="10.0.0.1")  # blocked 1 s
    fail(throttle, 2, user="bob", source="10.0.0.2")
    fail(throttle, 3, user="bobby", source="10.0.0.1")
    fail(throttle, 4, user="eve", source="10.0.0.3")
    add_row(sessions, _legacy_user_key("eve"), 30, T0, T0 + 3600)  # not a pair: not counted
    # SQLite's LIKE ignores case, so the query finds "Bob"'s pairs too (their keys sort
    # before bob's); the name read back from the key leaves them out.
    fail(throttle, 7, user="Bob", source="10.0.0.1")
    assert throttle.user_states(["bob"]) == {"bob": (True, 8)}
    assert throttle.user_states(["bob", "eve", "nobody"]) == {
        "bob": (True, 8), "eve": (False, 4)}
    assert throttle.user_states(["bobby", "eve"]) == {"bobby": (False, 3), "eve": (False, 4)}
    clock.now = T0 + 1.0
    assert throttle.user_states(["bob"]) == {"bob": (False, 8)}
    # Blocked from one address of several is blocked.
    fail(throttle, 1, user="bob", source="10.0.0.2")
    fail(throttle, 4, user="bob", source="10.0.0.4")
    fail(throttle, 2, user="bob", source="10.0.0.4")  # the 6th from 10.0.0.4 blocks it
    assert throttle.user_states(["bob"]) == {"bob": (True, 15)}


def test_purge_forgets_only_counts_that_neither_block_nor_grow(
        throttle: Throttle, clock: Clock, sessions: sessionmaker) -> None:
    fail(throttle, 1, user="old", source="10.0.0.1")       # last failure at T0, not blocked
    fail(throttle, 20, user="locked", source="")           # blocked until T0 + 3600
    add_row(sessions, _legacy_user_key("gone"), 3, T0 - 5000, T0 - 4000)
    clock.now = T0 + 900
    fail(throttle, 1, user="edge", source="10.0.0.2")      # at T0 + 900
    clock.now = T0 + 901
    throttle.purge()
    assert keys(sessions) == ["addr:10.0.0.2", "pair:edge 10.0.0.2", "pair:locked "]
    clock.now = T0 + 1800  # edge's last failure is exactly the window ago: kept
    throttle.purge()
    assert keys(sessions) == ["addr:10.0.0.2", "pair:edge 10.0.0.2", "pair:locked "]
    clock.now = T0 + 3600  # the lock ends now: kept, the window is past for the others
    throttle.purge()
    assert keys(sessions) == ["pair:locked "]
    assert row(sessions, "pair:locked ") == (20, T0, T0 + 3600)
    clock.now = T0 + 3600.5
    throttle.purge()
    assert keys(sessions) == []


def test_keys_are_cut_to_the_column() -> None:
    assert pair_key("bob", "10.0.0.1") == "pair:bob 10.0.0.1"
    assert pair_key("bob", "") == "pair:bob "
    assert addr_key("::1") == "addr:::1"
    assert _legacy_user_key("bob") == "user:bob"
    assert pair_key("x" * 200, "10.0.0.1") == "pair:" + "x" * 123
    assert pair_key("bob", "y" * 200) == "pair:bob " + "y" * 119
    assert addr_key("y" * 200) == "addr:" + "y" * 123
    assert _legacy_user_key("z" * 200) == "user:" + "z" * 123


def test_a_long_name_is_counted_under_its_cut_key(throttle: Throttle,
                                                  sessions: sessionmaker) -> None:
    name = "n" * 300
    fail(throttle, 6, user=name, source="10.0.0.9")
    assert keys(sessions) == ["addr:10.0.0.9", "pair:" + "n" * 123]
    assert refusal(throttle, name, "10.0.0.9").retry_after == 1.0
    throttle.succeeded(name, "10.0.0.9")
    assert keys(sessions) == ["addr:10.0.0.9"]


def test_a_login_name_with_a_space_is_nobodys_and_case_is_kept(throttle: Throttle) -> None:
    """A login may try any text: ``bob x`` from an address is the key ``pair:bob x ADDR``, which
    is not bob's (it once made the admin page show bob locked, and bob's unlock delete it);
    and SQLite's LIKE ignores case, so unlocking ``bob`` once cleared ``Bob`` too."""
    fail(throttle, 20, user="bob x", source="10.0.0.9")
    fail(throttle, 4, user="bob ", source="10.0.0.9")  # a trailing space: not bob either
    fail(throttle, 3, user="Bob", source="10.0.0.1")
    fail(throttle, 2, user="bob", source="10.0.0.1")
    assert throttle.user_states(["bob", "Bob"]) == {"bob": (False, 2), "Bob": (False, 3)}
    assert throttle.clear_user("bob") == 1
    assert throttle.user_states(["Bob", "bob x", "bob "]) == {
        "Bob": (False, 3), "bob x": (True, 20), "bob ": (False, 4)}
