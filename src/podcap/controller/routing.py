"""Which agent answers for a capture id.

A capture placed by this controller (an owner row) is answered for by its own agent alone; one
started before this controller knew it is looked for on every agent, and on the last known
state of those away.
"""

from __future__ import annotations

from podcap.controller.agents import AgentRegistry
from podcap.controller.db import CaptureOwner
from podcap.controller.fanout import FanOut
from podcap.controller.owners import Owners
from podcap.errors import NotFound
from podcap.ids import capture_id
from podcap.transport.base import AgentTransport


class Router:
    def __init__(self, agents: AgentRegistry, fanout: FanOut, owners: Owners) -> None:
        self._agents = agents
        self._fanout = fanout
        self._owners = owners

    def route(self, cid: str) -> tuple[AgentTransport, CaptureOwner | None]:
        cid = capture_id(cid)
        row = self._owners.get(cid)
        transports = self._agents.transports()
        if row is not None:  # placed by this controller: its agent alone may answer for it
            if row.agent_id in transports:
                return transports[row.agent_id], row
            raise NotFound(f"capture {cid} not found: its agent {row.agent_id} is gone")
        answers, unreachable = self._fanout.ask(lambda t: _has_capture(t, cid))
        for aid, has in answers.items():  # started before this controller knew it
            if has:
                return transports[aid], row
        for away in unreachable:  # or on an agent away now: its last known state has it
            if any(c.id == cid for c in transports[away.agent_id].known_captures()):
                return transports[away.agent_id], row
        raise NotFound(f"capture {cid} not found")


def _has_capture(transport: AgentTransport, cid: str) -> bool:
    try:
        transport.get_capture(cid)
        return True
    except NotFound:
        return False
