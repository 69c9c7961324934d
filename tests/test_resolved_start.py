"""The controller resolves what a user typed (controller/resolver.py) and gives the agent the
full id it found, never the text: agents take full ids only (types.full_workload_id), so a
name or a short id reaching one would be refused there (tests/test_start_path.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from podcap.errors import NotFound
from podcap.ids import full_workload_id, new_capture_id
from podcap.model import Capture, CaptureSpec, Workload
from tests.test_fanout import ADMIN, FakeAgent, _service

FULL = "a1b2c3d4e5f6" + "7" * 52


class StartAgent(FakeAgent):
    """Keeps the workload id each start was given."""

    def __init__(self) -> None:
        super().__init__("a" * 16, "node-a")
        self.workload = dataclasses.replace(self.workload, id=FULL, name="web")
        self.started: list[str] = []

    def start(self, workload_id: str, spec: CaptureSpec, owner: str = "") -> Capture:
        self.started.append(full_workload_id(workload_id))
        return dataclasses.replace(self.capture, id=new_capture_id(), workload=self.workload,
                                   spec=spec, owner=owner)


def test_the_agent_is_given_the_full_id_whatever_was_typed(tmp_path: Path) -> None:
    agent = StartAgent()
    svc = _service(tmp_path, agent)
    try:
        for typed in ("web", FULL[:12], FULL[:20], FULL):
            assert svc.start(ADMIN, typed, CaptureSpec()).capture.workload.id == FULL
        assert agent.started == [FULL] * 4
    finally:
        svc.close()


class LateAgent(StartAgent):
    """Its view lacks the workload until it is asked to look (a container started a moment
    ago, before its feed looked)."""

    def __init__(self) -> None:
        super().__init__()
        self.looked = 0

    def pushed(self) -> tuple[list[Workload], list[Capture]]:
        return ([self.workload] if self.looked else []), []

    def sync(self) -> None:
        self.looked += 1


def test_a_start_naming_what_no_view_holds_has_the_agents_look_once(tmp_path: Path) -> None:
    agent = LateAgent()
    svc = _service(tmp_path, agent)
    try:
        assert svc.workloads(ADMIN).items == []
        assert agent.looked == 0  # a list never asks
        assert svc.start(ADMIN, "web", CaptureSpec()).capture.workload.id == FULL
        assert agent.looked == 1
        with pytest.raises(NotFound, match="workload nothing not found"):
            svc.start(ADMIN, "nothing", CaptureSpec())
        assert agent.looked == 2
    finally:
        svc.close()
