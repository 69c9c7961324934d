"""Query parameters and answer of a followed download (``GET /api/captures/{id}/pcap?follow=true``).

A follow stream has no length (it ends when the capture does), so it is sent chunked without
Content-Length or ranges. ``format=pcapng`` re-frames it so that data the ring overwrote before
it was read shows as a packet comment (pcap/follow_pcapng.py); plain pcap carries the same
notice as a marker frame (pcap/follow.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from podcap import limits
from podcap.controller.inventory import OwnedCapture
from podcap.errors import InvalidArgument
from podcap.pcap.follow_pcapng import as_pcapng
from podcap.streams import PcapRequest, PcapStream

FORMATS = ("pcap", "pcapng")


def starts_now(start: str | None) -> bool:
    """The ``from`` parameter (a capture's or a group's follow): ``start``, the default, or
    ``now``; anything else is refused by name."""
    if start not in (None, "start", "now"):
        raise InvalidArgument(f"from must be 'start' or 'now', got {start[:20]!r}")
    return start == "now"


def request(limit: int | None, follow: bool, start: str | None, fmt: str) -> PcapRequest:
    """The reading mode asked for; combinations that mean nothing are refused by name."""
    from_now = starts_now(start)
    if fmt not in FORMATS:
        raise InvalidArgument(f"format must be one of {', '.join(FORMATS)}, got {fmt[:20]!r}")
    if not follow and (start is not None or fmt != "pcap"):
        raise InvalidArgument("from and format=pcapng apply to follow=true only")
    if follow and limit is not None:
        raise InvalidArgument("limit does not apply to follow=true (the stream ends with the "
                              "capture); leave one of them out")
    return PcapRequest(limit=limit, follow=follow, from_now=from_now)


def response(owned: OwnedCapture, pcap: PcapStream, fmt: str, headers: dict[str, str],
             netstate: str = "") -> StreamingResponse:
    """``netstate``: the snapshot's comment, put on the pcapng interface (as group downloads
    do)."""
    headers = {k: v for k, v in headers.items() if k in ("Content-Disposition",)}
    headers["Cache-Control"] = "no-store"
    headers["X-Accel-Buffering"] = "no"  # ask proxies (nginx) not to hold chunks back
    if fmt == "pcapng":
        capture = owned.capture
        name = capture.workload.name
        if owned.namespace:
            name = f"{owned.namespace}/{name}"
        headers["Content-Disposition"] = headers.get("Content-Disposition", "").replace(
            ".pcap\"", ".pcapng\"")
        body = as_pcapng(pcap, name, comment=f"podcap live follow of capture {capture.id}",
                         interface_notes=[netstate] if netstate else [])
        return StreamingResponse(paced(body), headers=headers,
                                 media_type="application/x-pcapng",
                                 background=BackgroundTask(pcap.close))
    return StreamingResponse(paced(pcap), headers=headers,
                             media_type="application/vnd.tcpdump.pcap",
                             background=BackgroundTask(pcap.close))


async def paced(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    """A follow stream lasts as long as its capture: a worker thread is borrowed for each read
    only (the follower hands back ``b""`` when idle) and the wait between reads happens on
    the event loop, so many followers do not use up the server's thread pool."""
    it = iter(chunks)
    done = object()
    while True:
        chunk = await run_in_threadpool(next, it, done)
        if chunk is done:
            return
        assert isinstance(chunk, bytes)
        if chunk:
            yield chunk
        else:
            await asyncio.sleep(limits.FOLLOW_POLL_S)
