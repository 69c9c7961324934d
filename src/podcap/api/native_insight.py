"""What a capture holds before anyone downloads it (issue 13): summary, live series, and the
download of one conversation's packets. Documents come from the capture's agent
(``CaptureService.document``); the conversation filter is built by podcap from validated fields
(podcap.insight.conversation), never taken as text from the caller."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict

from podcap import limits
from podcap.api import streaming
from podcap.api.deps import AuthDep, Caller, Service, TicketsDep, Token
from podcap.api.plain import Route
from podcap.insight.conversation import Conversation
from podcap.streams import PcapRequest

router = APIRouter(prefix="/api/captures", tags=["insight"], route_class=Route)


class ConversationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    proto: str
    a: str
    b: str
    a_port: int | None = None
    b_port: int | None = None


@router.get("/{cid}/summary")
def summary(cid: str, svc: Service, caller: Caller, top: int = limits.INSIGHT_TOP_DEFAULT,
            wait: float = limits.INSIGHT_WAIT_S) -> dict:
    """Conversations, protocol mix, DNS and TLS names, timeline; ``pending`` > 0: poll again.
    Names and addresses come from the packets, so this needs the download right too."""
    who = caller()
    svc.capture(who, cid)  # a capture the caller may not see answers 404 before 403
    who.require_download()
    return svc.document(who, cid, "summary", {"top": str(top), "wait": str(wait)})


@router.get("/{cid}/series")
def series(cid: str, svc: Service, caller: Caller, since: float = 0.0) -> dict:
    """tcpdump's counters a second apart (time, captured, dropped, bytes), after ``since``."""
    who = caller()
    return svc.document(who, cid, "series", {"since": repr(since)})


@router.post("/{cid}/conversations/ticket")
def conversation_ticket(cid: str, body: ConversationBody, svc: Service, caller: Caller,
                        tickets: TicketsDep) -> dict:
    """A one-use link (60 s) to one conversation's packets, for browsers."""
    who = caller()
    conv = Conversation.parse(body.proto, body.a, body.b, body.a_port, body.b_port)
    owned = svc.capture(who, cid)
    who.require_download()
    url = f"/api/captures/{owned.capture.id}/conversations/pcap?{urlencode(_query(conv))}"
    return {**tickets.link(who, owned.capture.id, url, _name(owned.capture.workload.name, conv)),
            "filter": conv.bpf()}


@router.get("/{cid}/conversations/pcap")
def conversation_pcap(cid: str, proto: str, a: str, b: str, svc: Service, auth: AuthDep,
                      tickets: TicketsDep, token: Token, a_port: int | None = None,
                      b_port: int | None = None,
                      ticket: str | None = None) -> StreamingResponse:
    """Only this conversation's packets (both directions), filtered on the capture's node."""
    conv = Conversation.parse(proto, a, b, a_port, b_port)
    who = tickets.redeem(ticket, cid) if ticket else auth.authenticate(token)
    owned, pcap = svc.stream_pcap(who, cid, PcapRequest(filter=conv.bpf()))
    name = _name(owned.capture.workload.name, conv)
    return streaming.send(pcap, pcap, media_type=streaming.PCAP, filename=name)


def _query(conv: Conversation) -> dict[str, str]:
    query = {"proto": conv.proto, "a": conv.a, "b": conv.b}
    if conv.a_port is not None and conv.b_port is not None:
        query.update(a_port=str(conv.a_port), b_port=str(conv.b_port))
    return query


def _name(workload: str, conv: Conversation) -> str:
    base = streaming.safe_name(workload, 60)
    label = streaming.safe_name(conv.file_label())
    return f"{base or 'capture'}-{label}.pcap"
