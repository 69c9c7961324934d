"""The ``download`` audit entry (CaptureService.stream_pcap), fast: an agent stand-in serves a
pcap-sized byte string in chunks, and each kind of download is read the way the HTTP layer reads
it. tests/test_range.py checks the same entries through a real server and a real client.

The rule: the entry has the bytes the reader was sent, and ``ok`` when that is all it was meant
to get (the whole stream, or a range's bytes). A chunk counts once the reader asks for the next
one: the one in its hand when it goes away never left (Starlette asks for the next chunk only
after the last one was written to the socket)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from podcap.controller.audit import Entry
from podcap.controller.service import CaptureService
from podcap.model import Status
from podcap.streams import PcapRequest, PcapStream
from tests.test_fanout import ADMIN, FakeAgent, _service

DATA = bytes(range(256)) * 40  # 10,240 bytes
CHUNK = 1000


class PcapAgent(FakeAgent):
    """Holds one stopped capture whose pcap is DATA; seeks to the offset, sends to the end."""

    def __init__(self) -> None:
        super().__init__("a" * 16, "node-a")
        self.capture = dataclasses.replace(self.capture, status=Status.STOPPED, stop_time=2.0)

    def stream_pcap(self, capture_id: str, request: PcapRequest) -> PcapStream:
        rest = DATA[request.offset:]
        return PcapStream(iter([rest[i:i + CHUNK] for i in range(0, len(rest), CHUNK)]),
                          len(rest))


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[CaptureService]:
    service = _service(tmp_path, PcapAgent())
    yield service
    service.close()


def download(svc: CaptureService, **kwargs: object) -> tuple[bytes, Entry]:
    """Read to the end, as StreamingResponse does; then the entry it left."""
    cid = PcapAgent().capture.id
    _, pcap = svc.stream_pcap(ADMIN, cid, **kwargs)  # type: ignore[arg-type]
    got = b"".join(pcap)
    return got, last_download(svc)


def last_download(svc: CaptureService) -> Entry:
    entries, _ = svc.audit.query(event="download", limit=1)
    return entries[0]


def test_a_whole_download_is_audited_with_its_size_and_ok(svc: CaptureService) -> None:
    got, entry = download(svc)
    assert got == DATA and (entry.bytes, entry.ok) == (len(DATA), True)


@pytest.mark.parametrize(("offset", "length"), [(0, 10), (0, CHUNK), (995, 10), (100, 5000),
                                                 (10_000, 240), (10_000, 10_000)])
def test_a_range_is_audited_with_the_bytes_it_sent(svc: CaptureService, offset: int,
                                                   length: int) -> None:
    """``bytes=0-9`` sends 10 bytes and is a whole success; it was once audited with all the
    chunks pulled from the agent, as a failure. An end past the pcap is clipped."""
    got, entry = download(svc, request=PcapRequest(offset=offset), length=length)
    assert got == DATA[offset:offset + length]
    assert (entry.bytes, entry.ok) == (len(got), True)


def test_an_open_range_is_audited_like_the_rest_of_the_pcap(svc: CaptureService) -> None:
    got, entry = download(svc, request=PcapRequest(offset=4321))
    assert got == DATA[4321:] and (entry.bytes, entry.ok) == (len(DATA) - 4321, True)


@pytest.mark.parametrize("length", [None, 5000])
def test_a_reader_that_leaves_is_audited_not_ok_with_what_it_was_sent(
        svc: CaptureService, length: int | None) -> None:
    _, pcap = svc.stream_pcap(ADMIN, PcapAgent().capture.id, length=length)
    chunks = iter(pcap)
    for _ in range(3):  # two chunks sent on; the third in hand when the client goes
        next(chunks)
    pcap.close()
    entry = last_download(svc)
    assert (entry.bytes, entry.ok) == (2 * CHUNK, False)
