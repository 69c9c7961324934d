"""NeuVector's six sniffer routes, answering exactly as NeuVector does."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from podcap import limits
from podcap.api import render, streaming
from podcap.api.deps import Caller, Service
from podcap.api.plain import Route
from podcap.api.v1_body import parse_object
from podcap.controller.inventory import OwnedCapture
from podcap.controller.principal import Principal
from podcap.errors import InvalidArgument, NotEnoughFilter
from podcap.model import CaptureSpec
from podcap.streams import PcapRequest

router = APIRouter(prefix="/v1/sniffer", tags=["v1 (NeuVector)"], route_class=Route)

_SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(CaptureSpec))


@router.get("")
def list_sniffers(svc: Service, caller: Caller, f_workload: str | None = None,
                  f_enforcer: str | None = None) -> dict:
    who = caller()
    listing = svc.captures(who, f_workload, f_enforcer)
    return {"sniffers": [render.v1_sniffer(o) for o in listing.items]}


@router.post("")
async def start_sniffer(request: Request, svc: Service, caller: Caller,
                        f_workload: str | None = None, f_enforcer: str | None = None) -> dict:
    raw = await request.body()

    def start(who: Principal) -> OwnedCapture:  # the caller checked first, in one hop
        body = parse_object(raw)
        if not isinstance(body.get("sniffer"), dict):
            raise InvalidArgument('request body must be {"sniffer": {...}}')
        if not f_workload:
            raise NotEnoughFilter("Enforcer or workload filter must be provided")
        return svc.start(who, f_workload, spec_from_body(body), f_enforcer)

    owned = await run_in_threadpool(lambda: start(caller()))
    return {"result": {"id": owned.capture.id}}


def spec_from_body(body: dict[str, Any]) -> CaptureSpec:
    sniffer = body.get("sniffer")
    if not isinstance(sniffer, dict):
        raise InvalidArgument('request body must be {"sniffer": {...}}')
    values = {k: sniffer[k] for k in _SPEC_FIELDS if sniffer.get(k) is not None}
    return CaptureSpec(**values)


@router.get("/{cid}")
def get_sniffer(cid: str, svc: Service, caller: Caller) -> dict:
    who = caller()
    return {"sniffer": render.v1_sniffer(svc.capture(who, cid))}


@router.patch("/stop/{cid}")
def stop_sniffer(cid: str, svc: Service, caller: Caller) -> Response:
    who = caller()
    svc.stop(who, cid)
    return Response(status_code=200)


@router.delete("/{cid}")
def delete_sniffer(cid: str, svc: Service, caller: Caller) -> Response:
    who = caller()
    svc.remove(who, cid)
    return Response(status_code=200)


@router.get("/{cid}/pcap")
def download(cid: str, svc: Service, caller: Caller,
             limit: int = limits.DOWNLOAD_LIMIT_DEFAULT) -> StreamingResponse:
    who = caller()
    if limit <= 0:
        raise InvalidArgument("limit must be a positive number of bytes")
    owned, pcap = svc.stream_pcap(who, cid, PcapRequest(limit=limit))
    boundary = secrets.token_hex(16)
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"pcap\"; "
            f"filename=\"{owned.capture.id}.pcap\"\r\nContent-Type: application/cap\r\n\r\n"
            ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    headers = {} if pcap.size is None else {"Content-Length": str(len(head) + pcap.size +
                                                                  len(tail))}
    parts = multipart(head, pcap, tail) if pcap.achunks is None else \
        amultipart(head, pcap.achunks, tail)  # a remote agent's, on the event loop
    return streaming.send(parts, pcap, headers=headers,
                          media_type=f"multipart/form-data; boundary={boundary}")


def multipart(head: bytes, chunks: Iterable[bytes], tail: bytes) -> Iterator[bytes]:
    """NeuVector's answer: one form part named ``pcap``, streamed, never held in memory."""
    yield head
    yield from chunks
    yield tail


async def amultipart(head: bytes, chunks: AsyncIterator[bytes], tail: bytes
                     ) -> AsyncIterator[bytes]:
    """``multipart`` of chunks read on the event loop (a remote agent's: api/streaming.py)."""
    yield head
    async for chunk in chunks:
        yield chunk
    yield tail
