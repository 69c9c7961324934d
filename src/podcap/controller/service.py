"""The one service every interface (REST v1, native API, UI, CLI) goes through.

It authorizes, routes each command to the agent that owns the workload or capture, and records
who owns each capture. No interface holds a business rule of its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.orm import sessionmaker

from podcap.capture.ring import PcapStream
from podcap.controller.auth import Principal
from podcap.controller.db import CaptureOwner
from podcap.errors import InvalidArgument, NotFound
from podcap.model import AgentInfo, Capture, CaptureSpec, Workload
from podcap.transport.base import AgentTransport
from podcap.types import capture_id, workload_id


@dataclass(frozen=True)
class PlacedWorkload:
    workload: Workload
    agent_id: str


@dataclass(frozen=True)
class OwnedCapture:
    capture: Capture
    owner: str
    namespace: str


class CaptureService:
    def __init__(self, sessions: sessionmaker, transports: list[AgentTransport]) -> None:
        self._sessions = sessions
        self._agents = {t.info().id: t for t in transports}

    # ---- agents and workloads -----------------------------------------------------------

    def agents(self) -> list[AgentInfo]:
        return [t.info() for t in self._agents.values()]

    def workloads(self, who: Principal, query: str = "") -> list[PlacedWorkload]:
        placed = [PlacedWorkload(w, aid) for aid, t in self._agents.items()
                  for w in t.list_workloads() if who.can_see(w.namespace)]
        if query:
            q = query.lower()
            placed = [p for p in placed if q in _haystack(p.workload)]
        return sorted(placed, key=lambda p: (p.workload.namespace, p.workload.pod_name,
                                             p.workload.name))

    def workload(self, who: Principal, wid: str, agent_id: str | None = None) -> PlacedWorkload:
        wid = workload_id(wid)
        agents = self._agents.items()
        if agent_id is not None:
            if agent_id not in self._agents:
                raise NotFound(f"enforcer {agent_id} not found")
            agents = [(agent_id, self._agents[agent_id])]  # type: ignore[assignment]
        for aid, transport in agents:
            try:
                found = transport.get_workload(wid)
            except NotFound:
                continue
            if who.can_see(found.namespace):
                return PlacedWorkload(found, aid)
            break
        if agent_id is not None and any(self._has(t, wid) for a, t in self._agents.items()
                                        if a != agent_id):
            raise InvalidArgument(f"enforcer {agent_id} is not the node of workload {wid}")
        raise NotFound(f"workload {wid} not found")

    def check_filter(self, expression: str) -> None:
        next(iter(self._agents.values())).check_filter(expression)

    # ---- captures -----------------------------------------------------------------------

    def start(self, who: Principal, wid: str, spec: CaptureSpec,
              agent_id: str | None = None) -> OwnedCapture:
        placed = self.workload(who, wid, agent_id)
        who.require_write()
        capture = self._agents[placed.agent_id].start(placed.workload.id, spec)
        with self._sessions() as db, db.begin():
            db.add(CaptureOwner(capture_id=capture.id, agent_id=placed.agent_id,
                                owner=who.username, namespace=placed.workload.namespace,
                                created=time.time()))
        return OwnedCapture(capture, who.username, placed.workload.namespace)

    def captures(self, who: Principal, wid: str | None = None,
                 agent_id: str | None = None) -> list[OwnedCapture]:
        owners = self._owners()
        found = []
        for aid, transport in self._agents.items():
            if agent_id is not None and aid != agent_id:
                continue
            for capture in transport.list():
                owned = self._owned(capture, owners.get(capture.id))
                if who.can_see(owned.namespace) and wid in (None, capture.workload.id):
                    found.append(owned)
        return sorted(found, key=lambda o: o.capture.start_time)

    def capture(self, who: Principal, cid: str) -> OwnedCapture:
        transport, row = self._route(cid)
        owned = self._owned(transport.get(cid), row)
        if not who.can_see(owned.namespace):
            raise NotFound(f"capture {cid} not found")
        return owned

    def stop(self, who: Principal, cid: str) -> OwnedCapture:
        owned = self.capture(who, cid)
        who.require_write()
        transport, row = self._route(cid)
        return self._owned(transport.stop(owned.capture.id), row)

    def remove(self, who: Principal, cid: str) -> None:
        self.capture(who, cid)
        who.require_write()
        transport, _ = self._route(cid)
        transport.remove(cid)
        with self._sessions() as db, db.begin():
            row = db.get(CaptureOwner, cid)
            if row is not None:
                db.delete(row)

    def stream_pcap(self, who: Principal, cid: str,
                    limit: int | None = None) -> tuple[OwnedCapture, PcapStream]:
        owned = self.capture(who, cid)
        transport, _ = self._route(cid)
        return owned, transport.stream_pcap(cid, limit)

    # ---- internals ----------------------------------------------------------------------

    def _route(self, cid: str) -> tuple[AgentTransport, CaptureOwner | None]:
        cid = capture_id(cid)
        with self._sessions() as db:
            row = db.get(CaptureOwner, cid)
        if row is not None and row.agent_id in self._agents:
            return self._agents[row.agent_id], row
        for transport in self._agents.values():  # started before this controller knew it
            try:
                transport.get(cid)
                return transport, row
            except NotFound:
                continue
        raise NotFound(f"capture {cid} not found")

    def _owners(self) -> dict[str, CaptureOwner]:
        with self._sessions() as db:
            return {row.capture_id: row for row in db.query(CaptureOwner)}

    @staticmethod
    def _owned(capture: Capture, row: CaptureOwner | None) -> OwnedCapture:
        if row is None:
            return OwnedCapture(capture, "", capture.workload.namespace)
        return OwnedCapture(capture, row.owner, row.namespace)

    @staticmethod
    def _has(transport: AgentTransport, wid: str) -> bool:
        try:
            transport.get_workload(wid)
            return True
        except NotFound:
            return False


def _haystack(w: Workload) -> str:
    return " ".join([w.name, w.image, w.namespace, w.pod_name, w.id, *w.ips]).lower()
