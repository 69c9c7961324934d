"""A capture's network-state snapshot: addresses, routes, neighbours and sockets of its
namespace when it started (agent/netstate.py takes it; docs/API.md has the shape)."""

from __future__ import annotations

from fastapi import APIRouter

from podcap.api.deps import Caller, Service
from podcap.api.plain import Route

router = APIRouter(prefix="/api/captures", tags=["captures"], route_class=Route)


@router.get("/{cid}/netstate")
def netstate(cid: str, svc: Service, caller: Caller) -> dict:
    """404 when the capture has no snapshot (started by an older podcap, or taking it failed)."""
    who = caller()
    return {"netstate": svc.document(who, cid, "netstate")}
