"""Which agent answers for a capture id.

A capture placed by this controller (an owner row) is answered for by its own agent alone; one
started before this controller knew it is looked for on every agent, and on the last known
state of those away. A search that asked the agents hands on the record it was given, so the
service does not ask that agent again.
"""

from __future__ import annotations

from dataclasses import dataclass

from podcap.controller.agents import AgentRegistry
from podcap.controller.db import CaptureOwner
from podcap.controller.fanout import FanOut
from podcap.controller.owners import Owners
from podcap.errors import NotFound
from podcap.ids import capture_id
from podcap.model import Capture
from podcap.transport.base import AgentTransport


@dataclass(frozen=True)
class Route:
    """The agent that answers for a capture, its owner row, and the capture's record when
    finding the agent already fetched it (None: the service asks the agent)."""

    transport: AgentTransport
    row: CaptureOwner | None
    capture: Capture | None = None


class Router:
    def __init__(self, agents: AgentRegistry, fanout: FanOut, owners: Owners) -> None:
        self._agents = agents
        self._fanout = fanout
        self._owners = owners

    def route(self, cid: str) -> Route:
        cid = capture_id(cid)
        row = self._owners.get(cid)
        transports = self._agents.transports()
        if row is not None:  # placed by this controller: its agent alone may answer for it
            if row.agent_id in transports:
                return Route(transports[row.agent_id], row)
            raise NotFound(f"capture {cid} not found: its agent {row.agent_id} is gone")
        answers, unreachable = self._fanout.ask(lambda t: _found(t, cid))
        for aid, found in answers.items():  # started before this controller knew it
            if found is not None:
                return Route(transports[aid], row, found)
        for away in unreachable:  # or on an agent away now: its last known state has it
            if any(c.id == cid for c in transports[away.agent_id].known_captures()):
                return Route(transports[away.agent_id], row)
        raise NotFound(f"capture {cid} not found")


def _found(transport: AgentTransport, cid: str) -> Capture | None:
    try:
        return transport.get_capture(cid)
    except NotFound:
        return None
