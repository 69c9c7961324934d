"""Flight recorders (issue 21): ``/api/recorders`` (create, list, show, change, delete), a
trigger by hand, and the snapshots each made (ordinary captures: ``/api/captures/{id}/pcap``
downloads one)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response

from podcap.api import render
from podcap.api.deps import Caller
from podcap.api.plain import Route
from podcap.controller.recorder_model import RecorderConfig
from podcap.controller.recorders import RecorderService, RecorderView
from podcap.errors import InvalidArgument, Unavailable

router = APIRouter(prefix="/api/recorders", tags=["recorders"], route_class=Route)


async def _recorders(request: Request) -> RecorderService:
    recorders = getattr(request.app.state, "recorders", None)
    if recorders is None:
        raise Unavailable("recorders are not enabled on this server")
    return recorders


Recorders = Annotated[RecorderService, Depends(_recorders)]
JsonBody = Annotated[Any, Body()]


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidArgument("body: a JSON object is expected")
    return body


@router.get("")
def list_recorders(recorders: Recorders, caller: Caller) -> dict:
    who = caller()
    return {"recorders": [recorder_json(v) for v in recorders.recorders(who)]}


@router.post("", status_code=201)
def create(recorders: Recorders, caller: Caller, body: JsonBody = None) -> dict:
    who = caller()
    return {"recorder": recorder_json(recorders.create(who, RecorderConfig.of(_object(body))))}


@router.get("/{rid}")
def get(rid: str, recorders: Recorders, caller: Caller) -> dict:
    who = caller()
    return {"recorder": recorder_json(recorders.get(who, rid))}


@router.patch("/{rid}")
def update(rid: str, recorders: Recorders, caller: Caller, body: JsonBody = None) -> dict:
    who = caller()
    return {"recorder": recorder_json(recorders.update(who, rid, _object(body)))}


@router.delete("/{rid}", status_code=204)
def remove(rid: str, recorders: Recorders, caller: Caller) -> Response:
    who = caller()
    recorders.remove(who, rid)
    return Response(status_code=204)


@router.post("/{rid}/trigger")
def trigger(rid: str, recorders: Recorders, caller: Caller, body: JsonBody = None) -> dict:
    """Freeze the members (all, or ``workloads``): each frozen ring becomes the snapshot
    (same capture id) ``after_s`` seconds from now (the recorder's own by default)."""
    who = caller()
    data = _object(body or {})
    workloads = data.get("workloads") or []
    if not isinstance(workloads, list) or not all(isinstance(w, str) for w in workloads):
        raise InvalidArgument("workloads: a list of workload names or ids")
    after = data.get("after_s")
    if after is not None and (isinstance(after, bool) or not isinstance(after, int)
                              or not 0 <= after <= 600):
        raise InvalidArgument(f"after_s must be between 0 and 600 seconds, got {after!r}")
    outcomes = recorders.trigger(who, rid, workloads, after)
    return {"outcomes": [o.__dict__ for o in outcomes],
            "snapshots": [o.capture_id for o in outcomes if o.outcome == "frozen"]}


@router.get("/{rid}/snapshots")
def snapshots(rid: str, recorders: Recorders, caller: Caller) -> dict:
    who = caller()
    return {"snapshots": recorder_json(recorders.get(who, rid))["snapshots"]}


def recorder_json(view: RecorderView) -> dict[str, Any]:
    members: list[dict[str, Any]] = []
    for ring in view.rings:
        c = ring.owned.capture
        rec = c.recording
        members.append({
            "capture_id": c.id, "agent_id": ring.agent_id, "workload_id": c.workload.id,
            "workload_name": c.workload.name, "namespace": ring.owned.namespace,
            "pod_name": c.workload.pod_name, "node": c.workload.node,
            "status": "freezing" if rec and rec.until else "recording",
            "freezing_until": rec.until if rec else None, "since": c.start_time,
            "bytes": c.stats.bytes, "captured": c.stats.captured, "dropped": c.stats.dropped,
            "stale": ring.owned.stale})
    snaps: list[dict[str, Any]] = []
    for row, owned in view.snapshots:
        c = owned.capture
        snaps.append({**render.native_capture(owned), "capture_id": c.id,
                      "source": row.source if row else "",
                      "triggered": c.recording.triggered if c.recording else None})
    ring_bytes = sum(m["bytes"] for m in members)
    snap_bytes = sum(s["size"] for s in snaps)
    return {
        "id": view.id, "owner": view.row.owner, "created": view.row.created,
        **view.config.to_dict(), "spec": view.config.spec().as_dict(),
        "members": members, "snapshots": snaps,
        "skipped": [{"workload_name": n, "reason": why} for n, why in view.skipped],
        "bytes": {"rings": ring_bytes, "snapshots": snap_bytes},
        "triggers": [{"time": t.time, "source": t.source, "workload_name": t.workload_name,
                      "capture_id": t.capture_id, "outcome": t.outcome, "detail": t.detail}
                     for t in view.triggers],
    }
