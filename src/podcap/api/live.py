"""Query parameters and answer of a followed or pcapng download
(``GET /api/captures/{id}/pcap?follow=true``, ``?format=pcapng``).

A follow stream has no length (it ends when the capture does), so it is sent chunked without
Content-Length or ranges. ``format=pcapng`` re-frames a download or a follow
(pcap/follow_pcapng.py): names for the workloads' addresses (NRBs, from the controller's view:
controller/names.py), each packet's direction, the capture's identity on its interface (what
podcap.lua reads), and data the ring overwrote before it was read as a packet comment; plain
pcap carries the same notice as a marker frame (pcap/follow.py) and is otherwise the files'
bytes, unchanged (NeuVector's clients read it). A pcapng has no fixed size: no ranges.
"""

from __future__ import annotations

from fastapi.responses import StreamingResponse

from podcap.api import streaming
from podcap.controller.inventory import OwnedCapture
from podcap.errors import InvalidArgument
from podcap.pcap import pcapng
from podcap.pcap.follow_pcapng import as_pcapng
from podcap.pcap.names import Namer
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
    if not follow and start is not None:
        raise InvalidArgument("from applies to follow=true only")
    if follow and limit is not None:
        raise InvalidArgument("limit does not apply to follow=true (the stream ends with the "
                              "capture); leave one of them out")
    return PcapRequest(limit=limit, follow=follow, from_now=from_now)


def response(owned: OwnedCapture, pcap: PcapStream, fmt: str, filename: str,
             netstate: str = "", namer: Namer | None = None, follow: bool = True
             ) -> StreamingResponse:
    """``filename``: the pcap's (``.pcapng`` for pcapng); ``netstate``: the snapshot's
    comment, put on the pcapng interface (as group downloads do); ``namer``: the names."""
    if fmt == "pcapng":
        capture = owned.capture
        w = capture.workload
        name = w.name
        if owned.namespace:
            name = f"{owned.namespace}/{name}"
        what = "live follow" if follow else "download"
        body = as_pcapng(pcap, name, pcapng.describe(
            w.node, owned.namespace, w.pod_name, w.container_name or w.name),
            comment=f"podcap {what} of capture {capture.id}",
            interface_notes=[netstate] if netstate else [], namer=namer)
        return streaming.send(streaming.paced(body) if follow else body, pcap,
                              media_type=streaming.PCAPNG,
                              filename=filename.removesuffix(".pcap") + ".pcapng", live=follow)
    return streaming.send(streaming.paced(pcap), pcap, media_type=streaming.PCAP,
                          filename=filename, live=True)
