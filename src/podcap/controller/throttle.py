"""Failed logins, counted per (user name, source address) pair and per source address, in the
database (so replicas share them).

Rule, for each key: the first ``*_FREE_FAILURES`` failures within ``LOGIN_WINDOW_S`` cost
nothing; each further one blocks the key for a back-off that doubles up to
``LOGIN_BACKOFF_MAX_S``. A pair with ``LOGIN_LOCK_FAILURES`` failures is locked for
``LOGIN_LOCK_S``, or until an admin (or ``podcap user unlock NAME --data-dir`` on the host)
unlocks it. A try while blocked is refused before any password hash and is *not* counted: a
block ends when it said it would, however often someone knocks (issue 24: counting them let
anyone keep ``admin`` locked for ever).

Why the pair and not the user: a lock of the user name is a lock anyone can impose on its
owner from anywhere; a lock of the pair stops the guesser where it guesses, and the owner
logs in from their own address. Guessing from many addresses is slowed by each address's own
count (and ``LOGIN_ADDR_FREE_FAILURES``), not by the name's. Unknown names are counted like
known ones, so the answers tell nobody which names exist. A good login clears its pair's
count, not its address's.
"""

from __future__ import annotations

import time

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from podcap import limits
from podcap.controller.db import LoginFailures
from podcap.errors import ResourceExhausted


def pair_prefix(username: str) -> str:
    """Every pair key of ``username`` starts so; not every key that starts so is its own (a
    login may try any text, ``bob x`` included): ``pair_name`` says whose a key is."""
    return f"pair:{username} "


def pair_name(key: str) -> str:
    """The name a pair key counts: all before the last space (an address has none)."""
    return key.removeprefix("pair:").rsplit(" ", 1)[0]


def pair_key(username: str, source: str) -> str:
    return f"{pair_prefix(username)}{source}"[:128]


def addr_key(source: str) -> str:
    return f"addr:{source}"[:128]


def _legacy_user_key(username: str) -> str:
    """Before issue 24 the user name itself was locked; such rows are only ever cleared."""
    return f"user:{username}"[:128]


class Throttle:
    def __init__(self, sessions: sessionmaker) -> None:
        self._sessions = sessions

    def check(self, username: str, source: str) -> None:
        """Refuse a try while its pair or its address is blocked. Not counted: a block is
        never extended by tries made while it lasts."""
        now = time.time()
        keys = _keys(username, source)
        with self._sessions() as db:
            rows = {r.key: r for r in db.scalars(select(LoginFailures).where(
                LoginFailures.key.in_(keys)))}
        blocked = [k for k in keys if k in rows and rows[k].blocked_until > now]
        if not blocked:
            return
        key = blocked[0]
        row = rows[key]
        wait = row.blocked_until - now
        if key.startswith("pair:") and row.failures >= limits.LOGIN_LOCK_FAILURES:
            raise ResourceExhausted(
                f"user {username} is locked from address {source or '(unknown)'} after "
                f"{row.failures} failed logins; try again in {int(wait // 60) + 1} min, from "
                f"another address, or ask an admin to unlock it (podcap user unlock "
                f"{username}; on the server's host without logging in: podcap user unlock "
                f"{username} --data-dir DIR)", wait)
        who = f"user {username} from address {source or '(unknown)'}" \
            if key.startswith("pair:") else f"address {source}"
        raise ResourceExhausted(f"too many failed logins for {who}; try again in "
                                f"{int(wait) + 1} s", wait)

    def failed(self, username: str, source: str) -> None:
        self._count(_keys(username, source), time.time())

    def succeeded(self, username: str, source: str) -> None:
        with self._sessions() as db, db.begin():
            db.execute(delete(LoginFailures).where(
                LoginFailures.key == pair_key(username, source)))

    def clear_user(self, username: str) -> int:
        """Forget every failure of ``username``, from every address: how many keys went."""
        with self._sessions() as db, db.begin():
            keys = [k for k in db.scalars(select(LoginFailures.key).where(
                LoginFailures.key.startswith(pair_prefix(username), autoescape=True)))
                if pair_name(k) == username]  # LIKE may ignore case, and "bob x" is not bob
            done = db.execute(delete(LoginFailures).where(or_(
                LoginFailures.key.in_(keys), LoginFailures.key == _legacy_user_key(username))))
        return int(getattr(done, "rowcount", 0) or 0)

    def user_states(self, usernames: list[str]) -> dict[str, tuple[bool, int]]:
        """name -> (blocked now from some address, failures counted from all of them)."""
        if not usernames:
            return {}
        now = time.time()
        with self._sessions() as db:
            rows = list(db.scalars(select(LoginFailures).where(or_(*(
                LoginFailures.key.startswith(pair_prefix(n), autoescape=True)
                for n in usernames)))))
        states: dict[str, tuple[bool, int]] = {}
        for row in rows:
            name = pair_name(row.key)
            if name not in usernames:
                continue
            locked, failures = states.get(name, (False, 0))
            states[name] = (locked or row.blocked_until > now, failures + row.failures)
        return states

    def purge(self) -> None:
        """Forget counts that neither block nor can grow any more."""
        now = time.time()
        with self._sessions() as db, db.begin():
            db.execute(delete(LoginFailures).where(and_(
                LoginFailures.blocked_until < now,
                LoginFailures.last_failure < now - limits.LOGIN_WINDOW_S)))

    def _count(self, keys: list[str], now: float) -> None:
        for attempt in range(2):  # another replica may insert the same key first
            try:
                with self._sessions() as db, db.begin():
                    for key in keys:
                        row = db.get(LoginFailures, key, with_for_update=True)
                        if row is None:
                            row = LoginFailures(key=key, failures=0, last_failure=now,
                                                blocked_until=0.0)
                            db.add(row)
                        elif now - row.last_failure > limits.LOGIN_WINDOW_S and \
                                row.blocked_until < now:
                            row.failures = 0
                        row.failures += 1
                        row.last_failure = now
                        row.blocked_until = max(row.blocked_until, _blocked_until(
                            key, row.failures, now))
                return
            except IntegrityError:
                if attempt:
                    raise


def _keys(username: str, source: str) -> list[str]:
    return [pair_key(username, source)] + ([addr_key(source)] if source else [])


def _blocked_until(key: str, failures: int, now: float) -> float:
    is_pair = key.startswith("pair:")
    if is_pair and failures >= limits.LOGIN_LOCK_FAILURES:
        return now + limits.LOGIN_LOCK_S
    free = limits.LOGIN_USER_FREE_FAILURES if is_pair else limits.LOGIN_ADDR_FREE_FAILURES
    if failures <= free:
        return 0.0
    doublings = min(failures - free - 1, 30)  # an address may fail thousands of times
    return now + min(limits.LOGIN_BACKOFF_BASE_S * 2**doublings, limits.LOGIN_BACKOFF_MAX_S)
