"""Capture groups: one selector, one capture per matching container, one merged pcapng."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import Field

from podcap.api import live, render, streaming
from podcap.api.deps import AuthDep, Caller, TicketsDep, Token
from podcap.api.native_captures import SpecBody
from podcap.api.plain import Route
from podcap.controller.groups import Group, GroupService, Selector
from podcap.errors import Unavailable
from podcap.model import CaptureSpec

router = APIRouter(prefix="/api/capture-groups", tags=["capture groups"], route_class=Route)


async def _groups(request: Request) -> GroupService:
    groups = getattr(request.app.state, "groups", None)
    if groups is None:
        raise Unavailable("capture groups are not enabled on this server")
    return groups


Groups = Annotated[GroupService, Depends(_groups)]


class StartGroup(SpecBody):  # type: ignore[valid-type,misc]
    workloads: list[str] = Field(default_factory=list)
    namespace: str = ""
    labels: str = ""  # a Kubernetes label selector: app=web,tier!=db


@router.get("")
def list_groups(groups: Groups, caller: Caller) -> dict:
    who = caller()
    return {"groups": [group_json(g) for g in groups.groups(who)]}


@router.post("", status_code=201)
def start(body: StartGroup, groups: Groups, caller: Caller) -> dict:
    who = caller()
    selector = Selector.of(body.workloads, body.namespace, body.labels)
    spec = CaptureSpec.from_dict(body.model_dump(exclude={"workloads", "namespace", "labels"}))
    return {"group": group_json(groups.create(who, selector, spec))}


@router.get("/{gid}")
def get(gid: str, groups: Groups, caller: Caller) -> dict:
    who = caller()
    return {"group": group_json(groups.get(who, gid))}


@router.post("/{gid}/stop")
def stop(gid: str, groups: Groups, caller: Caller) -> dict:
    who = caller()
    return {"group": group_json(groups.stop(who, gid))}


@router.delete("/{gid}", status_code=204)
def remove(gid: str, groups: Groups, caller: Caller) -> Response:
    who = caller()
    groups.remove(who, gid)
    return Response(status_code=204)


@router.post("/{gid}/ticket")
def ticket(gid: str, groups: Groups, caller: Caller, tickets: TicketsDep) -> dict:
    """A one-use link for browsers, as for a capture's pcap."""
    who = caller()
    group = groups.get(who, gid)
    who.require_download()
    return tickets.link(who, "group:" + group.id, f"/api/capture-groups/{group.id}/pcapng",
                        download_name(group))


@router.get("/{gid}/pcapng")
def download(gid: str, groups: Groups, auth: AuthDep, tickets: TicketsDep, token: Token,
             ticket: str | None = None, follow: bool = False,
             from_: Annotated[str | None, Query(alias="from")] = None) -> StreamingResponse:
    """The members merged by time into one pcapng; ``follow=true`` keeps streaming until the
    group has stopped (``from=now``: only packets from now on)."""
    who = tickets.redeem(ticket, "group:" + gid) if ticket else auth.authenticate(token)
    group, body, close = groups.pcapng(who, gid, follow, live.starts_now(from_))
    return streaming.send(body, close, media_type=streaming.PCAPNG,
                          filename=download_name(group), live=True)


def download_name(group: Group) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(group.row.created))
    return f"group-{group.id[:8]}-{stamp}.pcapng"


def group_json(group: Group) -> dict[str, Any]:
    members = []
    totals = {"captured": 0, "received": 0, "dropped": 0, "bytes": 0}
    for m in group.members:
        capture = render.native_capture(m.capture) if m.capture is not None else None
        if capture is not None:
            for key in totals:
                totals[key] += capture["stats"][key]
        members.append({"capture_id": m.row.capture_id, "workload_id": m.row.workload_id,
                        "workload_name": m.row.name, "namespace": m.row.namespace,
                        "pod_name": m.row.pod, "container_name": m.row.container,
                        "node": m.row.node, "agent_id": m.row.agent_id,
                        "if_name": m.if_name, "joined": m.row.joined,
                        "status": capture["status"] if capture else "gone",
                        "capture": capture})
    return {
        "id": group.id, "owner": group.row.owner, "status": group.status,
        "selector": group.selector.to_dict(), "selector_text": str(group.selector),
        "spec": group.spec.__dict__.copy(), "start_time": group.row.created,
        "stop_time": group.row.stopped, "stop_reason": group.row.stop_reason,
        "deadline": group.deadline, "stats": totals,
        "running": sum(1 for m in members if m["status"] == "running"),
        "members": members,
        "skipped": [{"workload_id": s.workload_id, "workload_name": s.name,
                     "namespace": s.namespace, "pod_name": s.pod, "node": s.node,
                     "reason": s.reason} for s in group.skipped],
        "unreachable": [{"agent_id": u.agent_id, "node": u.node, "reason": u.reason}
                        for u in group.unreachable],
    }
