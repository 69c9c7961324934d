"""Failed logins, counted per user name and per source address, in the database (so replicas
share them).

Rule, for each key: the first ``*_FREE_FAILURES`` failures within ``LOGIN_WINDOW_S`` cost
nothing; each further one blocks the key for a back-off that doubles up to
``LOGIN_BACKOFF_MAX_S``. A try while blocked is refused before any password hash and counts as
a failure. A user name with ``LOGIN_LOCK_FAILURES`` failures is locked for ``LOGIN_LOCK_S``, or
until an admin unlocks it. Unknown names are counted like known ones, so the answers tell
nobody which names exist. A good login clears its user's count, not its address's.
"""

from __future__ import annotations

import time

from sqlalchemy import and_, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from podcap import limits
from podcap.controller.db import LoginFailures
from podcap.errors import ResourceExhausted


def user_key(username: str) -> str:
    return f"user:{username}"[:128]


def addr_key(source: str) -> str:
    return f"addr:{source}"[:128]


class Throttle:
    def __init__(self, sessions: sessionmaker) -> None:
        self._sessions = sessions

    def check(self, username: str, source: str) -> None:
        """Refuse (and count) a try while its user or address is blocked."""
        now = time.time()
        keys = [user_key(username)] + ([addr_key(source)] if source else [])
        with self._sessions() as db:
            rows = {r.key: r for r in db.scalars(select(LoginFailures).where(
                LoginFailures.key.in_(keys)))}
        blocked = [k for k in keys if k in rows and rows[k].blocked_until > now]
        if not blocked:
            return
        self._count(blocked, now)
        key = blocked[0]
        row = rows[key]
        wait = row.blocked_until - now
        if key.startswith("user:") and row.failures + 1 >= limits.LOGIN_LOCK_FAILURES:
            raise ResourceExhausted(
                f"user {username} is locked after {row.failures + 1} failed logins; try again "
                f"in {int(wait // 60) + 1} min, or ask an admin to unlock it (podcap user "
                f"unlock {username})", wait)
        who = f"user {username}" if key.startswith("user:") else f"address {source}"
        raise ResourceExhausted(f"too many failed logins for {who}; try again in "
                                f"{int(wait) + 1} s", wait)

    def failed(self, username: str, source: str) -> None:
        keys = [user_key(username)] + ([addr_key(source)] if source else [])
        self._count(keys, time.time())

    def succeeded(self, username: str) -> None:
        self.clear_user(username)

    def clear_user(self, username: str) -> None:
        with self._sessions() as db, db.begin():
            db.execute(delete(LoginFailures).where(LoginFailures.key == user_key(username)))

    def user_states(self, usernames: list[str]) -> dict[str, tuple[bool, int]]:
        """name -> (locked now, failures counted)."""
        now = time.time()
        keys = {user_key(n): n for n in usernames}
        with self._sessions() as db:
            rows = list(db.scalars(select(LoginFailures).where(
                LoginFailures.key.in_(list(keys)))))
        return {keys[r.key]: (r.blocked_until > now, r.failures) for r in rows}

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


def _blocked_until(key: str, failures: int, now: float) -> float:
    is_user = key.startswith("user:")
    if is_user and failures >= limits.LOGIN_LOCK_FAILURES:
        return now + limits.LOGIN_LOCK_S
    free = limits.LOGIN_USER_FREE_FAILURES if is_user else limits.LOGIN_ADDR_FREE_FAILURES
    if failures <= free:
        return 0.0
    doublings = min(failures - free - 1, 30)  # an address may fail thousands of times
    return now + min(limits.LOGIN_BACKOFF_BASE_S * 2**doublings, limits.LOGIN_BACKOFF_MAX_S)
