"""Native capture resources, including the raw pcap download."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict
from starlette.background import BackgroundTask

from podcap import limits
from podcap.api import render
from podcap.api.deps import AuthDep, Caller, Service, TicketsDep, Token
from podcap.controller.tickets import TICKET_TTL_S
from podcap.errors import InvalidArgument
from podcap.model import CaptureSpec
from podcap.streams import PcapRequest

router = APIRouter(prefix="/api/captures", tags=["captures"])


class StartCapture(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workload_id: str
    agent_id: str | None = None
    duration: int = limits.DURATION_DEFAULT
    file_number: int = limits.FILE_NUMBER_DEFAULT
    file_size_mb: int = limits.FILE_SIZE_MB_DEFAULT
    filter: str = ""
    snaplen: int = limits.SNAPLEN_DEFAULT
    buffer_kib: int = limits.BUFFER_KIB_DEFAULT


@router.get("")
def list_captures(svc: Service, who: Caller, workload: str | None = None) -> dict:
    listing = svc.captures(who, workload)
    return {"captures": [render.native_capture(o) for o in reversed(listing.items)],
            "unreachable": render.unreachable(listing)}


@router.post("", status_code=201)
def start(body: StartCapture, svc: Service, who: Caller) -> dict:
    spec = CaptureSpec.from_dict(body.model_dump(exclude={"workload_id", "agent_id"}))
    return {"capture": render.native_capture(svc.start(who, body.workload_id, spec,
                                                       body.agent_id))}


@router.get("/{cid}")
def get(cid: str, svc: Service, who: Caller) -> dict:
    return {"capture": render.native_capture(svc.capture(who, cid))}


@router.post("/{cid}/stop")
def stop(cid: str, svc: Service, who: Caller) -> dict:
    return {"capture": render.native_capture(svc.stop(who, cid))}


@router.delete("/{cid}", status_code=204)
def remove(cid: str, svc: Service, who: Caller) -> Response:
    svc.remove(who, cid)
    return Response(status_code=204)


@router.post("/{cid}/ticket")
def ticket(cid: str, svc: Service, who: Caller, tickets: TicketsDep) -> dict:
    """A one-use link for browsers: ``GET`` it without headers within 60 s."""
    owned = svc.capture(who, cid)
    who.require_download()
    return {"url": f"/api/captures/{owned.capture.id}/pcap?ticket={tickets.issue(who, cid)}",
            "name": render.download_name(owned), "expires_in": TICKET_TTL_S}


@router.get("/{cid}/pcap")
def download(cid: str, svc: Service, auth: AuthDep, tickets: TicketsDep, token: Token,
             limit: int | None = None, ticket: str | None = None) -> StreamingResponse:
    who = tickets.redeem(ticket, cid) if ticket else auth.authenticate(token)
    if limit is not None and limit <= 0:
        raise InvalidArgument("limit must be a positive number of bytes")
    owned, pcap = svc.stream_pcap(who, cid, PcapRequest(limit=limit))
    headers = {"Content-Disposition": f'attachment; filename="{render.download_name(owned)}"'}
    if pcap.size is not None:
        headers["Content-Length"] = str(pcap.size)
    return StreamingResponse(pcap, media_type="application/vnd.tcpdump.pcap",
                             headers=headers, background=BackgroundTask(pcap.close))
