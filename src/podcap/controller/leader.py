"""One leader among the controller replicas, for work that must run once (issue 20).

Several replicas serve the API on one PostgreSQL, but group members must start once and a
retention sweep delete once. The replica holding a **lease** does that work; the others wait.

- **The lease** is a row of ``leases`` (name, holder, epoch, expires_at). Its holder renews it
  every ``ttl / 3``; anyone may take it once ``expires_at`` has passed, raising ``epoch`` (the
  fencing token). Every time is the database's (``clock_timestamp()``), never a replica's own
  clock. A row lock (``FOR UPDATE``) makes each take or renewal one at a time.
- **Believed locally** until ``ttl - ttl / 6`` after the start of the round that renewed it
  (the monotonic clock runs on while a process is stopped): a resumed process knows at once
  that it may have lost it.
- **Fencing**: belief is not enough. A paused process (GC, SIGSTOP, a slow disk) may wake up
  after another replica took over and carry on with the action it was about to take. So every
  action is fenced: ``fenced(what)`` opens a transaction that reads the lease row (``FOR
  SHARE``: a taker's ``UPDATE`` waits for it) and goes on only if this replica still holds it
  with its epoch and it has not expired; the action's own writes go in that same transaction.
  ``check(what)`` is the same for an action that is not a write (a command to an agent, right
  after the check). An action refused is counted (``fenced_out``) and logged.
- **Release**: a replica that stops gracefully ends its lease at once (``expires_at = 0``), so
  a rolling restart hands over without waiting for the expiry.

SQLite holds one controller (sqlite_lock.py): ``Solo`` is the leader that always holds, with
the same interface. Any background loop runs under either with ``loop(name, interval, fn)``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from podcap import limits
from podcap.controller.db import Lease

log = logging.getLogger("podcap.leader")

LEASE = "background"  # the one lease every background loop of the controller runs under
# Test seam (tests/ha): stall this many seconds before the fenced action named by
# PODCAP_TEST_STALL_BEFORE, so a test can stop the process exactly there.
STALL_ENV, STALL_WHAT_ENV = "PODCAP_TEST_STALL_S", "PODCAP_TEST_STALL_BEFORE"


class LostLease(Exception):  # noqa: N818 - what happened, as the log says it
    """This replica does not hold the lease (any more): the action was not taken."""


class Leader(Protocol):
    """What a background loop needs: whether to work now, and a fence around each action."""

    @property
    def is_leader(self) -> bool: ...

    @property
    def epoch(self) -> int: ...

    def check(self, what: str, epoch: int | None = None) -> int: ...

    def fenced(self, what: str, epoch: int | None = None
               ) -> contextlib.AbstractContextManager[Session]: ...


class Solo:
    """The leader of a lone controller (SQLite): always holds, epoch 1."""

    is_leader = True
    epoch = 1
    fenced_out = 0

    def __init__(self, sessions: sessionmaker) -> None:
        self._sessions = sessions

    def check(self, what: str, epoch: int | None = None) -> int:
        return 1

    @contextlib.contextmanager
    def fenced(self, what: str, epoch: int | None = None) -> Iterator[Session]:
        with self._sessions() as db, db.begin():
            yield db

    def close(self) -> None:
        pass


class Leadership:
    """The lease ``name`` in the database, taken and renewed by a thread of its own."""

    def __init__(self, sessions: sessionmaker, name: str = LEASE,
                 ttl_s: float = limits.LEASE_TTL_S, holder: str | None = None) -> None:
        self._sessions = sessions
        self.name = name
        self.ttl = ttl_s
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._epoch = 0
        self._until = 0.0  # monotonic: believed held until then
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._changed = threading.Condition(self._lock)
        self.fenced_out = 0  # actions refused because the lease was lost
        self.terms = 0  # how many times this replica became the leader
        self._thread = threading.Thread(target=self._run, name="podcap-lease", daemon=True)

    def start(self) -> Leadership:
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop renewing, and end the lease now if it is ours (a graceful stop hands over at
        once)."""
        self._stop.set()
        self._thread.join(timeout=5)
        epoch, self._epoch, self._until = self._epoch, 0, 0.0
        if epoch:
            with contextlib.suppress(Exception), self._sessions() as db, db.begin():
                db.execute(update(Lease).where(
                    Lease.name == self.name, Lease.holder == self.holder,
                    Lease.epoch == epoch).values(expires_at=0.0))
            log.info("lease %s released (epoch %d)", self.name, epoch)

    @property
    def is_leader(self) -> bool:
        return self._epoch != 0 and time.monotonic() < self._until

    @property
    def epoch(self) -> int:
        """This replica's epoch while it believes it holds the lease, else 0."""
        return self._epoch if self.is_leader else 0

    def wait(self, timeout: float) -> bool:
        """Until this replica holds the lease (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self.is_leader and time.monotonic() < deadline:
                self._changed.wait(min(0.1, max(0.0, deadline - time.monotonic())))
        return self.is_leader

    # ---- fencing ------------------------------------------------------------------------

    @contextlib.contextmanager
    def fenced(self, what: str, epoch: int | None = None) -> Iterator[Session]:
        """A transaction in which this replica provably holds the lease with ``epoch`` (the
        one the action was decided under; default: the current one); LostLease (nothing done)
        otherwise. Put the action's writes in it."""
        epoch = self._epoch if epoch is None else epoch
        _test_stall(what, epoch)
        with self._sessions() as db, db.begin():
            query = select(Lease).where(Lease.name == self.name)
            if db.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(read=True)
            row = db.scalars(query).first()
            now = db_now(db)
            if epoch == 0 or row is None or row.holder != self.holder or \
                    row.epoch != epoch or row.expires_at <= now:
                self.fenced_out += 1
                held = "nobody" if row is None else f"{row.holder} (epoch {row.epoch})"
                log.warning("not the leader any more: %s not done (our epoch %d; the lease is "
                            "held by %s)", what, epoch, held)
                raise LostLease(f"{what}: lease {self.name} lost (epoch {epoch})")
            yield db

    def check(self, what: str, epoch: int | None = None) -> int:
        """Fence an action that is not a database write: the epoch, or LostLease."""
        epoch = self._epoch if epoch is None else epoch
        with self.fenced(what, epoch):
            return epoch

    # ---- the lease ----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self._round(began)
            except Exception as exc:  # noqa: BLE001 - the database may be away a while
                log.warning("lease %s: could not renew or take it: %s", self.name, exc)
            self._stop.wait(max(0.05, self.ttl / 3 - (time.monotonic() - began)))

    def _round(self, began: float) -> None:
        held = 0
        try:
            with self._sessions() as db, db.begin():
                now = db_now(db)
                row = db.get(Lease, self.name, with_for_update=True)
                if row is None:
                    db.add(Lease(name=self.name, holder=self.holder, epoch=1,
                                 expires_at=now + self.ttl))
                    held = 1
                elif row.holder == self.holder and row.epoch == self._epoch and \
                        row.expires_at > now:
                    row.expires_at = now + self.ttl
                    held = row.epoch
                elif row.expires_at <= now:
                    row.epoch += 1
                    row.holder, row.expires_at = self.holder, now + self.ttl
                    held = row.epoch
        except IntegrityError:  # another replica made the row first
            held = 0
        with self._changed:
            was, self._epoch = self._epoch, held
            self._until = began + self.ttl - self.ttl / 6 if held else 0.0
            self._changed.notify_all()
        if held and held != was:
            self.terms += 1
            log.info("this replica leads the background work now (lease %s, epoch %d)",
                     self.name, held)
        elif was and not held:
            log.warning("lease %s lost (epoch %d): background work stops here", self.name, was)


