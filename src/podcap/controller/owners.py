"""Who owns each capture: one database row per capture this controller placed (its agent,
its owner, the namespace it was checked against), shared by every controller replica.

The row is what routing trusts: a capture placed here is answered for by its own agent alone,
whatever another agent reports.
"""

from __future__ import annotations

import time

from sqlalchemy.orm import Session, sessionmaker

from podcap.controller.db import CaptureOwner


class Owners:
    def __init__(self, sessions: sessionmaker) -> None:
        self._sessions = sessions

    def add(self, cid: str, agent_id: str, owner: str, namespace: str) -> None:
        with self._sessions() as db, db.begin():
            put(db, cid, agent_id, owner, namespace)

    def get(self, cid: str) -> CaptureOwner | None:
        with self._sessions() as db:
            return db.get(CaptureOwner, cid)

    def all(self) -> dict[str, CaptureOwner]:
        with self._sessions() as db:
            return {row.capture_id: row for row in db.query(CaptureOwner)}

    def forget(self, cid: str) -> tuple[str, str] | None:
        """Drop a deleted capture's row: its (owner, namespace) when there was one."""
        with self._sessions() as db, db.begin():
            row = db.get(CaptureOwner, cid)
            if row is None:
                return None
            db.delete(row)
            return row.owner, row.namespace


def mark_stopped(db: Session, cid: str) -> None:
    """Said by the replica that stopped it, in the transaction of its audit row."""
    row = db.get(CaptureOwner, cid)
    if row is not None and row.stopped is None:
        row.stopped = time.time()


def put(db: Session, cid: str, agent_id: str, owner: str, namespace: str) -> None:
    """The row added to a transaction already open: a start commits it with its audit row."""
    db.add(CaptureOwner(capture_id=cid, agent_id=agent_id, owner=owner, namespace=namespace,
                        created=time.time()))
