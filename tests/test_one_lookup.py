"""A ranged download of a remote capture looks the capture up once on the controller (issue 18),
fast: ``GET /api/captures/{id}/pcap`` with ``Range`` goes through the real application and
service to agent stand-ins that count what they are asked. The record comes from the
agent's view (views.py, issue 19) and serves the visibility check, the range's plan, the
headers and the stream's routing; then one download. It once asked the agent twice and
routed three times (the plan's lookup, then ``stream_pcap``'s own, then its routing
again). The agent's own look-up of the capture to send the bytes is on the agent's side, not
counted here.

The same route through a real server and client: tests/test_range.py; over gRPC:
tests/cluster/test_download.py."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from podcap.api.app import create_app
from podcap.controller.principal import Principal
from podcap.controller.service import CaptureService
from podcap.model import Capture
from podcap.streams import PcapRequest, PcapStream
from tests.test_download_audit import DATA, PcapAgent
from tests.test_fanout import ADMIN, FakeAgent, _service


class CountingAgent(PcapAgent):
    """The stopped capture of tests/test_download_audit.py, its record sized as its pcap (a
    range's plan reads the size from it), counting every question."""

    def __init__(self) -> None:
        super().__init__()
        self.capture = dataclasses.replace(
            self.capture, files=1, stats=dataclasses.replace(self.capture.stats,
                                                             bytes=len(DATA)))
        self.asked: Counter[str] = Counter()

    def get_capture(self, capture_id: str) -> Capture:
        self.asked["get_capture"] += 1
        return super().get_capture(capture_id)

    def known_captures(self) -> list[Capture]:
        self.asked["known_captures"] += 1
        return super().known_captures()

    def stream_pcap(self, capture_id: str, request: PcapRequest) -> PcapStream:
        self.asked["stream_pcap"] += 1
        return super().stream_pcap(capture_id, request)


class CountingOther(FakeAgent):
    """Another node, which does not hold the capture."""

    def __init__(self) -> None:
        super().__init__("b" * 16, "node-b")
        self.asked: Counter[str] = Counter()

    def get_capture(self, capture_id: str) -> Capture:
        self.asked["get_capture"] += 1
        return super().get_capture(capture_id)


class AnyToken:
    """Auth that lets the admin in: what is counted here is the lookups, not the login."""

    def authenticate(self, token: str | None, source: str = "") -> Principal:
        return ADMIN

    def token_alive(self, token_hash: str) -> bool:
        return True


@pytest.fixture
def agents() -> tuple[CountingAgent, CountingOther]:
    return CountingAgent(), CountingOther()


@pytest.fixture
def svc(tmp_path: Path, agents: tuple[CountingAgent, CountingOther]
        ) -> Iterator[CaptureService]:
    service = _service(tmp_path, *agents)
    yield service
    service.close()


def ranged_get(svc: CaptureService, cid: str, first: int) -> tuple[int, dict[str, str], bytes]:
    app = create_app(svc, AnyToken())  # type: ignore[arg-type]

    async def get() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://testserver") as client:
            return await client.get(f"/api/captures/{cid}/pcap",
                                    headers={"Range": f"bytes={first}-",
                                             "Authorization": "Bearer t"})

    # in a thread of its own: asyncio.run() in this one fails in a worker whose main thread
    # already runs an event loop (Playwright's, after a UI test)
    with ThreadPoolExecutor(1) as one:
        r = one.submit(asyncio.run, get()).result()
    return r.status_code, dict(r.headers), r.content


@pytest.mark.parametrize("placed", [True, False], ids=["owner-row", "searched"])
def test_a_ranged_download_asks_the_capture_s_agent_once(
        svc: CaptureService, agents: tuple[CountingAgent, CountingOther],
        placed: bool) -> None:
    """Placed by this controller (an owner row): routed by the row. Started before the
    controller knew it (no row): found in the views. Either way the record is the view's
    (views.py): no agent is asked for it, and the holder is asked once, for the bytes."""
    holder, other = agents
    cid = holder.capture.id
    rows = Counter[str]()
    if placed:
        svc.owners.add(cid, holder.info().id, "admin", "")
    read_row = svc.owners.get

    def counted_row(capture_id: str):  # type: ignore[no-untyped-def]
        rows["owners.get"] += 1
        return read_row(capture_id)

    svc.owners.get = counted_row  # type: ignore[method-assign]

    status, headers, body = ranged_get(svc, cid, 4000)

    assert (status, body) == (206, DATA[4000:])
    assert headers["content-range"] == f"bytes 4000-{len(DATA) - 1}/{len(DATA)}"
    assert holder.asked == Counter(stream_pcap=1)
    assert other.asked == Counter()
    assert rows == Counter({"owners.get": 1})  # routed once
