"""Native workloads and filter checking."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from podcap.api import render
from podcap.api.deps import Caller, Service
from podcap.errors import InvalidArgument

router = APIRouter(prefix="/api", tags=["workloads"])


@router.get("/workloads")
def workloads(svc: Service, who: Caller, q: str = "") -> dict:
    listing = svc.workloads(who, q)
    return {"workloads": [render.native_workload(p) for p in listing.items],
            "unreachable": render.unreachable(listing)}


@router.get("/workloads/{wid}")
def workload(wid: str, svc: Service, who: Caller) -> dict:
    return {"workload": render.native_workload(svc.workload(who, wid))}


class FilterCheck(BaseModel):
    filter: str


@router.post("/filter/check")
def check_filter(body: FilterCheck, svc: Service, who: Caller) -> dict:
    """200 either way: a filter that does not compile is an answer here, not an error."""
    try:
        svc.check_filter(body.filter)
    except InvalidArgument as exc:
        return {"ok": False, "message": exc.message}
    return {"ok": True, "message": ""}
