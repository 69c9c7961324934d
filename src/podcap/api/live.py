"""Query parameters and answer of a followed download (``GET /api/captures/{id}/pcap?follow=true``).

A follow stream has no length (it ends when the capture does), so it is sent chunked without
Content-Length or ranges. ``format=pcapng`` re-frames it so that data the ring overwrote before
it was read shows as a packet comment (pcap/follow_pcapng.py); plain pcap carries the same
notice as a marker frame (pcap/follow.py).
"""

from __future__ import annotations

from fastapi.responses import StreamingResponse

from podcap.api import streaming
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


def response(owned: OwnedCapture, pcap: PcapStream, fmt: str, filename: str,
             netstate: str = "") -> StreamingResponse:
    """``filename``: the pcap's (``.pcapng`` for pcapng); ``netstate``: the snapshot's
    comment, put on the pcapng interface (as group downloads do)."""
    if fmt == "pcapng":
        capture = owned.capture
        name = capture.workload.name
        if owned.namespace:
            name = f"{owned.namespace}/{name}"
        body = as_pcapng(pcap, name, comment=f"podcap live follow of capture {capture.id}",
                         interface_notes=[netstate] if netstate else [])
        return streaming.send(streaming.paced(body), pcap.close, media_type=streaming.PCAPNG,
                              filename=filename.removesuffix(".pcap") + ".pcapng", live=True)
    return streaming.send(streaming.paced(pcap), pcap.close, media_type=streaming.PCAP,
                          filename=filename, live=True)
