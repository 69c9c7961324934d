"""Native workloads and filter checking."""

from __future__ import annotations

import json

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from podcap import limits
from podcap.api import render
from podcap.api.deps import Caller, Service
from podcap.api.plain import Route
from podcap.errors import InvalidArgument

router = APIRouter(prefix="/api", tags=["workloads"], route_class=Route)


@router.get("/workloads", response_class=JSONResponse)
def workloads(svc: Service, caller: Caller, q: str = "",
              offset: int = Query(0, ge=0),
              limit: int = Query(0, ge=0, le=limits.WORKLOADS_PAGE_MAX),
              since: str = "") -> Response:
    """The workloads ``who`` may see whose text has every word of ``q``, ``limit`` of them
    from ``offset`` (0: all), with ``total`` and a ``token``: a client that sends it back as
    ``since`` gets ``{"unchanged": true}`` while no view has changed, for the price of
    reading the views' versions (the UI's refresh every few seconds)."""
    who = caller()
    token = svc.workloads_token()
    if since and since == token:
        return JSONResponse({"unchanged": True, "token": token})
    listing = svc.workloads(who, q)
    page = listing.items[offset:offset + limit] if limit else listing.items[offset:]
    tail = json.dumps({"total": len(listing.items), "offset": offset, "token": token,
                       "unreachable": render.unreachable(listing)})
    return Response(render.json_list("workloads", page, render.native_workload,
                                     tail="," + tail[1:-1]), media_type="application/json")


@router.get("/workloads/{wid}")
def workload(wid: str, svc: Service, caller: Caller) -> dict:
    who = caller()
    return {"workload": render.native_workload(svc.workload(who, wid))}


class FilterCheck(BaseModel):
    filter: str


@router.post("/filter/check")
def check_filter(body: FilterCheck, svc: Service, caller: Caller) -> dict:
    """200 either way: a filter that does not compile is an answer here, not an error."""
    caller()  # any signed-in user
    try:
        svc.check_filter(body.filter)
    except InvalidArgument as exc:
        return {"ok": False, "message": exc.message}
    return {"ok": True, "message": ""}
