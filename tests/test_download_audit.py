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


def test_an_http_download_borrows_a_worker_thread_twice(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the application: the route's thread also reads the first chunk, and the stream
    that closed itself at its end (audit written) needs no thread to close it again; the one
    other is the ask for more that ends it. Under load each round trip through the event loop
    waits behind all it has queued (bench figure 10). Whatever is saved, the entry is right."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import anyio.to_thread
    import httpx

    from podcap.api.app import create_app
    from tests.test_one_lookup import AnyToken

    class OneChunk(PcapAgent):
        def stream_pcap(self, capture_id: str, request: PcapRequest) -> PcapStream:
            return PcapStream(iter([DATA]), len(DATA))

    svc = _service(tmp_path, OneChunk())
    app = create_app(svc, AnyToken())  # type: ignore[arg-type]
    hops: list[object] = []
    real = anyio.to_thread.run_sync

    async def counted(func: object, *args: object, **kwargs: object) -> object:
        hops.append(func)
        return await real(func, *args, **kwargs)  # type: ignore[arg-type]

    async def ask() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://testserver") as client:
            return await client.get(f"/api/captures/{PcapAgent().capture.id}/pcap",
                                    headers={"Authorization": "Bearer t"})

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    with ThreadPoolExecutor(1) as one:  # its own thread: see tests/test_one_lookup.py
        r = one.submit(asyncio.run, ask()).result()
    entry = last_download(svc)
    svc.close()
    assert r.status_code == 200 and r.content == DATA
    assert (entry.bytes, entry.ok) == (len(DATA), True)
    assert len(hops) == 2, hops
