"""The audit log, for admins: newest first, filtered, paged."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from podcap.api.deps import Caller, Service
from podcap.api.plain import Route
from podcap.controller.audit import EVENTS, PAGE_MAX

router = APIRouter(prefix="/api", tags=["audit"], route_class=Route)


@router.get("/audit")
def audit(svc: Service, caller: Caller,
          event: Annotated[str | None, Query(max_length=32,
                                             description=", ".join(EVENTS))] = None,
          username: Annotated[str | None, Query(max_length=64)] = None,
          capture_id: Annotated[str | None, Query(max_length=32)] = None,
          ok: bool | None = None,
          since: Annotated[float | None, Query(ge=0)] = None,
          until: Annotated[float | None, Query(ge=0)] = None,
          limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 100,
          offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> dict:
    who = caller()
    who.require_admin()
    entries, total = svc.audit.query(event=event, username=username, capture_id=capture_id,
                                     ok=ok, since=since, until=until, limit=limit,
                                     offset=offset)
    return {"events": [e.__dict__ for e in entries], "total": total, "limit": limit,
            "offset": offset}
