"""How a workload named by a user is found: one rule, on the server, for every interface.

Among the workloads the caller may see (a hidden workload and a missing one take the same
path, so neither answer nor timing tells them apart):

1. a full id that equals one;
2. else, when the text is 12 or more hex characters, the workloads whose id starts with it
   (Docker's short id is 12);
3. else, the workloads whose name is exactly the text.

An id is looked for before a name, so a container named like another container's short id
never stands in for it. More than one match is ambiguous and refused by the caller.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeVar

from podcap.controller.fanout import Listing
from podcap.controller.inventory import Inventory, PlacedWorkload
from podcap.controller.principal import Principal
from podcap.errors import Hidden, InvalidArgument, NotFound, Unavailable
from podcap.ids import workload_id
from podcap.model import Workload

SHORT_ID_CHARS = 12
_HEX = re.compile(r"[0-9a-f]+")

T = TypeVar("T")


def resolve(query: str, candidates: Sequence[tuple[Workload, T]]) -> list[tuple[Workload, T]]:
    """The candidates ``query`` names by the rule above (each a workload and its placement)."""
    exact = [c for c in candidates if c[0].id == query]
    if exact:
        return exact
    if len(query) >= SHORT_ID_CHARS and _HEX.fullmatch(query):
        by_prefix = [c for c in candidates if c[0].id.startswith(query)]
        if by_prefix:
            return by_prefix
    return [c for c in candidates if c[0].name == query]


def find(inventory: Inventory, who: Principal, wid: str,
         agent_id: str | None = None) -> PlacedWorkload:
    """The workload ``wid`` names by the rule above, among those ``who`` may see (on
    ``agent_id``'s node when given), in the views. A miss has the connected agents look now
    (a container started a moment ago, not pushed yet) and is looked for once more. Missing
    and hidden answer alike; a name on several nodes is refused; a miss while nodes are away
    says which."""
    wid = workload_id(wid)
    try:
        return _find(inventory, who, wid, agent_id)
    except (NotFound, Unavailable):
        inventory.sync()
    return _find(inventory, who, wid, agent_id)


def _find(inventory: Inventory, who: Principal, wid: str,
          agent_id: str | None = None) -> PlacedWorkload:
    if agent_id is not None:  # the node was named: ask it alone first
        own = [p for p in inventory.node_workloads(agent_id)  # NotFound: no such enforcer
               if who.can_see(p.workload.namespace)]
        hits = _placed(wid, own)
        if hits:
            return _one(inventory, wid, hits)
    every = inventory.workloads()
    listing = Listing([p for p in every.items if who.can_see(p.workload.namespace)],
                      every.unreachable)
    hits = _placed(wid, listing.items)
    if agent_id is not None and hits:
        raise InvalidArgument(f"enforcer {agent_id} is not the node of workload {wid}")
    if hits:
        return _one(inventory, wid, hits)
    if listing.unreachable:
        nodes = ", ".join(u.node for u in listing.unreachable)
        raise Unavailable(f"workload {wid} not found on the nodes that answered; "
                          f"not answering: {nodes}")
    if _placed(wid, every.items):  # there, but not for this caller: the same answer
        raise Hidden(f"workload {wid} not found", who.username)
    raise NotFound(f"workload {wid} not found")


def _placed(wid: str, placed: list[PlacedWorkload]) -> list[PlacedWorkload]:
    return [p for _, p in resolve(wid, [(p.workload, p) for p in placed])]


def _one(inventory: Inventory, wid: str, hits: list[PlacedWorkload]) -> PlacedWorkload:
    """One hit, or the home of an id that several nodes report (homes.py): a node repeating
    another node's container id cannot make it ambiguous."""
    if len(hits) > 1 and len({p.workload.id for p in hits}) == 1:
        home = inventory.home(hits[0].workload.id)
        hits = [p for p in hits if p.agent_id == home] or hits
    if len(hits) > 1:
        nodes = ", ".join(sorted(p.workload.node for p in hits))
        raise InvalidArgument(f"{wid} names workloads on several nodes ({nodes}); use the "
                              "workload id, or name the node (f_enforcer on /v1, "
                              "agent_id on /api)")
    return hits[0]
