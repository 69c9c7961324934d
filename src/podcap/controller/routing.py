"""Which agent answers for a capture id.

A capture placed by this controller (an owner row) is answered for by its own agent alone; one
started before this controller knew it is looked for in every agent's view (views.py), and
in the last known state of those away; the record found is handed on, so the service does not
look again.
"""

from __future__ import annotations

from dataclasses import dataclass

from podcap.controller.agents import AgentRegistry
from podcap.controller.db import CaptureOwner
from podcap.controller.inventory import Inventory
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
    def __init__(self, agents: AgentRegistry, inventory: Inventory, owners: Owners) -> None:
        self._agents = agents
        self._inventory = inventory
        self._owners = owners

    def route(self, cid: str) -> Route:
        cid = capture_id(cid)
        row = self._owners.get(cid)
        transports = self._agents.transports()
        if row is not None:  # placed by this controller: its agent alone may answer for it
            if row.agent_id in transports:
                return Route(transports[row.agent_id], row)
            raise NotFound(f"capture {cid} not found: its agent {row.agent_id} is gone")
        for transport in transports.values():  # started before this controller knew it
            found = transport.view().capture(cid)
            if found is not None:
                return Route(transport, row, found)
        for away in self._inventory.views().unreachable:  # away: its last known state
            if any(c.id == cid for c in transports[away.agent_id].known_captures()):
                return Route(transports[away.agent_id], row)
        raise NotFound(f"capture {cid} not found")
