"""HTTP Range on the pcap download of a stopped capture (RFC 9110 §13-14): a broken download
resumes where it broke (``curl -C -``, ``podcap capture get``).

A stopped capture's files never change again, so its pcap gets a strong ETag made of what would
differ if it did: the capture id, its stop time, its file count and bytes. ``If-Range`` with any
other value (or a date: we send no Last-Modified) gets the whole pcap, so a changed file is never
spliced onto an old prefix. A running capture's pcap grows and its ring rotates, so an earlier
snapshot is not a prefix of a later one: it gets no ETag, ``Accept-Ranges: none``, and ``Range``
is ignored (200, the whole snapshot).

One range per request (a resume needs no more): ``N-``, ``N-M`` and ``-N``. Several ranges, or a
unit other than bytes, are ignored as RFC 9110 allows (200). A first byte at or past the end is
416 with ``Content-Range: bytes */size``. The byte offset travels to the agent that holds the
files (``PcapRequest.offset``), which seeks instead of reading what is skipped.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from fastapi.responses import JSONResponse

from podcap import errors
from podcap.api.errors import CODE_INVALID_REQUEST, error_response
from podcap.model import Capture, Status
from podcap.pcap.ring import merged_size as merged_pcap_size
from podcap.streams import PcapRequest, PcapStream

_RANGE = re.compile(r"bytes=\s*(\d*)\s*-\s*(\d*)\s*")


@dataclass(frozen=True)
class Plan:
    """What to send: from byte ``start`` on, ``length`` bytes (None: to the end); ``partial``
    when answering 206."""

    start: int = 0
    length: int | None = None
    partial: bool = False
    unsatisfiable_size: int | None = None  # set: answer 416 naming this size


WHOLE = Plan()


def applies(request: PcapRequest) -> bool:
    """Ranges and the ETag describe the whole stored pcap, not a limited or filtered view."""
    return request.limit is None and not request.filter and not request.follow \
        and not request.from_now


def etag(capture: Capture) -> str | None:
    """A strong validator of a stopped capture's pcap; None while it runs (it still changes)."""
    if capture.status is Status.RUNNING or capture.stop_time is None:
        return None
    key = f"{capture.id}/{capture.stop_time!r}/{capture.files}/{capture.stats.bytes}"
    return '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'


def merged_size(capture: Capture) -> int:
    """The pcap's size from the capture's record: its files' bytes less the global header of
    every file but the first (the agent's stream announces the exact figure)."""
    return merged_pcap_size(capture.stats.bytes, capture.files)


def plan(capture: Capture, range_header: str | None, if_range: str | None) -> Plan:
    tag = etag(capture)
    if not range_header or tag is None or (if_range is not None and if_range.strip() != tag):
        return WHOLE
    match = _RANGE.fullmatch(range_header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return WHOLE  # several ranges, another unit, or nonsense: ignored
    size = merged_size(capture)
    first, last = match.group(1), match.group(2)
    if first == "":  # "-N": the last N bytes
        if _number(last) == 0:
            return Plan(unsatisfiable_size=size)
        start = max(0, size - _number(last))
        return Plan(start, size - start, True)
    start = _number(first)
    if last and _number(last) < start:
        return WHOLE  # invalid range: ignored
    if start >= size:
        return Plan(unsatisfiable_size=size)
    return Plan(start, (_number(last) - start + 1) if last else None, True)


def _number(digits: str) -> int:
    """A byte position as sent. Python refuses int() of more than 4,300 digits (a 500 here),
    and no pcap is near 10**18 bytes: a longer number is past any end, so it is capped there."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else _BEYOND


_BEYOND = 10**18


def headers(capture: Capture, request: PcapRequest, chosen: Plan, stream: PcapStream
            ) -> dict[str, str]:
    """Content-Length, and for the whole stored pcap its ETag and range headers."""
    out: dict[str, str] = {}
    tag = etag(capture) if applies(request) else None
    if tag is not None:
        out["ETag"], out["Accept-Ranges"] = tag, "bytes"
    elif applies(request):
        out["Accept-Ranges"] = "none"
    if stream.size is None:
        return out
    if chosen.partial:
        total = chosen.start + stream.size
        length = stream.size if chosen.length is None else min(chosen.length, stream.size)
        out["Content-Range"] = f"bytes {chosen.start}-{chosen.start + length - 1}/{total}"
        out["Content-Length"] = str(length)
    else:
        out["Content-Length"] = str(stream.size)
    return out


def not_satisfiable(size: int) -> JSONResponse:
    answer = error_response(416, CODE_INVALID_REQUEST, "Range not satisfiable",
                            f"the range asked starts at or past the end of the pcap ({size} "
                            "bytes); ask for bytes=0- or drop the Range header",
                            errors.EDGES[errors.InvalidArgument].kind)
    answer.headers["Content-Range"] = f"bytes */{size}"
    return answer