def loop(leader: Leader, name: str, interval: float, action: Callable[[], object],
         stop: threading.Event) -> threading.Thread:
    """Run ``action`` every ``interval`` seconds while ``leader`` leads, until ``stop``: the
    one way a background job runs once across replicas (each action inside it fenced)."""
    def run() -> None:
        while not stop.wait(interval):
            if not leader.is_leader:
                continue
            try:
                action()
            except LostLease as exc:
                log.info("%s: %s", name, exc)
            except Exception:  # noqa: BLE001 - the loop outlives one bad round
                log.exception("%s round failed", name)

    thread = threading.Thread(target=run, name=f"podcap-{name}", daemon=True)
    thread.start()
    return thread


def db_now(db: Session) -> float:
    """The database's time (seconds since the epoch): one clock for every replica."""
    if db.get_bind().dialect.name == "postgresql":
        return float(db.execute(text("SELECT extract(epoch FROM clock_timestamp())"))
                     .scalar_one())
    return time.time()  # SQLite: one controller, its own clock


def open_leader(sessions: sessionmaker, ttl_s: float = limits.LEASE_TTL_S
                ) -> Leadership | Solo:
    """The leader for this database: a lease on a server database, ``Solo`` on SQLite."""
    if sessions.kw["bind"].dialect.name == "sqlite":
        return Solo(sessions)
    return Leadership(sessions, ttl_s=ttl_s).start()


def _test_stall(what: str, epoch: int) -> None:
    seconds = os.environ.get(STALL_ENV)
    if seconds and os.environ.get(STALL_WHAT_ENV, "") in what:
        log.warning("test stall: %s s before %s (epoch %d)", seconds, what, epoch)
        time.sleep(float(seconds))
