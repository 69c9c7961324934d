"""The audit log: who did what, from where, to which capture — in the database (``GET
/api/audit``, admins) and as JSON lines in ``<data-dir>/audit.jsonl`` (mode 0600) for log
shippers. One ``record`` call writes both; a failure to write never fails the action, it is
logged instead.

Events: ``login`` (ok or not), ``logout``, ``capture.start``, ``capture.stop``,
``capture.delete``, ``capture.expired`` (retention), ``capture.reclaimed`` (deleted to make room
for a start, ``--reclaim oldest``), ``download`` (with bytes sent), ``user.add``, ``user.change``,
``user.password``, ``user.remove``, ``user.unlock``, ``agent.join`` (ok or refused),
``agent.revoke``, ``agent.token``, ``refused`` (a signed-in user was refused: 403, or 404 for an
object in another namespace).

Rows anyone can cause are rate-limited (controller/audit_gate.py, limits ``AUDIT_*``): failed
logins per source address and in all, refusals per user. What is left out is counted in
``suppressed`` (the ``podcap_audit_suppressed_total`` metric) and the next row says how many.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from podcap import limits
from podcap.controller.audit_gate import Gate
from podcap.controller.db import AuditEvent

log = logging.getLogger("podcap.audit")
EVENTS = ("login", "logout", "capture.start", "capture.stop", "capture.delete",
          "capture.expired", "capture.reclaimed", "download",
          "user.add", "user.change", "user.password", "user.remove", "user.unlock",
          "agent.join", "agent.revoke", "agent.token", "refused")
PAGE_MAX = 500


@dataclass(frozen=True)
class Entry:
    id: int
    time: float
    event: str
    username: str
    source: str
    ok: bool
    capture_id: str
    workload: str
    namespace: str
    bytes: int
    detail: str


class Audit:
    def __init__(self, sessions: sessionmaker, path: Path | None = None) -> None:
        self._sessions = sessions
        self._path = path
        self._lock = threading.Lock()
        self._refusals = Gate(limits.AUDIT_REFUSALS_PER_USER, limits.AUDIT_REFUSALS_MAX,
                              limits.AUDIT_WINDOW_S)
        self._failures = Gate(limits.AUDIT_FAILURES_PER_ADDRESS, limits.AUDIT_FAILURES_MAX,
                              limits.AUDIT_WINDOW_S)
        self._suppressed: dict[str, int] = {"login": 0, "agent.join": 0, "refused": 0}

    @property
    def suppressed(self) -> dict[str, int]:
        """Rows left out by the rate limits since start, by event (a metric reads it)."""
        with self._lock:
            return dict(self._suppressed)

    def failed_login(self, username: str, source: str, detail: str) -> None:
        self.unauthenticated_failure("login", username, source, detail)

    def unauthenticated_failure(self, event: str, username: str, source: str,
                                detail: str) -> bool:
        """A try that proved nobody (a failed login, a refused join): rate-limited per source
        address and in all, since anyone can send them (a blocked login costs the sender
        nothing). True when it got its row."""
        skipped = self._failures.admit(source)
        if skipped is None:
            self._left_out(event)
            return False
        self.record(event, username=username, source=source, ok=False,
                    detail=detail + (f" ({skipped} more failures from {source or '?'} not "
                                     "recorded)" if skipped else ""))
        return True

    def refused(self, username: str, source: str, action: str, message: str) -> None:
        """A signed-in user refused (403, or 404 for another namespace's object): one row,
        at most ``AUDIT_REFUSALS_PER_USER`` a window per user."""
        skipped = self._refusals.admit(username)
        if skipped is None:
            self._left_out("refused")
        else:
            self.record("refused", username=username, source=source, ok=False,
                        detail=f"{action}: {message}" + (
                            f" ({skipped} more refusals of {username} not recorded)"
                            if skipped else ""))

    def _left_out(self, event: str) -> None:
        with self._lock:
            self._suppressed[event] = self._suppressed.get(event, 0) + 1

    def record(self, event: str, *, username: str = "", source: str = "", ok: bool = True,
               capture_id: str = "", workload: str = "", namespace: str = "", nbytes: int = 0,
               detail: str = "", along: Callable[[Session], None] | None = None) -> None:
        """``along`` adds the action's own rows (a start's owner row) to the audit row's
        transaction: one commit where there were two, on the start path. Should that
        transaction fail, the action's rows are committed alone (their failure is the action's
        and raises, as before) and the audit row after them, as if recorded separately."""
        def make() -> AuditEvent:
            return AuditEvent(time=time.time(), event=event, username=username[:64],
                              source=source[:64], ok=ok, capture_id=capture_id[:32],
                              workload=workload[:255], namespace=namespace[:253],
                              bytes=nbytes, detail=detail[:1024])

        entry = self._store(make, along, event, username)
        if self._path is not None:
            line = json.dumps(asdict(entry), ensure_ascii=True) + "\n"
            try:
                with self._lock:
                    fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                    with os.fdopen(fd, "a") as fh:
                        fh.write(line)
            except OSError:
                log.exception("audit: could not append to %s", self._path)

    def _store(self, make: Callable[[], AuditEvent], along: Callable[[Session], None] | None,
               event: str, username: str) -> Entry:
        row = make()
        try:
            with self._sessions() as db, db.begin():
                if along is not None:
                    along(db)
                db.add(row)
                db.flush()
                return _entry(row)
        except Exception:  # noqa: BLE001 - the action happened; losing its line is logged
            if along is None:
                log.exception("audit: could not store %s by %s", event, username)
                return _entry(row, 0)
        with self._sessions() as db, db.begin():  # the action's rows alone: may raise
            along(db)
        return self._store(make, None, event, username)

    def query(self, *, event: str | None = None, username: str | None = None,
              capture_id: str | None = None, ok: bool | None = None,
              since: float | None = None, until: float | None = None, limit: int = 100,
              offset: int = 0) -> tuple[list[Entry], int]:
        """Newest first: (one page, how many match in all)."""
        where = []
        if event:
            where.append(AuditEvent.event == event)
        if username:
            where.append(AuditEvent.username == username)
        if capture_id:
            where.append(AuditEvent.capture_id == capture_id)
        if ok is not None:
            where.append(AuditEvent.ok == ok)
        if since is not None:
            where.append(AuditEvent.time >= since)
        if until is not None:
            where.append(AuditEvent.time < until)
        with self._sessions() as db:
            total = db.scalar(select(func.count()).select_from(AuditEvent).where(*where)) or 0
            rows = db.scalars(select(AuditEvent).where(*where)
                              .order_by(AuditEvent.id.desc()).offset(offset)
                              .limit(min(limit, PAGE_MAX)))
            return [_entry(r) for r in rows], int(total)


def _entry(row: AuditEvent, id_: int | None = None) -> Entry:
    return Entry(row.id if id_ is None else id_, row.time, row.event, row.username,
                 row.source, row.ok, row.capture_id, row.workload, row.namespace, row.bytes,
                 row.detail)
