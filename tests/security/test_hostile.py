"""Hostile ids on every by-id route of the route table, and hostile filters on both start
routes: refused with 400 or 404, never a 5xx, never a file outside the captures dir."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from podcap.api.app import create_app
from tests.security.route_table import api_routes
from tests.support import Server

CANARY = Path("/tmp/podcap-canary-must-not-exist")
IDS = ["..", "../../../../etc/passwd", "..%2f..%2fetc%2fpasswd", "%2e%2e", "/etc/passwd",
       "a" * 5000, "\x00", "abc\x00def", "0" * 31 + "/", "captures", "-rf", "☃",
       "' OR '1'='1", "$(touch /tmp/podcap-canary-must-not-exist)", "\ud7ff", "%00", "~root",
       "0123456789abcdef0123456789abcdeF", "0123456789abcdef0123456789abcdef" * 2]


def by_id_routes() -> list[tuple[str, str]]:
    app = create_app(service=None, auth=None)  # type: ignore[arg-type]
    return sorted({(r.method, r.path) for r in api_routes(app) if "{" in r.path})


@pytest.mark.parametrize("method,path", by_id_routes())
def test_hostile_ids(server: Server, method: str, path: str) -> None:
    assert len(by_id_routes()) >= 15
    with server.client() as c:
        for hostile in IDS:
            url = path.split("{")[0] + quote(hostile, safe="") + path.split("}", 1)[1]
            r = c.request(method, url, json={} if method in ("POST", "PATCH") else None)
            assert r.status_code in (400, 404, 405, 422), (url, r.status_code, r.text)
            assert "passwd" not in r.text or "not found" in r.text or "invalid" in r.text.lower()
    assert not CANARY.exists()


# Each hostile filter, and why /api/filter/check says it cannot run.
NOT_BPF = "invalid filter: can't parse filter expression: syntax error"
HOSTILE_FILTERS = {f"tcp; touch {CANARY}": NOT_BPF, f"$(touch {CANARY})": NOT_BPF,
                   f"`touch {CANARY}`": NOT_BPF, f"-w {CANARY}": NOT_BPF, "-z /bin/sh": NOT_BPF,
                   "\x00tcp": "filter must not contain NUL characters",
                   "tcp\x00; touch x": "filter must not contain NUL characters",
                   "(" * 4096: NOT_BPF,
                   "x" * 4097: "filter is 4097 characters; the maximum is 4096",
                   "tcp port \u0660": NOT_BPF, "\U0001F600": NOT_BPF}


def test_hostile_filters_on_both_start_routes(server: Server, pair) -> None:
    with server.client() as c:
        for hostile, why in HOSTILE_FILTERS.items():
            r1 = c.post("/v1/sniffer", params={"f_workload": pair.web.id},
                        json={"sniffer": {"filter": hostile}})
            r2 = c.post("/api/captures", json={"workload_id": pair.web.id, "filter": hostile})
            r3 = c.post("/api/filter/check", json={"filter": hostile})
            for r in (r1, r2):
                assert r.status_code == 400, (hostile, r.status_code, r.text)
            # the check answers 200 either way: that it does not compile is the answer
            assert (r3.status_code, r3.json()) == (200, {"ok": False, "message": why}), hostile
    assert not CANARY.exists()


def test_hostile_query_values(server: Server) -> None:
    with server.client() as c:
        for params, status, answer in (
                ({"f_name": "\x00"}, 200, {"workloads": []}),  # a name no workload has
                ({"start": "9" * 400}, 200, {"workloads": []}),  # past the end
                ({"start": "-1"}, 400, "start and limit must not be negative"),
                ({"limit": "1e999"}, 400, "start and limit must be whole numbers"),
                ({"f_name": "bogus,x"}, 400, "filter f_name: unknown operator 'bogus'")):
            r = c.get("/v1/workload", params=params)
            assert r.status_code == status, (params, r.text)
            if status == 200:
                assert r.json() == answer, (params, r.text)
            else:
                assert r.json()["code"] == 6 and answer in r.json()["message"], (params, r.text)
        r = httpx.get(server.url + "/v1/workload?f_name=%ED%A0%80",
                      headers={"X-Auth-Token": server.token})
        assert r.status_code == 200
