"""NeuVector's workload and enforcer lists, with its ``f_<field>=`` filters."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from podcap.api import render
from podcap.api.deps import Caller, Service
from podcap.errors import InvalidArgument

router = APIRouter(prefix="/v1", tags=["v1 (NeuVector)"])


@router.get("/workload")
def list_workloads(request: Request, svc: Service, who: Caller) -> dict:
    params = request.query_params
    brief = params.get("brief", "").lower() == "true"
    items = [render.v1_workload(p, brief) for p in svc.workloads(who).items]
    items = apply_filters(items, params)
    return {"workloads": page(items, params)}


@router.get("/workload/{wid}")
def get_workload(wid: str, svc: Service, who: Caller) -> dict:
    return {"workload": render.v1_workload(svc.workload(who, wid))}


@router.get("/enforcer")
def list_enforcers(svc: Service, who: Caller) -> dict:
    return {"enforcers": [render.v1_enforcer(a) for a in svc.agent_infos()]}


def apply_filters(items: list[dict[str, Any]], params: Any) -> list[dict[str, Any]]:
    """``f_<field>=<value>`` keeps equal values; ``<op>,<value>`` with op ``prefix``,
    ``contains`` or ``eq`` picks the comparison. Unknown fields match nothing."""
    for key, raw in params.multi_items():
        if not key.startswith("f_"):
            continue
        field = key[2:]
        op, _, value = raw.partition(",") if "," in raw else ("eq", "", raw)
        test = _OPS.get(op)
        if test is None:
            raise InvalidArgument(f"filter {key}: unknown operator {op!r}; use "
                                  f"{', '.join(_OPS)}")
        items = [i for i in items if test(str(i.get(field, "")), value)]
    return items


_OPS = {
    "eq": lambda have, want: have == want,
    "prefix": lambda have, want: have.startswith(want),
    "contains": lambda have, want: want in have,
}


def page(items: list[dict[str, Any]], params: Any) -> list[dict[str, Any]]:
    try:
        start = int(params.get("start", 0))
        limit = int(params.get("limit", 0))
    except ValueError as exc:
        raise InvalidArgument("start and limit must be whole numbers") from exc
    if start < 0 or limit < 0:
        raise InvalidArgument("start and limit must not be negative")
    return items[start:start + limit] if limit else items[start:]
