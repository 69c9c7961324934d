"""`--log-format json` on a real server with real captures: every line one JSON object, and
every capture event names its capture, workload, node and user. Text stays the default."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from tests.support import Server, WebPair, running_server, wait_for

CAPTURE_KEYS = {"event", "capture_id", "workload", "node", "user"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("jsonlog"),
                        extra_args=["--log-format", "json", "--node-name", "node-json"]) as srv:
        yield srv


def records(server: Server) -> list[dict]:
    lines = [line for line in server.log().splitlines() if line.strip()]
    assert lines, "the server logged nothing"
    parsed = []
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            raise AssertionError(f"not a JSON line: {line[:300]!r}") from None
        assert isinstance(obj, dict), line
        assert {"time", "level", "logger", "message"} <= set(obj), obj
        parsed.append(obj)
    return parsed


def events(server: Server, cid: str) -> dict[str, dict]:
    return {r["event"]: r for r in records(server) if r.get("capture_id") == cid}


def test_every_line_is_json_uvicorn_included(server: Server) -> None:
    found = records(server)
    assert any(r["logger"].startswith("uvicorn") for r in found), found  # its lines too
    assert any("listening on" in r["message"] for r in found), found
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["time"]) for r in found)


def test_capture_events_carry_capture_workload_node_user(server: Server, pair: WebPair) -> None:
    name = pair.web.name
    cid = server.sniff(name, duration=0)
    wait_for(lambda: server.sniffer(cid)["stats"]["captured"] > 0,
             what="packets (the download's size is checked below)")
    server.stop_sniffer(cid)
    server.pcap(cid)
    with server.client() as c:
        assert c.delete(f"/api/captures/{cid}").status_code == 204
    seen = wait_for(lambda: (e := events(server, cid)).keys() >= {
        "capture.start", "capture.running", "capture.stop", "capture.end", "download",
        "capture.delete", "capture.removed"} and e, timeout=10, what="every event logged")
    for event, rec in seen.items():
        assert CAPTURE_KEYS <= set(rec), (event, rec)
        assert rec["capture_id"] == cid and rec["workload"] == name, rec
        assert rec["node"] == "node-json", rec
    for event in ("capture.start", "capture.running", "capture.stop", "download",
                  "capture.delete"):
        assert seen[event]["user"] == "admin", seen[event]  # who did it
    for event in ("capture.running", "capture.end", "capture.removed"):  # the agent's lines
        assert seen[event]["owner"] == "admin", seen[event]  # whose capture it is
    assert seen["download"]["bytes"] > 24, seen["download"]
    assert seen["capture.end"]["reason"] == "stopped by user", seen["capture.end"]


def test_a_capture_that_ends_by_itself_says_so(server: Server, pair: WebPair) -> None:
    cid = server.sniff(pair.web.name, duration=1)
    server.ended(cid)
    end = wait_for(lambda: events(server, cid).get("capture.end"), what="end logged")
    assert end["reason"] == "duration reached" and end["status"] == "stopped", end
    assert end["workload"] == pair.web.name and end["node"] == "node-json", end
    assert end["user"] is None, end  # nobody acted ...
    assert end["owner"] == "admin", end  # ... on a capture of admin's
    assert events(server, cid)["capture.start"]["user"] == "admin"
    with server.client() as c:
        c.delete(f"/api/captures/{cid}")


def test_text_stays_the_default(tmp_path) -> None:
    with running_server(tmp_path) as srv:
        lines = [line for line in srv.log().splitlines() if line.startswith("20")]
    podcap = [line for line in lines if " podcap" in line]
    assert podcap, lines
    for line in podcap:
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ podcap[\w.]*: ", line), line
        assert not line.lstrip().startswith("{"), line
