"""Native capture resources, including the raw pcap download."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from typing import Annotated, get_type_hints

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, ConfigDict, create_model

from podcap.api import live, ranges, render, streaming
from podcap.api.deps import AuthDep, Caller, Service, StartKeysDep, TicketsDep, Token
from podcap.api.plain import Route
from podcap.controller import names
from podcap.controller.netstate_note import netstate_note
from podcap.errors import InvalidArgument
from podcap.model import CaptureSpec
from podcap.pcap.names import Namer

router = APIRouter(prefix="/api/captures", tags=["captures"], route_class=Route)


# The capture settings of a start body (a capture's, a group's), made from CaptureSpec's
# fields: CaptureSpec checks the values; this only names the fields and their defaults for
# the API schema. (mypy cannot see a made class as a type, hence the ignores on its uses.)
SpecBody: type[BaseModel] = create_model(
    "SpecBody", __config__=ConfigDict(extra="forbid"),
    **{f.name: (hint, f.default) for f in dataclasses.fields(CaptureSpec)
       for hint in [get_type_hints(CaptureSpec)[f.name]]})  # type: ignore[call-overload]


class StartCapture(SpecBody):  # type: ignore[valid-type,misc]
    workload_id: str
    agent_id: str | None = None


@router.get("")
def list_captures(svc: Service, caller: Caller, workload: str | None = None) -> dict:
    who = caller()
    listing = svc.captures(who, workload)
    return {"captures": [render.native_capture(o) for o in reversed(listing.items)],
            "unreachable": render.unreachable(listing)}


@router.post("", status_code=201)
def start(body: StartCapture, svc: Service, caller: Caller, keys: StartKeysDep,
          idempotency_key: Annotated[str | None, Header()] = None) -> dict:
    """With ``Idempotency-Key``, a retry (on any replica) answers with the first try's
    capture instead of starting another (controller/start_keys.py)."""
    who = caller()
    spec = CaptureSpec.from_dict(body.model_dump(exclude={"workload_id", "agent_id"}))
    owned = keys.once(who, idempotency_key,
                      lambda: svc.start(who, body.workload_id, spec, body.agent_id),
                      lambda cid: svc.capture(who, cid))
    return {"capture": render.native_capture(owned)}


@router.get("/{cid}")
def get(cid: str, svc: Service, caller: Caller) -> dict:
    who = caller()
    return {"capture": render.native_capture(svc.capture(who, cid))}


@router.post("/{cid}/stop")
def stop(cid: str, svc: Service, caller: Caller) -> dict:
    who = caller()
    return {"capture": render.native_capture(svc.stop(who, cid))}


@router.delete("/{cid}", status_code=204)
def remove(cid: str, svc: Service, caller: Caller) -> Response:
    who = caller()
    svc.remove(who, cid)
    return Response(status_code=204)


@router.post("/{cid}/ticket")
def ticket(cid: str, svc: Service, caller: Caller, tickets: TicketsDep) -> dict:
    """A one-use link for browsers: ``GET`` it without headers within 60 s."""
    who = caller()
    owned = svc.capture(who, cid)
    who.require_download()
    return tickets.link(who, cid, f"/api/captures/{owned.capture.id}/pcap",
                        render.download_name(owned))


@router.get("/{cid}/follow")
def follow_state(cid: str, svc: Service, caller: Caller) -> dict:
    """Followers of a capture, SIGUSR2 flushes sent for them, and the gaps they met."""
    who = caller()
    return {"follow": svc.document(who, cid, "follow", {})}


@router.get("/{cid}/pcap")
def download(cid: str, svc: Service, auth: AuthDep, tickets: TicketsDep, token: Token,
             limit: int | None = None, ticket: str | None = None,
             range_: Annotated[str | None, Header(alias="range")] = None,
             if_range: Annotated[str | None, Header()] = None,
             follow: bool = False, from_: Annotated[str | None, Query(alias="from")] = None,
             fmt: Annotated[str, Query(alias="format")] = "pcap") -> Response:
    who = tickets.redeem(ticket, cid) if ticket else auth.authenticate(token)
    if limit is not None and limit <= 0:
        raise InvalidArgument("limit must be a positive number of bytes")
    request = live.request(limit, follow, from_, fmt)  # follow: api/live.py
    found = svc.download(who, cid)  # looked up once: 404 first, then 403
    if range_ and if_range and ranges.etag(found.owned.capture) != if_range.strip():
        # A resume whose validator the view does not match: the view may lag a stop made
        # through another replica a moment ago (issue 20), so the agent's record decides.
        found = svc.download(who, cid, fresh=True)
    chosen = ranges.WHOLE
    if range_ and fmt == "pcap" and ranges.applies(request):  # a resume: api/ranges.py
        chosen = ranges.plan(found.owned.capture, range_, if_range)
    if chosen.unsatisfiable_size is not None:
        return ranges.not_satisfiable(chosen.unsatisfiable_size)
    owned = found.owned  # the service cuts and audits the stream
    pcap = found.open(replace(request, offset=chosen.start), chosen.length)
    if chosen.partial and pcap.size == 0:
        pcap.close()
        return ranges.not_satisfiable(chosen.start)
    name = render.download_name(owned)
    if fmt == "pcapng":  # names, directions, identity: api/live.py
        return live.response(owned, pcap, fmt, name, netstate_note(svc, who, cid),
                             Namer(names.lookup(svc, who)), request.follow)
    if request.follow:
        return live.response(owned, pcap, fmt, name)
    return streaming.send(streaming.body(pcap), pcap, media_type=streaming.PCAP,
                          filename=name,
                          status_code=206 if chosen.partial else 200,
                          headers=ranges.headers(owned.capture, request, chosen, pcap))
