"""A start's owner row and its audit row are one commit (issue 23: the start path), and neither
is lost to the other's failure: an audit row that cannot be stored leaves the owner row and the
capture (logged, as ever), an owner row that cannot be stored fails the start as before.

The service and a real SQLite database, with an agent stand-in that starts from memory: what is
counted here is the controller's database work, not tcpdump's (tests/test_start_path.py).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError

from podcap.controller import audit as audit_module
from podcap.controller.audit import Audit
from podcap.controller.db import AuditEvent, CaptureOwner, open_db
from podcap.controller.service import CaptureService
from podcap.model import Capture, CaptureSpec
from tests.test_fanout import ADMIN, FakeAgent, FakeRegistry


class StartingAgent(FakeAgent):
    """Starts answer at once with a fresh record, as an agent's would after "listening on"."""

    def __init__(self) -> None:
        super().__init__("a" * 16, "node-a")
        self.started = 0

    def start(self, workload_id: str, spec: CaptureSpec, owner: str = "") -> Capture:
        self.started += 1
        return dataclasses.replace(self.capture, id=f"{self.started:032x}", spec=spec,
                                   owner=owner)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[CaptureService, StartingAgent, list[str]]:
    sessions = open_db(None, tmp_path)
    agent = StartingAgent()
    svc = CaptureService(sessions, FakeRegistry(agent),  # type: ignore[arg-type]
                         audit=Audit(sessions))
    commits: list[str] = []
    event.listen(sessions.kw["bind"], "commit", lambda conn: commits.append("commit"))
    return svc, agent, commits


def _rows(svc: CaptureService) -> tuple[list[str], list[tuple[str, str]]]:
    with svc.owners._sessions() as db:
        owners = [r.capture_id for r in db.scalars(select(CaptureOwner))]
        audit = [(r.event, r.capture_id) for r in db.scalars(select(AuditEvent))]
    return owners, audit


def test_a_start_writes_its_owner_and_audit_rows_in_one_commit(setup) -> None:
    svc, agent, commits = setup
    svc.workloads(ADMIN)  # whatever the listing costs is not the start's rows
    commits.clear()
    owned = svc.start(ADMIN, agent.workload.name, CaptureSpec(filter="tcp port 80"))
    assert commits == ["commit"]
    owners, audit = _rows(svc)
    assert owners == [owned.capture.id]
    assert audit == [("capture.start", owned.capture.id)]
    assert svc.audit.query(event="capture.start")[0][0].detail == "tcp port 80"


def test_an_audit_row_that_fails_leaves_the_owner_row_and_the_start(
        setup, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    svc, agent, _ = setup
    real = audit_module.AuditEvent

    def broken(**fields: object) -> AuditEvent:
        return real(**{**fields, "time": None})  # NOT NULL: the audit row's insert fails

    monkeypatch.setattr(audit_module, "AuditEvent", broken)
    with caplog.at_level(logging.ERROR, logger="podcap.audit"):
        owned = svc.start(ADMIN, agent.workload.name, CaptureSpec())
    assert _rows(svc) == ([owned.capture.id], [])
    assert "audit: could not store capture.start" in caplog.text


def test_an_owner_row_that_fails_fails_the_start_and_is_not_audited(setup) -> None:
    svc, agent, _ = setup
    svc.owners.add(f"{1:032x}", agent.info().id, "someone", "")  # the id the start will get
    with pytest.raises(IntegrityError):
        svc.start(ADMIN, agent.workload.name, CaptureSpec())
    assert _rows(svc) == ([f"{1:032x}"], [])
