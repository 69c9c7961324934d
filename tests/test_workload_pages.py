"""Lists at size (issue 19), fast: the real application and service over stand-in agents whose
views hold 2,000 workloads on two nodes. ``/api/workloads`` pages, searches on the server
(every word), and answers ``{"unchanged": true}`` to a client that holds the current token;
``/v1/workload`` keeps NeuVector's ``start``/``limit`` and ``f_*``. The same lists over real
agents: tests/test_inventory.py and tests/cluster/test_nodes.py."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from podcap.api.app import create_app
from podcap.controller.service import CaptureService
from podcap.model import Capture, Workload
from tests.test_fanout import FakeAgent, _service
from tests.test_one_lookup import AnyToken

PER_NODE = 1000


class Many(FakeAgent):
    """A node whose view holds ``PER_NODE`` workloads, web-0000… on node-a, db-… on node-b."""

    def __init__(self, agent_id: str, node: str, prefix: str) -> None:
        super().__init__(agent_id, node)
        self.workloads = [dataclasses.replace(self.workload, id=f"{agent_id[0]}{i:063x}",
                                              name=f"{prefix}-{i:04d}",
                                              ips=(f"10.{ord(prefix[0])}.{i // 250}.{i % 250}",))
                          for i in range(PER_NODE)]

    def pushed(self) -> tuple[list[Workload], list[Capture]]:
        return self.workloads, []


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[CaptureService]:
    service = _service(tmp_path, Many("a" * 16, "node-a", "web"), Many("b" * 16, "node-b", "db"))
    yield service
    service.close()


def get(svc: CaptureService, path: str, **params: Any) -> Any:
    app = create_app(svc, AnyToken())  # type: ignore[arg-type]

    async def ask() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://testserver") as client:
            return await client.get(path, params=params,
                                    headers={"Authorization": "Bearer t"})

    with ThreadPoolExecutor(1) as one:  # its own thread: see tests/test_one_lookup.py
        r = one.submit(asyncio.run, ask()).result()
    assert r.status_code == 200, r.text
    return r.json()


def test_api_workloads_pages_and_searches_on_the_server(svc: CaptureService) -> None:
    everything = get(svc, "/api/workloads")
    assert everything["total"] == len(everything["workloads"]) == 2 * PER_NODE
    page = get(svc, "/api/workloads", offset=100, limit=50)
    assert page["total"] == 2 * PER_NODE and page["offset"] == 100
    assert page["workloads"] == everything["workloads"][100:150]
    found = get(svc, "/api/workloads", q="WEB-012 node-a")  # every word, any case
    assert [w["name"] for w in found["workloads"]] == [f"web-{i:04d}" for i in range(120, 130)]
    assert get(svc, "/api/workloads", q="10.100.0.7")["workloads"][0]["name"] == "db-0007"
    assert get(svc, "/api/workloads", q="web node-b")["total"] == 0


def test_a_client_holding_the_token_gets_unchanged_until_a_view_changes(
        svc: CaptureService) -> None:
    token = get(svc, "/api/workloads", limit=1)["token"]
    assert get(svc, "/api/workloads", since=token) == {"unchanged": True, "token": token}
    node_a = svc.agents.get("a" * 16)
    node_a.workloads = node_a.workloads[1:]  # type: ignore[attr-defined]  # web-0000 went
    changed = get(svc, "/api/workloads", since=token, q="web-0000")
    assert changed["token"] != token and changed["total"] == 0


def test_v1_workload_keeps_start_limit_and_filters(svc: CaptureService) -> None:
    everything = get(svc, "/v1/workload")["workloads"]
    assert len(everything) == 2 * PER_NODE
    assert get(svc, "/v1/workload", start=10, limit=5)["workloads"] == everything[10:15]
    named = get(svc, "/v1/workload", f_name="web-0042")["workloads"]
    assert [w["name"] for w in named] == ["web-0042"]
    assert get(svc, "/v1/workload", f_name="web-004")["workloads"] == []  # eq: the whole name
    some = get(svc, "/v1/workload", f_name="contains,web-004")["workloads"]
    assert [w["name"] for w in some] == [f"web-004{i}" for i in range(10)]
    on_b = get(svc, "/v1/workload", f_host_name="node-b", limit=3)["workloads"]
    assert [w["name"] for w in on_b] == ["db-0000", "db-0001", "db-0002"]


@pytest.mark.parametrize("path", ["/api/workloads", "/v1/workload", "/api/captures",
                                  "/v1/sniffer", "/api/agents"])
def test_a_read_goes_to_a_worker_thread_once(svc: CaptureService, path: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Its caller is checked in the route's own thread (api/deps.Caller): under load every
    round trip through the event loop waits behind what the loop has queued (bench figure
    10: one less, every read 20-35 % faster)."""
    import anyio.to_thread

    hops: list[object] = []
    real = anyio.to_thread.run_sync

    async def counted(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(func)
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    get(svc, path)
    assert len(hops) == 1, hops
