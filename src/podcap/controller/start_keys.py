"""Idempotent starts across replicas: a client's ``Idempotency-Key`` names one capture.

A client whose start request got no answer (the replica died with it, a load balancer cut the
connection) cannot know whether the capture began; a retry might make a second one. With an
``Idempotency-Key`` header (the CLI sends one on every start and retries through a failover)
the first request claims the key in the database (one row, its primary key: of two replicas
one wins), starts, and writes the capture's id beside it; a retry with the same key, on any
replica, waits for that and answers with the same capture. A claim whose start failed is
dropped (the retry starts anew); one left by a replica that died mid-start is void after
``START_KEY_STALE_S``. Keys are per user and forgotten after ``START_KEY_KEEP_S``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from podcap import limits
from podcap.controller.db import StartKey
from podcap.controller.inventory import OwnedCapture
from podcap.controller.principal import Principal
from podcap.errors import InvalidArgument, Unavailable

_KEY = re.compile(r"[A-Za-z0-9._:-]{1,80}")


class StartKeys:
    def __init__(self, sessions: sessionmaker) -> None:
        self._sessions = sessions

    def once(self, who: Principal, key: str | None, start: Callable[[], OwnedCapture],
             existing: Callable[[str], OwnedCapture]) -> OwnedCapture:
        """``start()`` once per (user, key); a repeat gets ``existing(capture_id)``."""
        if key is None:
            return start()
        if not _KEY.fullmatch(key):
            raise InvalidArgument("Idempotency-Key: 1 to 80 letters, digits, '.', '_', ':' "
                                  "or '-'")
        full = f"{who.username} {key}"
        deadline = time.monotonic() + limits.START_KEY_WAIT_S
        while not self._claim(full):
            with self._sessions() as db:
                row = db.get(StartKey, full)
            if row is not None and row.capture_id:
                return existing(row.capture_id)
            if row is not None and time.time() - row.created > limits.START_KEY_STALE_S \
                    and self._take_over(full, row.created):
                break
            if time.monotonic() > deadline:
                raise Unavailable(f"a start with Idempotency-Key {key} is still in progress; "
                                  "retry in a moment")
            time.sleep(0.2)
        try:
            owned = start()
        except BaseException:
            with self._sessions() as db, db.begin():
                db.execute(delete(StartKey).where(StartKey.key == full))
            raise
        with self._sessions() as db, db.begin():
            db.execute(update(StartKey).where(StartKey.key == full).values(
                capture_id=owned.capture.id))
        return owned

    def _claim(self, full: str) -> bool:
        now = time.time()
        try:
            with self._sessions() as db, db.begin():
                db.execute(delete(StartKey).where(
                    StartKey.created < now - limits.START_KEY_KEEP_S))
                db.add(StartKey(key=full, capture_id="", created=now))
        except IntegrityError:
            return False
        return True

    def _take_over(self, full: str, created: float) -> bool:
        with self._sessions() as db, db.begin():
            done = db.execute(update(StartKey).where(
                StartKey.key == full, StartKey.created == created,
                StartKey.capture_id == "").values(created=time.time()))
        return bool(getattr(done, "rowcount", 0))
